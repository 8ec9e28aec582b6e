package event

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestFastPathCoversEventSchemas fails when an event schema starts using a
// keyword the fast path does not read: decoding would stay correct but
// become several times slower, which should be a decision, not an accident.
func TestFastPathCoversEventSchemas(t *testing.T) {
	set, err := embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range Types {
		if set.types[typ].fast == nil {
			t.Errorf("%s: no fast path: %v", typ, set.types[typ].fastErr)
		}
		if set.types[typ].trimLimit == 0 {
			t.Errorf("%s: arrays cannot be trimmed for the full validator", typ)
		}
	}
}

// TestFastPathOnSamples checks the fast path's one-sided promise on every
// sample, and that it does decide the ordinary valid ones.
func TestFastPathOnSamples(t *testing.T) {
	set, err := embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"valid", "invalid"} {
		for _, s := range readSamples(t, dir) {
			obj, _, err := parseObject(s.value)
			if err != nil {
				continue
			}
			typ, err := typeOf(obj)
			if err != nil {
				continue
			}
			fast := set.types[typ].fast.valid(obj)
			full := set.types[typ].full.Validate(obj)
			if fast && full != nil {
				t.Errorf("%s/%s: fast path accepts what the schema rejects: %v", dir, s.name, full)
			}
			if dir == "valid" && !fast && !strings.Contains(s.what, "integral_float") {
				t.Errorf("valid/%s: fast path undecided on an ordinary event", s.name)
			}
		}
	}
}

// TestFastPathNumbers probes numbers around the bounds, where float64
// rounding could mislead a careless fast path.
func TestFastPathNumbers(t *testing.T) {
	set, err := embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ field, value string }{
		{"quantity", "10000"}, {"quantity", "10001"}, {"quantity", "1"}, {"quantity", "0"},
		{"quantity", "10000.0"}, {"quantity", "1e4"}, {"quantity", "1.0e4"}, {"quantity", "10000.000000000000001"},
		{"quantity", "9999.9999999999999999"}, {"quantity", "-0"}, {"quantity", "1E0"}, {"quantity", "0.1e1"},
		{"price", "0"}, {"price", "-0"}, {"price", "-0.0"}, {"price", "-1e-300"}, {"price", "1e-400"},
		{"price", "1000000000000"}, {"price", "1e12"}, {"price", "1000000000000.0000001"},
		{"price", "999999999999.9999999"}, {"price", "1000000000000.1"}, {"price", "1.0000000000000001e12"},
		{"price", "123456789012345"}, {"price", "0.000000000000000000001"},
	} {
		v := fmt.Sprintf(`{"event_id":"e","type":"cart_add","ts":"2026-11-23T05:00:00Z","customer_id":"c","sku":"s","price":1,"quantity":1,%q:%s}`, tt.field, tt.value)
		obj, _, err := parseObject([]byte(v))
		if err != nil {
			t.Fatal(err)
		}
		fast := set.types[CartAdd].fast.valid(obj)
		full := set.types[CartAdd].full.Validate(obj) == nil
		if fast && !full {
			t.Errorf("%s=%s: fast path accepts what the schema rejects", tt.field, tt.value)
		}
		// The decoder as a whole must agree with the schema.
		var ev Event
		err = newTestDecoder(t).Decode([]byte(v), &ev)
		if (err == nil) != full {
			t.Errorf("%s=%s: decoder says %v, schema says valid=%v", tt.field, tt.value, err, full)
		}
	}
}

func TestCompileFastRejectsUnsupportedKeywords(t *testing.T) {
	for _, schema := range []string{
		`{"not": {"type": "string"}}`,
		`{"oneOf": [{"type": "string"}]}`,
		`{"if": {"type": "string"}, "then": {"minLength": 1}}`,
		`{"properties": {"a": {"multipleOf": 2}}}`,
		`{"patternProperties": {"^a": {"type": "string"}}}`,
		`{"additionalProperties": {"type": "string"}}`,
		`{"enum": [1, 2]}`,
		`{"maximum": 1.5}`,
		`{"uniqueItems": true}`,
	} {
		c := jsonschema.NewCompiler()
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource("mem:///s.json", doc); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile("mem:///s.json")
		if err != nil {
			t.Fatalf("%s: %v", schema, err)
		}
		if _, err := compileFast(s, map[*jsonschema.Schema]*fastSchema{}); err == nil {
			t.Errorf("%s: compiled to a fast path", schema)
		}
	}
}

func TestTrimArrays(t *testing.T) {
	inner := []any{"a", "b", "c"}
	orig := map[string]any{"items": []any{1, 2, 3, 4}, "nested": map[string]any{"x": inner}, "short": []any{1}}
	got, changed := trimArrays(orig, 2)
	if !changed {
		t.Fatal("not changed")
	}
	want := map[string]any{"items": []any{1, 2}, "nested": map[string]any{"x": []any{"a", "b"}}, "short": []any{1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if len(orig["items"].([]any)) != 4 || len(inner) != 3 || len(orig["nested"].(map[string]any)["x"].([]any)) != 3 {
		t.Errorf("original modified: %v", orig)
	}
	if _, changed := trimArrays(want, 2); changed {
		t.Error("changed a value within the limit")
	}
}
