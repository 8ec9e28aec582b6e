package event

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The fast path.
//
// jsonschema's validator is general and thorough, and it costs about ten
// microseconds and a hundred allocations for a small event: too much for the
// hot path. A fastSchema is a second reading of the same compiled schema,
// restricted to the keywords spur's event schemas use, that answers one
// question without allocating: is this value certainly valid?
//
// The answer is one-sided. true means the full validator would accept the
// value; false means "not certainly", and Decode then runs the full
// validator, which decides and explains. So the fast path can never make the
// decoder accept what the schema rejects, or reject what it accepts; at worst
// an unusual but valid value (say quantity 2.0) takes the slow road. The
// constraints themselves are read from the compiled schema, never restated
// here, so the schema files stay the single source of truth.
//
// A schema that uses a keyword outside the supported set compiles to no fast
// path at all, and every record of that type is validated the slow way. A
// test makes sure that never happens to the event schemas unnoticed.

// Bits of fastSchema.types, one per JSON Schema type name.
const (
	tNull uint8 = 1 << iota
	tBoolean
	tNumber
	tInteger
	tString
	tArray
	tObject
)

var typeBits = map[string]uint8{
	"null": tNull, "boolean": tBoolean, "number": tNumber, "integer": tInteger,
	"string": tString, "array": tArray, "object": tObject,
}

type fastProp struct {
	name   string
	schema *fastSchema
}

// fastSchema is the fast reading of one compiled schema node. It is immutable
// once compiled and safe for concurrent use.
type fastSchema struct {
	never   bool  // the false schema
	types   uint8 // 0: any type
	enum    []string
	hasEnum bool
	format  func(any) error

	ref   *fastSchema
	allOf []*fastSchema
	anyOf []*fastSchema

	required []string
	props    []fastProp
	closed   bool // additionalProperties: false

	items              *fastSchema
	minItems, maxItems int // -1: no bound

	minLen, maxLen int // -1: no bound
	pattern        jsonschema.Regexp

	// Numeric bounds, kept only when they are integers a float64 holds
	// exactly; see numberWithin.
	min, max, exMin, exMax *float64

	// For the direct path (validJ): propByID is the index in props of the
	// property of each key id, or -1; propIndex that of every name, needed
	// only when otherProps (a property whose name has no key id).
	// requiredMask is the required names that have a key id,
	// requiredOther the others.
	propByID      [numKeys]int8
	propIndex     map[string]int
	otherProps    bool
	requiredMask  keyMask
	requiredOther []string
	// timestamp is set when the node's pattern is exactly tsPattern and its
	// format is date-time, as schemas/event.json's timestamp is: validJ
	// then checks both with timestampOK rather than a regexp and the
	// format's function. See timestamp.go.
	timestamp bool
}

// unsupportedError names a keyword the fast path does not handle.
type unsupportedError struct {
	location, keyword string
}

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("fast path: %s uses %s", e.location, e.keyword)
}

