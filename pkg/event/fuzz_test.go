package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// addSeeds adds every sample and a few hostile shapes to a fuzz corpus.
func addSeeds(f *testing.F) {
	for _, dir := range []string{"valid", "invalid", "triggers/valid"} {
		for _, s := range readSamples(f, dir) {
			f.Add(s.value)
		}
	}
	for _, s := range []string{
		"", " ", "{}", "[]", "null", `{"type":"page_view"}`,
		strings.Repeat("[", 200), strings.Repeat(`{"a":`, 200),
		`{"type":"order","items":[` + strings.Repeat(`{},`, 100) + `{}]}`,
		`{"event_id":"e","type":"search","ts":"2026-11-23T05:00:00Z","customer_id":"c","query":"\ud800\udc00\ud800\u0041\udc00"}`,
		`{"event_id":"e","type":"cart_add","ts":"2026-11-23T05:00:00Z","customer_id":"c","sku":"s","price":-0.0e-0,"quantity":1E0}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzDecode checks that Decode never panics, that every rejection is a
// well-formed DecodeError, that every acceptance is a usable Event, and that
// the verdict agrees with the published schema (event.json, through the
// general-purpose validator) wherever the schema has a say.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	d := newTestDecoder(f)
	f.Fuzz(func(t *testing.T, value []byte) {
		var ev Event
		err := d.Decode(value, &ev)
		if err != nil {
			r := ReasonOf(err)
			if !slices.Contains(Reasons, r) {
				t.Fatalf("unknown reason %q: %v", r, err)
			}
			checkDecodeError(t, err)
			if !reflect.DeepEqual(ev, Event{}) {
				t.Fatalf("event not reset: %+v", ev)
			}
		} else {
			if ev.EventID == "" || !slices.Contains(Types, ev.Type) || ev.Subject() == "" || ev.TS.IsZero() {
				t.Fatalf("accepted an incomplete event: %+v", ev)
			}
			if ev.Type == Identify && (ev.CustomerID == "" || ev.AnonymousID == "") ||
				ev.Type == Forget && ev.CustomerID == "" {
				t.Fatalf("accepted %s without its ids: %+v", ev.Type, ev)
			}
		}

		// Agreement with the schema. Numbers beyond the parser's limits are
		// a documented deviation, and too expensive for the validator.
		if len(value) == 0 || len(value) > DefaultMaxBytes || !utf8.Valid(value) {
			return
		}
		if _, bad, perr := parseJSON(value); perr == nil && bad {
			return
		}
		schemaErr := ValidateEvent(value)
		switch r := ReasonOf(err); {
		case err == nil, r == ReasonClockSkew:
			if schemaErr != nil {
				t.Fatalf("decoder accepts (%v) what event.json rejects: %v", err, schemaErr)
			}
		default:
			if schemaErr == nil {
				t.Fatalf("decoder rejects what event.json accepts: %v", err)
			}
		}
	})
}

// FuzzParse holds the hand-written parser to encoding/json: for valid UTF-8,
// both accept the same inputs and produce the same values.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	for _, s := range []string{
		`"\u00e9\ud83d\ude00\ud800\udbff\udc00"`, `"\/\b\f\n\r\t\"\\"`, `-0.0e+01`, `1E-0`, `[1,[2,{"a":[]}]]`,
		`{"a":1,"a":2}`, `{"":null}`, "\t\r\n 1 \t", `01`, `1.`, `.5`, `-`, `"\u12"`, `"\x"`, "\"\x01\"", `tru`, `nulll`,
		`{"a" 1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{,}`, `"abc`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return
		}
		got, _, gotErr := parseJSON(data)
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		wantErr := dec.Decode(&want)
		if wantErr == nil && len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) != 0 {
			wantErr = errTrailing
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("parseJSON error %v, encoding/json error %v", gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("parseJSON %#v, encoding/json %#v", got, want)
		}
	})
}

var errTrailing = &syntaxError{msg: "trailing data"}
