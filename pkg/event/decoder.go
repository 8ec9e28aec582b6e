package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jonboulle/clockwork"
)

// Defaults of the decoder's options.
const (
	// DefaultMaxBytes is the largest value Decode accepts. Real events are
	// a few hundred bytes; an order with 500 items stays well below it.
	DefaultMaxBytes = 1 << 20
	// DefaultMaxFutureSkew is how far an event's ts may lie ahead of the
	// decoder's clock, to tolerate producers whose clocks run a little fast.
	DefaultMaxFutureSkew = 5 * time.Minute
)

type options struct {
	clock         clockwork.Clock
	maxBytes      int
	maxFutureSkew time.Duration
}

// Option configures a Decoder.
type Option func(*options)

// WithClock sets the clock that ts is compared with. The default is the real
// clock; tests inject a fake one.
func WithClock(c clockwork.Clock) Option {
	return func(o *options) { o.clock = c }
}

// WithMaxBytes sets the largest value accepted, in bytes. Larger values are
// rejected with ReasonTooLarge before any parsing, which bounds the memory
// and time one record can cost. The default is DefaultMaxBytes.
func WithMaxBytes(n int) Option {
	return func(o *options) { o.maxBytes = n }
}

// WithMaxFutureSkew sets how far ts may lie after the clock's now before the
// event is rejected with ReasonClockSkew. The default is
// DefaultMaxFutureSkew. Events from the past are always accepted: late events
// are the rules' business, not the decoder's.
func WithMaxFutureSkew(d time.Duration) Option {
	return func(o *options) { o.maxFutureSkew = d }
}

// Decoder turns record values into validated Events. It is safe for
// concurrent use: it holds only immutable compiled schemas and options, so
// one Decoder can serve every partition worker. The zero value is not
// usable; call NewDecoder.
type Decoder struct {
	opts    options
	schemas *schemaSet
	// nowMS is the clock's latest reading (unix ms; 0: none yet), so that
	// checkSkew reads the clock only for an event near or past the limit
	// it set. Clocks move forward, so a limit from an earlier reading is
	// never looser than the current one.
	nowMS atomic.Int64
}

// NewDecoder returns a Decoder using the schemas embedded from schemas/. The
// schemas are compiled once per process; an error here means a broken schema
// file or an invalid option.
func NewDecoder(opts ...Option) (*Decoder, error) {
	o := options{
		clock:         clockwork.NewRealClock(),
		maxBytes:      DefaultMaxBytes,
		maxFutureSkew: DefaultMaxFutureSkew,
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.clock == nil:
		return nil, errors.New("event: nil clock")
	case o.maxBytes <= 0:
		return nil, fmt.Errorf("event: max bytes must be positive, got %d", o.maxBytes)
	case o.maxFutureSkew < 0:
		return nil, fmt.Errorf("event: max future skew must not be negative, got %s", o.maxFutureSkew)
	}
	set, err := embedded()
	if err != nil {
		return nil, fmt.Errorf("event: compiling schemas: %w", err)
	}
	return &Decoder{opts: o, schemas: set}, nil
}

// Decode resets ev, checks value against the schema of its type and fills ev
// from it. Every rejection is a *DecodeError whose Reason says why; ev is
// left zero in that case. Fields a type does not define are left zero even
// when the value carries them, because the schema did not check them. ts is
// converted to UTC.
//
// Decode does not retain value, so the caller may reuse the buffer. ev's
// strings may share one copy of a small value (up to 4 KiB).
//
// The checks run from cheapest to dearest, and each guards the next: size,
// UTF-8 and JSON syntax, type, number literals, schema, clock skew. When a
// value has several faults, a missing id is reported before an invalid
// field.
func (d *Decoder) Decode(value []byte, ev *Event) error {
	*ev = Event{}
	if err := d.decode(value, ev); err != nil {
		*ev = Event{}
		return err
	}
	return nil
}

