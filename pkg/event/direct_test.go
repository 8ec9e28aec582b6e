package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// decodeReference decodes value the way Decode did before the direct path
// existed: size checks, then the generic path alone.
func (d *Decoder) decodeReference(value []byte, ev *Event) error {
	*ev = Event{}
	err := d.checkSize(value)
	if err == nil {
		err = d.decodeGeneric(value, ev)
	}
	if err != nil {
		*ev = Event{}
	}
	return err
}

// checkDirect holds Decode (direct path first) to the generic path: the
// same Event, or the same error with the same reason and detail. And
// whatever the direct path accepts on its own, the general-purpose
// jsonschema validator must accept too.
func checkDirect(t testing.TB, d *Decoder, value []byte) {
	t.Helper()
	var got, want Event
	gotErr := d.Decode(value, &got)
	wantErr := d.decodeReference(value, &want)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || ReasonOf(gotErr) != ReasonOf(wantErr) {
		t.Fatalf("%q:\nDecode error  %v\ngeneric error %v", value, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nDecode  %+v\ngeneric %+v", value, got, want)
	}

	if d.checkSize(value) != nil {
		return
	}
	var ev Event
	if !d.decodeDirect(value, &ev) {
		return
	}
	obj, _, err := parseObject(value)
	if err != nil {
		t.Fatalf("%q: direct path accepts what the parser rejects: %v", value, err)
	}
	typ, err := typeOf(obj)
	if err != nil {
		t.Fatalf("%q: direct path accepts a value without a known type: %v", value, err)
	}
	if err := d.schemas.types[typ].full.Validate(obj); err != nil {
		t.Fatalf("%q: direct path accepts what the schema rejects: %v", value, err)
	}
}

// FuzzDecodeDirect is the differential fuzz test of the direct path against
// the generic path and the jsonschema validator (see checkDirect).
func FuzzDecodeDirect(f *testing.F) {
	addSeeds(f)
	for _, s := range []string{
		`{"event_id":"e","type":"page_view","ts":"2026-11-23T05:00:00Z","customer_id":"c","customer_id":""}`,
		`{"event_id":"e","type":"page_view","type":"forget","ts":"2026-11-23T05:00:00Z","anonymous_id":"a"}`,
		`{"event_id":"e","type":"page_view","ts":"2026-02-29T05:00:00Z","customer_id":"c"}`,
		`{"event_id":"e","type":"page_view","ts":"2024-02-29T23:59:59.123456789+23:59","customer_id":"c"}`,
		`{"event_id":"e","type":"page_view","ts":"2026-11-23T05:00:00+24:00","customer_id":"c"}`,
		`{"event_id":"e","type":"page_view","ts":"2026-11-23T05:00:00Z\n","customer_id":"c"}`,
		`{"event_id":"e","type":"order","ts":"2026-11-23T05:00:00Z","customer_id":"c","order_id":"o","total":1,"items":[{"sku":"s","price":1,"quantity":1,"sku":"t"}]}`,
		`{"event_id":"e\u0000","type":"cart_add","ts":"2026-11-23T05:00:00Z","customer_id":"c","sku":"s","price":1,"quantity":2.0,"x":{"a":[1,{"b":null}]}}`,
	} {
		f.Add([]byte(s))
	}
	d := newTestDecoder(f)
	f.Fuzz(func(t *testing.T, value []byte) {
		if len(value) > 64<<10 {
			return // the generic path's cost, not a different question
		}
		checkDirect(t, d, value)
	})
}

// TestDirectMatchesGenericOnMutations runs checkDirect over every sample and
// systematic mutations of the valid ones: each field replaced by values
// around every constraint, removed, duplicated; every order item field the
// same; and byte-level edits. It is the part of the differential test that
// runs on every `go test`.
func TestDirectMatchesGenericOnMutations(t *testing.T) {
	d := newTestDecoder(t)
	n := 0
	check := func(v []byte) {
		n++
		checkDirect(t, d, v)
	}
	for _, dir := range []string{"valid", "invalid"} {
		for _, s := range readSamples(t, dir) {
			check(s.value)
		}
	}
	for _, s := range readSamples(t, "valid") {
		for _, v := range mutations(t, s.value) {
			check(v)
		}
	}
	t.Logf("%d values", n)
}

// mutationValues are JSON values around the constraints of the v1 schemas.
var mutationValues = []string{
	`null`, `true`, `false`, `0`, `-0`, `-1`, `1`, `1.5`, `2.0`, `2e0`, `1e2`, `5`, `6`, `10000`, `10001`,
	`86400000`, `86400001`, `1000000000000`, `1000000000000.5`, `1e12`, `1.0000000000000001e12`,
	`123456789012345678`, `0.1e1`, `1E400`, strings.Repeat("9", 70),
	`""`, `"x"`, `"EUR"`, `"eur"`, `"review"`, `"ticket"`, `"page_view"`, `"forget"`, `"ø"`, `"\u00e9"`, `"a\"b"`,
	`"` + strings.Repeat("a", 128) + `"`, `"` + strings.Repeat("a", 129) + `"`, `"` + strings.Repeat("é", 64) + `"`,
	`"` + strings.Repeat("é", 65) + `"`, `"` + strings.Repeat("x", 257) + `"`, `"` + strings.Repeat("x", 1001) + `"`,
	`"2026-11-23T05:00:00Z"`, `"2026-11-23T05:00:00.123456789Z"`, `"2026-11-23T05:00:00.1234567890Z"`,
	`"2026-11-23T05:00:00+01:00"`, `"2026-11-23T05:00:00-23:59"`, `"2026-11-23T05:00:00+24:00"`, `"2026-11-23T05:00:00+01:60"`,
	`"2026-11-23t05:00:00Z"`, `"2026-11-23T05:00:00z"`, `"2026-11-23T24:00:00Z"`, `"2026-11-23T23:60:00Z"`,
	`"2026-11-23T23:59:60Z"`, `"2026-02-29T05:00:00Z"`, `"2024-02-29T05:00:00Z"`, `"2100-02-29T05:00:00Z"`,
	`"2000-02-29T05:00:00Z"`, `"2026-04-31T05:00:00Z"`, `"2026-13-01T05:00:00Z"`, `"2026-00-01T05:00:00Z"`,
	`"0000-01-01T00:00:00Z"`, `"2026-11-23T05:00:00."`, `"2026-11-23 05:00:00Z"`, `"2026-11-23T05:00Z"`,
	`"2030-11-23T05:00:00Z"`, `"2026-11-23T06:04:59Z"`, `"2026-11-23T06:05:01Z"`,
	`[]`, `[1]`, `{}`, `{"a":1}`, `[{"sku":"s","price":1,"quantity":1}]`,
	`[{"sku":"s","price":1,"quantity":1},{"sku":"t","price":2.5,"quantity":3,"extra":[1]}]`,
	`[{"sku":"s","price":1}]`, `[{"sku":"s","price":1,"quantity":0}]`, `[null]`,
}

// mutations returns variations of one valid sample.
func mutations(t testing.TB, value []byte) [][]byte {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		t.Fatal(err)
	}
	enc := func(m map[string]any) []byte {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	with := func(m map[string]any, k string, v any) map[string]any {
		c := make(map[string]any, len(m)+1)
		for kk, vv := range m {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	var out [][]byte
	keys := []string{"extra", "sku", "price", "quantity", "dwell_ms", "query", "order_id", "items", "total", "currency", "rating", "text", "kind"}
	for k := range obj {
		keys = append(keys, k)
	}
	for _, k := range keys {
		out = append(out, enc(with(obj, k, nil)))
		for _, v := range mutationValues {
			out = append(out, enc(with(obj, k, json.RawMessage(v))))
			// A duplicate key: the generic form keeps the last.
			b := enc(with(obj, k, nil))
			out = append(out, append([]byte(`{"`+k+`":`+v+`,`), b[1:]...))
			out = append(out, append(b[:len(b)-1:len(b)-1], []byte(`,"`+k+`":`+v+`}`)...))
		}
	}
	if items, ok := obj["items"].([]any); ok && len(items) > 0 {
		item := items[0].(map[string]any)
		for _, k := range []string{"sku", "category", "brand", "price", "quantity", "extra"} {
			out = append(out, enc(with(obj, "items", []any{with(item, k, nil)})))
			for _, v := range mutationValues {
				out = append(out, enc(with(obj, "items", []any{with(item, k, json.RawMessage(v)), item})))
			}
		}
		many := make([]any, 501)
		for i := range many {
			many[i] = item
		}
		out = append(out, enc(with(obj, "items", many)), enc(with(obj, "items", many[:500])))
	}
	// Byte-level edits.
	for i := range value {
		out = append(out, append(value[:i:i], value[i+1:]...))
		for _, c := range []byte{'"', '\\', ',', '}', '0', 'x', ' ', 0xff} {
			b := append([]byte(nil), value...)
			b[i] = c
			out = append(out, b)
		}
	}
	return out
}

// FuzzTimestamp holds timestampOK to what it replaces: the schema's regexp
// and jsonschema's date-time format.
func FuzzTimestamp(f *testing.F) {
	for _, v := range mutationValues {
		if s, err := unquote(v); err == nil {
			f.Add(s)
		}
	}
	f.Add("2026-11-23T05:00:00.5-00:00")
	f.Add("9999-12-31T23:59:59.999999999+23:59")
	set, err := embedded()
	if err != nil {
		f.Fatal(err)
	}
	ts := findTimestamp(set.types[PageView].fast)
	if ts == nil {
		f.Fatal("no timestamp node in the page_view fast path")
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := ts.pattern.MatchString(s) && ts.format(s) == nil
		if got := timestampOK(s); got != want {
			t.Fatalf("timestampOK(%q) = %v, regexp and format say %v", s, got, want)
		}
	})
}

func unquote(v string) (string, error) {
	var s string
	err := json.Unmarshal([]byte(v), &s)
	return s, err
}

// findTimestamp returns the node of f's tree that timestampOK stands for.
func findTimestamp(f *fastSchema) *fastSchema {
	seen := map[*fastSchema]bool{}
	var walk func(*fastSchema) *fastSchema
	walk = func(f *fastSchema) *fastSchema {
		if f == nil || seen[f] {
			return nil
		}
		seen[f] = true
		if f.timestamp {
			return f
		}
		for _, g := range append(append([]*fastSchema{f.ref, f.items}, f.allOf...), f.anyOf...) {
			if r := walk(g); r != nil {
				return r
			}
		}
		for _, p := range f.props {
			if r := walk(p.schema); r != nil {
				return r
			}
		}
		return nil
	}
	return walk(f)
}

// TestDirectPathDecides makes sure the direct path, not the generic one,
// decodes the ordinary valid samples: otherwise decoding stays correct but
// slow.
func TestDirectPathDecides(t *testing.T) {
	d := newTestDecoder(t)
	for _, s := range readSamples(t, "valid") {
		var ev Event
		if !d.decodeDirect(s.value, &ev) && !strings.Contains(s.what, "integral_float") {
			t.Errorf("valid/%s: the direct path is not sure", s.name)
		}
	}
}

func TestTimestampNodeIsRecognised(t *testing.T) {
	set, err := embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range Types {
		if findTimestamp(set.types[typ].fast) == nil {
			t.Errorf("%s: ts is checked with the regexp: schemas/event.json's timestamp pattern no longer equals tsPattern", typ)
		}
	}
}

// TestKeyIDs checks keyNames against the field tables: the common fields,
// then the type-specific ones in the order of their field bits.
func TestKeyIDs(t *testing.T) {
	want := append([]string{""}, commonFields...)
	for f := fSKU; f <= fKind; f <<= 1 {
		want = append(want, fieldNames[f])
	}
	if !reflect.DeepEqual(keyNames[:], want) {
		t.Fatalf("keyNames %q, want %q", keyNames, want)
	}
	for id := kSKU; id < numKeys; id++ {
		if fieldNames[fieldOf(id)] != keyNames[id] {
			t.Errorf("fieldOf(%s) is %s", keyNames[id], fieldNames[fieldOf(id)])
		}
	}
	for id, name := range keyNames {
		if got := keyID(name); got != uint8(id) {
			t.Errorf("keyID(%q) = %d, want %d", name, got, id)
		}
	}
	if keyID("sku ") != kUnknown || keyID("Type") != kUnknown {
		t.Error("keyID knows names it should not")
	}
	if numKeys > 32 {
		t.Error("key ids do not fit a keyMask")
	}
}