// compileFast reads s into a fastSchema, or reports the first keyword it
// cannot handle. memo maps schema nodes already read, so shared $defs are
// read once and reference cycles terminate.
func compileFast(s *jsonschema.Schema, memo map[*jsonschema.Schema]*fastSchema) (*fastSchema, error) {
	if f, ok := memo[s]; ok {
		return f, nil
	}
	f := &fastSchema{minItems: -1, maxItems: -1, minLen: -1, maxLen: -1}
	memo[s] = f
	unsupported := func(kw string) (*fastSchema, error) {
		return nil, &unsupportedError{location: s.Location, keyword: kw}
	}

	if s.Bool != nil {
		f.never = !*s.Bool
		return f, nil
	}
	switch {
	case s.DraftVersion < 2019:
		return unsupported(fmt.Sprintf("draft %d", s.DraftVersion))
	case s.RecursiveRef != nil, s.DynamicRef != nil:
		return unsupported("a dynamic reference")
	case s.Not != nil, len(s.OneOf) > 0, s.If != nil:
		return unsupported("not, oneOf or if")
	case s.MaxProperties != nil, s.MinProperties != nil, s.PropertyNames != nil,
		len(s.PatternProperties) > 0, len(s.Dependencies) > 0, len(s.DependentRequired) > 0,
		len(s.DependentSchemas) > 0, s.UnevaluatedProperties != nil:
		return unsupported("an object keyword other than properties, required and additionalProperties")
	case s.UniqueItems, s.Contains != nil, s.Items != nil, s.AdditionalItems != nil,
		len(s.PrefixItems) > 0, s.UnevaluatedItems != nil:
		return unsupported("an array keyword other than items, minItems and maxItems")
	case s.ContentEncoding != nil, s.ContentMediaType != nil, s.ContentSchema != nil:
		return unsupported("a content keyword")
	case s.MultipleOf != nil:
		return unsupported("multipleOf")
	case len(s.Extensions) > 0:
		return unsupported("a vocabulary extension")
	}

	if s.Types != nil {
		for _, name := range s.Types.ToStrings() {
			f.types |= typeBits[name]
		}
	}
	if s.Enum != nil {
		f.hasEnum = true
		for _, v := range s.Enum.Values {
			str, ok := v.(string)
			if !ok {
				return unsupported("a non-string enum value")
			}
			f.enum = append(f.enum, str)
		}
	}
	if s.Const != nil {
		str, ok := (*s.Const).(string)
		if !ok {
			return unsupported("a non-string const")
		}
		f.hasEnum = true
		f.enum = append(f.enum, str)
	}
	if s.Format != nil {
		f.format = s.Format.Validate
	}

	var err error
	sub := func(s *jsonschema.Schema) *fastSchema {
		if err != nil || s == nil {
			return nil
		}
		var fs *fastSchema
		fs, err = compileFast(s, memo)
		return fs
	}
	f.ref = sub(s.Ref)
	for _, a := range s.AllOf {
		f.allOf = append(f.allOf, sub(a))
	}
	for _, a := range s.AnyOf {
		f.anyOf = append(f.anyOf, sub(a))
	}
	f.required = slices.Clone(s.Required)
	for name, p := range s.Properties {
		f.props = append(f.props, fastProp{name: name, schema: sub(p)})
	}
	// Sorted, so that the work done per value does not depend on map order.
	slices.SortFunc(f.props, func(a, b fastProp) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	f.propIndex = make(map[string]int, len(f.props))
	for i := range f.propByID {
		f.propByID[i] = -1
	}
	for i, p := range f.props {
		f.propIndex[p.name] = i
		if id := keyID(p.name); id != kUnknown && i <= math.MaxInt8 {
			f.propByID[id] = int8(i)
		} else {
			f.otherProps = true
		}
	}
	for _, name := range f.required {
		if id := keyID(name); id != kUnknown {
			f.requiredMask |= keyBit(id)
		} else {
			f.requiredOther = append(f.requiredOther, name)
		}
	}
	switch ap := s.AdditionalProperties.(type) {
	case nil:
	case bool:
		f.closed = !ap
	default:
		return unsupported("an additionalProperties schema")
	}
	f.items = sub(s.Items2020)
	if err != nil {
		return nil, err
	}
	if s.MinItems != nil {
		f.minItems = *s.MinItems
	}
	if s.MaxItems != nil {
		f.maxItems = *s.MaxItems
	}
	if s.MinLength != nil {
		f.minLen = *s.MinLength
	}
	if s.MaxLength != nil {
		f.maxLen = *s.MaxLength
	}
	f.pattern = s.Pattern
	f.timestamp = s.Pattern != nil && s.Pattern.String() == tsPattern &&
		s.Format != nil && s.Format.Name == "date-time"

	bound := func(r *big.Rat, kw string) (*float64, error) {
		if r == nil {
			return nil, nil
		}
		if !r.IsInt() || r.Num().CmpAbs(big.NewInt(maxExactInt)) > 0 {
			return nil, &unsupportedError{location: s.Location, keyword: kw + " that is not an integer below 2^53"}
		}
		x, _ := r.Float64()
		return &x, nil
	}
	if f.min, err = bound(s.Minimum, "minimum"); err != nil {
		return nil, err
	}
	if f.max, err = bound(s.Maximum, "maximum"); err != nil {
		return nil, err
	}
	if f.exMin, err = bound(s.ExclusiveMinimum, "exclusiveMinimum"); err != nil {
		return nil, err
	}
	if f.exMax, err = bound(s.ExclusiveMaximum, "exclusiveMaximum"); err != nil {
		return nil, err
	}
	return f, nil
}

// valid reports whether v certainly satisfies the schema. false means
// "not certainly": the caller must ask the full validator.
func (f *fastSchema) valid(v any) bool {
	if f.never {
		return false
	}
	if f.types != 0 && !f.typeOK(v) {
		return false
	}
	if f.hasEnum {
		s, ok := v.(string)
		if !ok || !slices.Contains(f.enum, s) {
			return false
		}
	}
	if f.format != nil && f.format(v) != nil {
		return false
	}
	if f.ref != nil && !f.ref.valid(v) {
		return false
	}
	for _, a := range f.allOf {
		if !a.valid(v) {
			return false
		}
	}
	if len(f.anyOf) > 0 {
		ok := false
		for _, a := range f.anyOf {
			if a.valid(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	switch v := v.(type) {
	case map[string]any:
		return f.objectOK(v)
	case []any:
		return f.arrayOK(v)
	case string:
		return f.stringOK(v)
	case json.Number:
		return f.numberOK(v)
	}
	return true
}

func (f *fastSchema) typeOK(v any) bool {
	switch v := v.(type) {
	case nil:
		return f.types&tNull != 0
	case bool:
		return f.types&tBoolean != 0
	case string:
		return f.types&tString != 0
	case []any:
		return f.types&tArray != 0
	case map[string]any:
		return f.types&tObject != 0
	case json.Number:
		if f.types&tNumber != 0 {
			return true
		}
		// 2.0 and 2e0 are integers too, but deciding that exactly is the
		// full validator's job.
		return f.types&tInteger != 0 && plainInteger(string(v))
	}
	return false
}

func (f *fastSchema) objectOK(obj map[string]any) bool {
	for _, name := range f.required {
		if _, ok := obj[name]; !ok {
			return false
		}
	}
	known := 0
	for _, p := range f.props {
		if v, ok := obj[p.name]; ok {
			known++
			if !p.schema.valid(v) {
				return false
			}
		}
	}
	// With no patternProperties, a closed object may hold nothing but its
	// properties.
	return !f.closed || known == len(obj)
}

func (f *fastSchema) arrayOK(arr []any) bool {
	if f.minItems >= 0 && len(arr) < f.minItems || f.maxItems >= 0 && len(arr) > f.maxItems {
		return false
	}
	if f.items != nil {
		for _, e := range arr {
			if !f.items.valid(e) {
				return false
			}
		}
	}
	return true
}

func (f *fastSchema) stringOK(s string) bool {
	return f.lengthOK(s) && (f.pattern == nil || f.pattern.MatchString(s))
}

// lengthOK checks minLength and maxLength.
func (f *fastSchema) lengthOK(s string) bool {
	// Lengths count code points. A string has at most as many code points
	// as bytes, so counting is needed only when the byte length alone does
	// not decide.
	if f.maxLen >= 0 && len(s) > f.maxLen && utf8.RuneCountInString(s) > f.maxLen {
		return false
	}
	if f.minLen > 0 && (len(s) < f.minLen || utf8.RuneCountInString(s) < f.minLen) {
		return false
	}
	return true
}

// numberOK checks numeric bounds. A float64 comparison is exact here when
// the literal has at most 15 significant digits and the bound is an integer
// below 2^53 (compileFast ensures the latter): two such distinct numbers
// differ by more than float64 rounding can hide. Longer literals are left to
// the full validator.
func (f *fastSchema) numberOK(n json.Number) bool { return f.numberLitOK(string(n)) }

// numberLitOK is numberOK for a literal.
func (f *fastSchema) numberLitOK(n string) bool {
	if f.min == nil && f.max == nil && f.exMin == nil && f.exMax == nil {
		return true
	}
	if significantDigits(n) > 15 {
		return false
	}
	x, err := strconv.ParseFloat(n, 64)
	if err != nil {
		return false
	}
	return (f.min == nil || x >= *f.min) && (f.max == nil || x <= *f.max) &&
		(f.exMin == nil || x > *f.exMin) && (f.exMax == nil || x < *f.exMax)
}

// plainInteger reports whether a JSON number literal is written as an
// integer: no fraction, no exponent.
func plainInteger(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', 'e', 'E':
			return false
		}
	}
	return true
}

// significantDigits counts the mantissa digits of a JSON number literal from
// the first non-zero one, trailing zeros included (an over-estimate is
// safe).
func significantDigits(s string) int {
	n, started := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 'e' || c == 'E' {
			break
		}
		if c < '0' || c > '9' {
			continue
		}
		if c != '0' {
			started = true
		}
		if started {
			n++
		}
	}
	return n
}

// arrayCap returns the largest minItems or maxItems anywhere in f, and false
// when some schema validates array elements ("items") without a maxItems.
// See trimArrays for why.
func (f *fastSchema) arrayCap() (int, bool) {
	seen := map[*fastSchema]bool{}
	limit, ok := 0, true
	var walk func(f *fastSchema)
	walk = func(f *fastSchema) {
		if f == nil || seen[f] {
			return
		}
		seen[f] = true
		limit = max(limit, f.minItems, f.maxItems)
		if f.items != nil && f.maxItems < 0 {
			ok = false
		}
		walk(f.ref)
		walk(f.items)
		for _, a := range f.allOf {
			walk(a)
		}
		for _, a := range f.anyOf {
			walk(a)
		}
		for _, p := range f.props {
			walk(p.schema)
		}
	}
	walk(f)
	return limit, ok
}

// trimArrays returns v with every array longer than limit cut to limit
// elements, copying only what it changes.
//
// The full validator checks every element of an array even when the array
// is already too long, and allocates an error for each bad one: a 1 MiB
// order with half a million bogus items costs seconds and hundreds of
// megabytes. Given limit = arrayCap()+1, cutting changes no verdict: an array
// longer than limit breaks its maxItems before and after the cut (and every
// array whose elements are validated has one), and no minItems exceeds
// limit. Only the element count in the maxItems error changes, and classify
// reads that from the uncut value.
func trimArrays(v any, limit int) (any, bool) {
	switch x := v.(type) {
	case []any:
		changed := false
		if len(x) > limit {
			x, changed = x[:limit], true
		}
		var out []any
		for i, e := range x {
			if ne, ch := trimArrays(e, limit); ch {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = ne
			}
		}
		if out != nil {
			return out, true
		}
		return x, changed
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			if ne, ch := trimArrays(e, limit); ch {
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