func (d *Decoder) decode(value []byte, ev *Event) error {
	if err := d.checkSize(value); err != nil {
		return err
	}
	// The direct path decides nearly every valid event without building
	// the generic form; whatever it is not sure of, including every
	// invalid value, takes the generic path, which decides and explains.
	if d.decodeDirect(value, ev) {
		return d.checkSkew(ev)
	}
	*ev = Event{}
	return d.decodeGeneric(value, ev)
}

// checkSize rejects empty and oversized values before anything reads them.
func (d *Decoder) checkSize(value []byte) error {
	if len(value) == 0 {
		return newError(ReasonEmpty, "empty value")
	}
	if len(value) > d.opts.maxBytes {
		return newError(ReasonTooLarge, fmt.Sprintf("%d bytes, limit %d", len(value), d.opts.maxBytes))
	}
	return nil
}

// decodeGeneric parses value into the generic form, validates it (fast path
// or full validator) and fills ev from it. It is the reference the direct
// path is held to, and the only path that explains rejections.
func (d *Decoder) decodeGeneric(value []byte, ev *Event) error {
	obj, badNumber, err := parseObject(value)
	if err != nil {
		return err
	}
	typ, err := typeOf(obj)
	if err != nil {
		return err
	}
	if badNumber {
		return numberError(d.schemas.types[typ], obj)
	}
	// The fast path decides nearly every valid event; anything it is not
	// sure of goes to the full validator, which also explains rejections.
	ts := d.schemas.types[typ]
	if ts.fast == nil || !ts.fast.valid(obj) {
		if err := validateSlow(ts, obj); err != nil {
			return err
		}
	}
	if err := fill(obj, typ, ev); err != nil {
		return err
	}
	return d.checkSkew(ev)
}

// checkSkew rejects an event whose ts lies too far ahead of the clock.
// Every event is checked, and reading the clock was a measurable part of
// decoding, so an event well within the limit of the last reading passes
// without a new one: ts < (its ms + 1) <= the last reading + the skew.
func (d *Decoder) checkSkew(ev *Event) error {
	if ev.TS.UnixMilli()+1 <= d.nowMS.Load()+d.opts.maxFutureSkew.Milliseconds() {
		return nil
	}
	now := d.opts.clock.Now()
	d.nowMS.Store(now.UnixMilli())
	if ev.TS.After(now.Add(d.opts.maxFutureSkew)) {
		return newError(ReasonClockSkew, fmt.Sprintf("ts %s is %s ahead of now, limit %s",
			ev.TS.Format(time.RFC3339Nano), roughDuration(ev.TS.Sub(now)), d.opts.maxFutureSkew))
	}
	return nil
}

// validateSlow runs the full schema validator, on a copy of obj whose
// arrays are cut short when that changes no verdict, to bound its cost.
func validateSlow(ts *typeSchema, obj map[string]any) error {
	var v any = obj
	if ts.trimLimit > 0 {
		v, _ = trimArrays(v, ts.trimLimit)
	}
	if verr := ts.full.Validate(v); verr != nil {
		return classify(verr, obj)
	}
	return nil
}

// parseObject parses value into the generic form the schema validator
// expects, keeping numbers as json.Number so that no precision is lost before
// the schema has judged them. It also reports whether some number literal is
// beyond maxNumberLen or maxExponent.
func parseObject(value []byte) (obj map[string]any, badNumber bool, err error) {
	// encoding/json would silently replace invalid UTF-8 with U+FFFD, and
	// ids and keys would then differ from what the producer sent. parseJSON
	// relies on this check.
	if !utf8.Valid(value) {
		return nil, false, newError(ReasonMalformedJSON, "invalid UTF-8")
	}
	v, badNumber, err := parseJSON(value)
	if err != nil {
		return nil, false, newError(ReasonMalformedJSON, err.Error())
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, false, newError(ReasonMalformedJSON, "not a JSON object: "+jsonKind(v))
	}
	return obj, badNumber, nil
}

