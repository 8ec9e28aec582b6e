package event

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// idFields are the fields whose absence makes an event unusable rather than
// merely invalid: without them spur cannot deduplicate the event or key its
// state. A schema "required" failure on one of them is ReasonMissingID.
var idFields = []string{"event_id", "customer_id", "anonymous_id"}

// classify turns a schema validation failure into a DecodeError. It walks the
// whole error tree rather than trusting its shape, because the shape depends
// on how the schemas are written ($ref, allOf, anyOf all add levels):
//
//   - a "required" failure at the top level naming an id field means
//     ReasonMissingID, wherever it sits in the tree. Under an anyOf it is the
//     "customer_id or anonymous_id" rule of the envelope;
//   - anything else is ReasonInvalidField, described by the leaf whose JSON
//     pointer sorts first, so that the detail does not depend on map order.
//
// orig is the value as parsed, before trimArrays, so that details report
// true array lengths.
func classify(err error, orig any) *DecodeError {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return newError(ReasonInvalidField, err.Error())
	}
	c := collector{orig: orig}
	c.walk(verr, false)
	if len(c.missing) > 0 || c.eitherID {
		return newError(ReasonMissingID, c.missingDetail())
	}
	if len(c.leaves) == 0 {
		// A failure without leaves would be a jsonschema quirk; say so
		// rather than invent a field.
		return newError(ReasonInvalidField, "schema validation failed")
	}
	best := c.leaves[0]
	for _, l := range c.leaves[1:] {
		if l.ptr < best.ptr || (l.ptr == best.ptr && l.msg < best.msg) {
			best = l
		}
	}
	return newError(ReasonInvalidField, best.ptr+": "+best.msg)
}

type leaf struct {
	ptr string // JSON pointer of the offending field
	msg string
}

type collector struct {
	orig     any
	leaves   []leaf
	missing  []string // id fields a plain "required" misses
	eitherID bool     // the envelope's anyOf(customer_id, anonymous_id) failed
}

func (c *collector) walk(e *jsonschema.ValidationError, underAnyOf bool) {
	if len(e.Causes) > 0 {
		switch e.ErrorKind.(type) {
		case *kind.AnyOf, *kind.OneOf:
			underAnyOf = true
		}
		for _, cause := range e.Causes {
			c.walk(cause, underAnyOf)
		}
		return
	}
	ptr := jsonPointer(e.InstanceLocation)
	if req, ok := e.ErrorKind.(*kind.Required); ok {
		var others []string
		for _, name := range req.Missing {
			switch {
			case len(e.InstanceLocation) != 0 || !slices.Contains(idFields, name):
				others = append(others, name)
			case underAnyOf:
				c.eitherID = true
			case !slices.Contains(c.missing, name):
				c.missing = append(c.missing, name)
			}
		}
		if len(others) > 0 {
			slices.Sort(others)
			msg := "required field missing"
			if len(others) > 1 {
				msg += fmt.Sprintf(" (and %d more)", len(others)-1)
			}
			c.leaves = append(c.leaves, leaf{ptr: ptr + "/" + escapeToken(others[0]), msg: msg})
		}
		return
	}
	if ptr == "" {
		ptr = "(root)"
	}
	msg := describe(e.ErrorKind)
	switch k := e.ErrorKind.(type) {
	case *kind.MaxItems:
		if arr, ok := lookup(c.orig, e.InstanceLocation).([]any); ok {
			msg = fmt.Sprintf("%d items, want at most %d", len(arr), k.Want)
		}
	case *kind.Pattern, *kind.Format:
		// A regular expression is a poor explanation; say what it means
		// when the definition is one spur documents.
		if hint, ok := formatHints[defName(e.SchemaURL)]; ok {
			msg = "want " + hint + ", got " + display(gotOf(k))
		}
	}
	c.leaves = append(c.leaves, leaf{ptr: ptr, msg: msg})
}

// formatHints explains the string formats of schemas/event.json's $defs, by
// definition name. A test checks that every pattern or format there has one.
var formatHints = map[string]string{
	"timestamp": "an RFC 3339 date-time such as 2026-11-23T05:00:00.120Z",
	"currency":  "an ISO 4217 currency code such as EUR",
}

// defName returns the name of the $defs entry a schema location points
// into, or "".
func defName(schemaURL string) string {
	_, frag, ok := strings.Cut(schemaURL, "#/$defs/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(frag, "/")
	return name
}

func gotOf(k jsonschema.ErrorKind) any {
	switch k := k.(type) {
	case *kind.Pattern:
		return k.Got
	case *kind.Format:
		return k.Got
	}
	return nil
}

func (c *collector) missingDetail() string {
	names := slices.Clone(c.missing)
	// Order by idFields so that "event_id" comes first.
	slices.SortFunc(names, func(a, b string) int {
		return slices.Index(idFields, a) - slices.Index(idFields, b)
	})
	if c.eitherID && !slices.Contains(names, "customer_id") && !slices.Contains(names, "anonymous_id") {
		names = append(names, "customer_id or anonymous_id")
	}
	return "missing " + strings.Join(names, ", ")
}

// printer renders the messages of error kinds describe does not know.
// message.Printer is safe for concurrent use: Sprintf takes a fresh internal
// state per call.
var printer = message.NewPrinter(language.English)

// describe says in a few words what is wrong with a value.
func describe(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return "want " + strings.Join(k.Want, " or ") + ", got " + k.Got
	case *kind.MinLength:
		return fmt.Sprintf("%d characters, want at least %d", k.Got, k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("%d characters, want at most %d", k.Got, k.Want)
	case *kind.Minimum:
		return "want >= " + ratString(k.Want) + ", got " + ratString(k.Got)
	case *kind.Maximum:
		return "want <= " + ratString(k.Want) + ", got " + ratString(k.Got)
	case *kind.ExclusiveMinimum:
		return "want > " + ratString(k.Want) + ", got " + ratString(k.Got)
	case *kind.ExclusiveMaximum:
		return "want < " + ratString(k.Want) + ", got " + ratString(k.Got)
	case *kind.MinItems:
		return fmt.Sprintf("%d items, want at least %d", k.Got, k.Want)
	case *kind.MaxItems:
		return fmt.Sprintf("%d items, want at most %d", k.Got, k.Want)
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		return "want one of " + strings.Join(want, ", ") + ", got " + display(k.Got)
	case *kind.Const:
		return "want " + display(k.Want) + ", got " + display(k.Got)
	case *kind.Format:
		return "not a valid " + k.Want + ": " + k.Err.Error()
	case *kind.Pattern:
		return "does not match pattern " + k.Want
	default:
		return k.LocalizedString(printer)
	}
}

// ratString prints a schema bound or value compactly: 10000, not 10000/1.
func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// display prints a JSON value for an error detail, quoting strings and
// cutting long ones.
func display(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(truncate(v, 64))
	case nil:
		return "null"
	case []any, map[string]any:
		return jsonKind(v)
	default:
		return truncate(fmt.Sprint(v), 64)
	}
}

// jsonPointer renders path tokens as an RFC 6901 JSON pointer.
func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapeToken(t))
	}
	return b.String()
}

// escapeToken escapes one JSON pointer token (RFC 6901: ~ and /).
func escapeToken(t string) string {
	if !strings.ContainsAny(t, "~/") {
		return t
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(t)
}

// lookup returns the value at path in v, or nil.
func lookup(v any, path []string) any {
	for _, tok := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}
