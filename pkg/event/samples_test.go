package event

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// refTime is the clock every sample in testdata assumes (see
// testdata/README.md).
var refTime = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

func newTestDecoder(t testing.TB, opts ...Option) *Decoder {
	t.Helper()
	d, err := NewDecoder(append([]Option{WithClock(clockwork.NewFakeClockAt(refTime))}, opts...)...)
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	return d
}

type sample struct {
	name  string // file name without .json
	value []byte
	// prefix is the part of the name before "__": the type for valid
	// samples, the expected Reason for invalid ones.
	prefix string
	what   string
}

func readSamples(t testing.TB, dir string) []sample {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no samples in testdata/%s", dir)
	}
	var out []sample
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		prefix, what, _ := strings.Cut(name, "__")
		out = append(out, sample{name: name, value: b, prefix: prefix, what: what})
	}
	return out
}

// sampleType returns the "type" a sample claims, or "" when it has none or is
// not a JSON object.
func sampleType(v []byte) string {
	var probe struct {
		Type any `json:"type"`
	}
	if json.Unmarshal(v, &probe) != nil {
		return ""
	}
	s, _ := probe.Type.(string)
	return s
}

// TestValidSamples decodes every valid sample and checks that the published
// schema (event.json, which dispatches on type) accepts it too.
func TestValidSamples(t *testing.T) {
	d := newTestDecoder(t)
	for _, s := range readSamples(t, "valid") {
		t.Run(s.name, func(t *testing.T) {
			var ev Event
			if err := d.Decode(s.value, &ev); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if string(ev.Type) != s.prefix {
				t.Errorf("type %q, want %q from the file name", ev.Type, s.prefix)
			}
			if ev.EventID == "" || ev.Subject() == "" || ev.TS.IsZero() {
				t.Errorf("incomplete event: %+v", ev)
			}
			if ev.TS.Location() != time.UTC {
				t.Errorf("ts not in UTC: %v", ev.TS)
			}
			if err := ValidateEvent(s.value); err != nil {
				t.Errorf("decoder accepts the sample but event.json rejects it: %v", err)
			}
		})
	}
}

// TestInvalidSamples checks that the decoder rejects each invalid sample with
// exactly the Reason in its file name, and that the published schema agrees
// wherever the rejection is a schema matter.
func TestInvalidSamples(t *testing.T) {
	d := newTestDecoder(t)
	for _, s := range readSamples(t, "invalid") {
		t.Run(s.name, func(t *testing.T) {
			want := Reason(s.prefix)
			if !slices.Contains(Reasons, want) {
				t.Fatalf("file name names unknown reason %q", want)
			}
			ev := Event{EventID: "stale", SKU: "stale"}
			err := d.Decode(s.value, &ev)
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", ev)
			}
			if got := ReasonOf(err); got != want {
				t.Fatalf("reason %q, want %q (error: %v)", got, want, err)
			}
			checkDecodeError(t, err)
			if !isZero(ev) {
				t.Errorf("event not reset after a rejection: %+v", ev)
			}

			schemaErr := ValidateEvent(s.value)
			switch {
			case want == ReasonClockSkew, strings.HasPrefix(s.what, "beyond_schema"):
				// The schema cannot express these limits.
				if schemaErr != nil {
					t.Errorf("event.json should accept this sample: %v", schemaErr)
				}
			default:
				if schemaErr == nil {
					t.Errorf("decoder rejects it (%v) but event.json accepts it", err)
				}
			}
		})
	}
}

// TestSampleCoverage makes sure the samples keep covering every type: at
// least one valid and two invalid samples each.
func TestSampleCoverage(t *testing.T) {
	valid := map[string]int{}
	for _, s := range readSamples(t, "valid") {
		valid[s.prefix]++
	}
	invalid := map[string]int{}
	reasons := map[Reason]int{}
	for _, s := range readSamples(t, "invalid") {
		invalid[sampleType(s.value)]++
		reasons[Reason(s.prefix)]++
	}
	for _, typ := range Types {
		if valid[string(typ)] < 1 {
			t.Errorf("no valid sample for %s", typ)
		}
		if invalid[string(typ)] < 2 {
			t.Errorf("%d invalid samples for %s, want at least 2", invalid[string(typ)], typ)
		}
	}
	for _, r := range Reasons {
		if r == ReasonTooLarge {
			continue // built in code, see TestDecodeLimits
		}
		if reasons[r] == 0 {
			t.Errorf("no invalid sample for reason %s", r)
		}
	}
}

// checkDecodeError checks the shape every rejection must have.
func checkDecodeError(t testing.TB, err error) {
	t.Helper()
	de, ok := err.(*DecodeError)
	if !ok {
		t.Fatalf("error is %T, want *DecodeError", err)
	}
	if de.Detail == "" {
		t.Errorf("empty detail")
	}
	if len(de.Detail) > maxDetail+3 || strings.ContainsAny(de.Detail, "\n\r") {
		t.Errorf("detail is not one short line: %q", de.Detail)
	}
	if !strings.HasPrefix(de.Error(), string(de.Reason)+": ") {
		t.Errorf("Error() = %q, want reason: detail", de.Error())
	}
}

func isZero(ev Event) bool {
	return ev.EventID == "" && ev.Type == "" && ev.TS.IsZero() && ev.CustomerID == "" &&
		ev.AnonymousID == "" && ev.SKU == "" && ev.Items == nil && ev.Text == ""
}