// typeOf returns the event's type. It runs before schema validation because
// the type selects the schema.
func typeOf(obj map[string]any) (Type, error) {
	raw, ok := obj["type"]
	if !ok {
		return "", newError(ReasonUnknownType, "missing type")
	}
	s, ok := raw.(string)
	if !ok {
		return "", newError(ReasonUnknownType, "type is "+jsonKind(raw)+", want string")
	}
	if t, ok := knownType(s); ok {
		return t, nil
	}
	return "", newError(ReasonUnknownType, "unknown type "+strconv.Quote(truncate(s, 64)))
}

// knownType returns the v1 type named s.
func knownType(s string) (Type, bool) {
	for _, t := range Types {
		if string(t) == s {
			return t, true
		}
	}
	return "", false
}

// Limits on number literals. The schema validator evaluates numbers with
// math/big, whose cost grows with the literal's length and exponent: parsing
// 1e999999 takes about 40ms and a 1 MB run of digits over a second, so
// one crafted order could stall a partition for many seconds. No legitimate
// event needs more than these limits, which is why they apply to every
// number in the value, including unknown fields the schema would allow.
const (
	maxNumberLen = 64
	maxExponent  = 400
)

// numberError rejects obj, which holds a number literal beyond maxNumberLen
// or maxExponent, with ReasonInvalidField naming where; or with
// ReasonMissingID when an id is missing too, which matters more. The ids are
// checked by the full validator on a copy whose oversized numbers are
// replaced by 0, so that it never evaluates them.
func numberError(ts *typeSchema, obj map[string]any) error {
	tame, _ := replaceBadNumbers(obj)
	if err := validateSlow(ts, tame.(map[string]any)); ReasonOf(err) == ReasonMissingID {
		return err
	}
	path, _ := findBadNumber(obj)
	// findBadNumber builds the path leaf first.
	slices.Reverse(path)
	return newError(ReasonInvalidField, jsonPointer(path)+": number literal too long or exponent out of range")
}

// replaceBadNumbers returns v with every number literal beyond the limits
// replaced by 0, copying only what it changes.
func replaceBadNumbers(v any) (any, bool) {
	switch x := v.(type) {
	case json.Number:
		if !numberOK(string(x)) {
			return json.Number("0"), true
		}
	case []any:
		var out []any
		for i, e := range x {
			if ne, ch := replaceBadNumbers(e); ch {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = ne
			}
		}
		if out != nil {
			return out, true
		}
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			if ne, ch := replaceBadNumbers(e); ch {
				if out == nil {
					out = maps.Clone(x)
				}
				out[k] = ne
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}

func findBadNumber(v any) ([]string, bool) {
	switch v := v.(type) {
	case json.Number:
		return nil, !numberOK(string(v))
	case map[string]any:
		for k, e := range v {
			if p, bad := findBadNumber(e); bad {
				return append(p, k), true
			}
		}
	case []any:
		for i, e := range v {
			if p, bad := findBadNumber(e); bad {
				return append(p, strconv.Itoa(i)), true
			}
		}
	}
	return nil, false
}

// numberOK reports whether a JSON number literal is within maxNumberLen and
// maxExponent. The literal is valid JSON, so the exponent, if any, follows
// the only 'e' or 'E'.
func numberOK(s string) bool {
	if len(s) > maxNumberLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 'e' || s[i] == 'E' {
			exp := s[i+1:]
			if len(exp) > 0 && (exp[0] == '+' || exp[0] == '-') {
				exp = exp[1:]
			}
			n, err := strconv.Atoi(exp)
			return err == nil && n <= maxExponent
		}
	}
	return true
}

// jsonKind names the JSON type of a parsed value, for error details.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// roughDuration prints d for a human: milliseconds are plenty, and beyond
// two days hours would only obscure the size.
func roughDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= 2*day {
		return strconv.FormatInt(int64(d/day), 10) + " days"
	}
	return d.Round(time.Millisecond).String()
}
