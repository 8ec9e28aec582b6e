package event

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func readSample(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustDecode(t testing.TB, d *Decoder, value []byte) Event {
	t.Helper()
	var ev Event
	if err := d.Decode(value, &ev); err != nil {
		t.Fatalf("Decode(%.120s): %v", value, err)
	}
	return ev
}

func wantReason(t testing.TB, d *Decoder, value []byte, want Reason) *DecodeError {
	t.Helper()
	var ev Event
	err := d.Decode(value, &ev)
	if got := ReasonOf(err); got != want {
		t.Fatalf("Decode(%.120s): reason %q, want %q (error: %v)", value, got, want, err)
	}
	checkDecodeError(t, err)
	return err.(*DecodeError)
}

// TestDecodeFields checks field by field that Decode copies what the samples
// carry.
func TestDecodeFields(t *testing.T) {
	d := newTestDecoder(t)
	ts := time.Date(2026, 11, 23, 5, 0, 0, 120e6, time.UTC)
	tests := []struct {
		file string
		want Event
	}{
		{"valid/cart_add.json", Event{
			EventID: "e-1", Type: CartAdd, TS: ts, CustomerID: "c-1", AnonymousID: "a-7", Channel: "web",
			SKU: "sku-1", Category: "shoes", Brand: "acme", Price: 59.9, Quantity: 1,
		}},
		{"valid/product_view.json", Event{
			EventID: "e-1", Type: ProductView, TS: ts, CustomerID: "c-1", AnonymousID: "a-7", Channel: "web",
			SKU: "sku-1", Category: "shoes", Brand: "acme", Price: 59.9, DwellMS: 4200,
		}},
		{"valid/search.json", Event{
			EventID: "e-1", Type: Search, TS: ts, CustomerID: "c-1", AnonymousID: "a-7", Channel: "web",
			Query: "red running shoes",
		}},
		{"valid/order.json", Event{
			EventID: "e-1", Type: Order, TS: ts, CustomerID: "c-1", AnonymousID: "a-7", Channel: "web",
			OrderID: "o-1001", Total: 129.8, Currency: "EUR",
			Items: []Item{
				{SKU: "sku-1", Category: "shoes", Brand: "acme", Price: 59.9, Quantity: 2},
				{SKU: "sku-2", Price: 10, Quantity: 1},
			},
		}},
		{"valid/feedback.json", Event{
			EventID: "e-1", Type: Feedback, TS: ts, CustomerID: "c-1", AnonymousID: "a-7", Channel: "web",
			Rating: 2, Text: "Shoes arrived late.", Kind: "review",
		}},
		{"valid/forget.json", Event{
			EventID: "e-1", Type: Forget, TS: ts, CustomerID: "c-1", Channel: "web",
		}},
		{"valid/page_view__offset_ts.json", Event{
			EventID: "e-1", Type: PageView, TS: time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC), UTCOffsetMinutes: 60,
			CustomerID: "c-1", AnonymousID: "a-7", Channel: "web",
		}},
		{"valid/cart_add__integral_float_quantity.json", Event{
			EventID: "e-1", Type: CartAdd, TS: ts, CustomerID: "c-1", AnonymousID: "a-7", Channel: "web",
			SKU: "sku-1", Price: 100, Quantity: 2,
		}},
		{"valid/cart_add__extra_fields.json", Event{
			EventID: "e-1", Type: CartAdd, TS: ts, CustomerID: "c-1", AnonymousID: "a-7", Channel: "web",
			SKU: "sku-1", Price: 0, Quantity: 10000,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := mustDecode(t, d, readSample(t, tt.file))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestDecodeIgnoresOtherTypesFields checks that a field another type defines
// is not copied: the schema of this type did not check it.
func TestDecodeIgnoresOtherTypesFields(t *testing.T) {
	d := newTestDecoder(t)
	ev := mustDecode(t, d, []byte(`{"event_id":"e-1","type":"page_view","ts":"2026-11-23T05:00:00Z",
		"customer_id":"c-1","sku":12,"price":"free","items":"none","rating":99,"kind":"other"}`))
	if ev.SKU != "" || ev.Price != 0 || ev.Items != nil || ev.Rating != 0 || ev.Kind != "" {
		t.Errorf("fields of other types were copied: %+v", ev)
	}
}

// TestDecodeResets checks that Decode starts from a zero Event, on success
// and on failure.
func TestDecodeResets(t *testing.T) {
	d := newTestDecoder(t)
	var ev Event
	if err := d.Decode(readSample(t, "valid/order.json"), &ev); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(readSample(t, "valid/page_view.json"), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Items != nil || ev.OrderID != "" || ev.Total != 0 {
		t.Errorf("order fields survived: %+v", ev)
	}
	if err := d.Decode([]byte(`{`), &ev); err == nil {
		t.Fatal("accepted {")
	}
	if !reflect.DeepEqual(ev, Event{}) {
		t.Errorf("event not zero after failure: %+v", ev)
	}
}

// TestDecodeLimits covers the inputs that are too awkward to keep as sample
// files, most of them hostile.
func TestDecodeLimits(t *testing.T) {
	d := newTestDecoder(t)
	valid := readSample(t, "valid/page_view__customer_only_no_channel.json")
	valid = bytes.TrimSpace(valid)
	// withExtra returns the valid event with one more field.
	withExtra := func(extra string) []byte {
		return []byte(string(valid[:len(valid)-1]) + `,"extra":` + extra + `}`)
	}

	t.Run("nil", func(t *testing.T) { wantReason(t, d, nil, ReasonEmpty) })
	t.Run("exactly max bytes", func(t *testing.T) {
		v := append(bytes.Clone(valid), bytes.Repeat([]byte(" "), DefaultMaxBytes-len(valid))...)
		mustDecode(t, d, v)
	})
	t.Run("one byte over max", func(t *testing.T) {
		v := append(bytes.Clone(valid), bytes.Repeat([]byte(" "), DefaultMaxBytes-len(valid)+1)...)
		wantReason(t, d, v, ReasonTooLarge)
	})
	t.Run("custom max bytes", func(t *testing.T) {
		small := newTestDecoder(t, WithMaxBytes(len(valid)-1))
		wantReason(t, small, valid, ReasonTooLarge)
		mustDecode(t, newTestDecoder(t, WithMaxBytes(len(valid))), valid)
	})
	t.Run("too large is checked before anything else", func(t *testing.T) {
		wantReason(t, d, bytes.Repeat([]byte{0xff}, DefaultMaxBytes+1), ReasonTooLarge)
	})
	t.Run("100k open brackets", func(t *testing.T) {
		wantReason(t, d, bytes.Repeat([]byte("["), 100000), ReasonMalformedJSON)
	})
	t.Run("100k open braces", func(t *testing.T) {
		wantReason(t, d, bytes.Repeat([]byte(`{"a":`), 100000), ReasonMalformedJSON)
	})
	t.Run("nesting at the limit in an extra field", func(t *testing.T) {
		// The event object itself is the first level.
		n := maxDepth - 1
		mustDecode(t, d, withExtra(strings.Repeat("[", n)+strings.Repeat("]", n)))
	})
	t.Run("nesting beyond the limit", func(t *testing.T) {
		n := maxDepth
		wantReason(t, d, withExtra(strings.Repeat("[", n)+strings.Repeat("]", n)), ReasonMalformedJSON)
	})
	t.Run("huge string in an extra field", func(t *testing.T) {
		mustDecode(t, d, withExtra(`"`+strings.Repeat("x", 1000000)+`"`))
	})
	t.Run("huge string in a known field", func(t *testing.T) {
		v := []byte(`{"event_id":"e-1","type":"search","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","query":"` +
			strings.Repeat("é", 500000) + `"}`)
		de := wantReason(t, d, v, ReasonInvalidField)
		if !strings.HasPrefix(de.Detail, "/query: ") {
			t.Errorf("detail %q", de.Detail)
		}
	})
	t.Run("huge ts", func(t *testing.T) {
		v := []byte(`{"event_id":"e-1","type":"page_view","ts":"2026-11-23T05:00:00` + strings.Repeat("0", 1000000) + `Z","customer_id":"c-1"}`)
		wantReason(t, d, v, ReasonInvalidField)
	})
	t.Run("many huge exponents", func(t *testing.T) {
		// Each of these would cost the schema validator's big.Rat tens of
		// milliseconds; the parser's number limits must reject them first.
		var b strings.Builder
		b.WriteString(`{"event_id":"e-1","type":"order","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","order_id":"o","total":1,"items":[`)
		for i := range 500 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"sku":"s","price":1e999999,"quantity":1}`)
		}
		b.WriteString(`]}`)
		de := wantReason(t, d, []byte(b.String()), ReasonInvalidField)
		if !strings.HasPrefix(de.Detail, "/items/") {
			t.Errorf("detail %q", de.Detail)
		}
	})
	t.Run("half a million bogus items", func(t *testing.T) {
		// The full validator would allocate an error per item: about 560 MB
		// for this value before trimArrays. Allocation, unlike time, is
		// deterministic enough to assert.
		n := (DefaultMaxBytes - 200) / 2
		v := []byte(`{"event_id":"e-1","type":"order","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","order_id":"o","total":1,"items":[` +
			strings.Repeat("0,", n-1) + `0]}`)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		de := wantReason(t, d, v, ReasonInvalidField)
		runtime.ReadMemStats(&after)
		if want := fmt.Sprintf("/items: %d items, want at most 500", n); de.Detail != want {
			t.Errorf("detail %q, want %q", de.Detail, want)
		}
		if mb := (after.TotalAlloc - before.TotalAlloc) >> 20; mb > 150 {
			t.Errorf("decoding a 1 MiB value allocated %d MB", mb)
		}
	})
	t.Run("too many items and no event_id", func(t *testing.T) {
		v := []byte(`{"type":"order","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","order_id":"o","total":1,"items":[` +
			strings.Repeat(`{},`, 5000) + `{}]}`)
		wantReason(t, d, v, ReasonMissingID)
	})
	t.Run("a million digits", func(t *testing.T) {
		wantReason(t, d, withExtra(strings.Repeat("9", 1000000)), ReasonInvalidField)
	})
	t.Run("numbers at the limits", func(t *testing.T) {
		mustDecode(t, d, withExtra(`[1e400, -1E-400, `+strings.Repeat("1", maxNumberLen)+`]`))
		wantReason(t, d, withExtra(`1e401`), ReasonInvalidField)
		wantReason(t, d, withExtra(strings.Repeat("1", maxNumberLen+1)), ReasonInvalidField)
	})
	t.Run("price 1e400", func(t *testing.T) {
		v := []byte(`{"event_id":"e-1","type":"cart_add","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","sku":"s","price":1e400,"quantity":1}`)
		de := wantReason(t, d, v, ReasonInvalidField)
		if !strings.HasPrefix(de.Detail, "/price: want <= ") {
			t.Errorf("detail %q", de.Detail)
		}
	})
	t.Run("many unknown fields", func(t *testing.T) {
		var b strings.Builder
		b.Write(valid[:len(valid)-1])
		for i := range 50000 {
			fmt.Fprintf(&b, `,"f%d":%d`, i, i)
		}
		b.WriteString("}")
		mustDecode(t, d, []byte(b.String()))
	})
	t.Run("NUL and control characters", func(t *testing.T) {
		wantReason(t, d, []byte("{\"event_id\":\"e\x00\"}"), ReasonMalformedJSON)
		ev := mustDecode(t, d, []byte(`{"event_id":"e\u0000\n","type":"page_view","ts":"2026-11-23T05:00:00Z","customer_id":"c-1"}`))
		if ev.EventID != "e\x00\n" {
			t.Errorf("event_id %q", ev.EventID)
		}
	})
	t.Run("byte order mark", func(t *testing.T) {
		wantReason(t, d, append([]byte("\xef\xbb\xbf"), valid...), ReasonMalformedJSON)
	})
}

// TestDecodeClockSkew checks the boundary of the future-skew limit with a
// fake clock.
func TestDecodeClockSkew(t *testing.T) {
	event := func(ts time.Time) []byte {
		return fmt.Appendf(nil, `{"event_id":"e-1","type":"page_view","ts":%q,"customer_id":"c-1"}`, ts.Format(time.RFC3339Nano))
	}
	d := newTestDecoder(t)
	mustDecode(t, d, event(refTime.Add(DefaultMaxFutureSkew)))
	wantReason(t, d, event(refTime.Add(DefaultMaxFutureSkew+time.Nanosecond)), ReasonClockSkew)
	mustDecode(t, d, event(refTime.AddDate(-30, 0, 0)))

	strict := newTestDecoder(t, WithMaxFutureSkew(0))
	mustDecode(t, strict, event(refTime))
	wantReason(t, strict, event(refTime.Add(time.Millisecond)), ReasonClockSkew)

	// An event past the limit of the last reading makes the decoder read
	// the clock again.
	clock := clockwork.NewFakeClockAt(refTime)
	moving, err := NewDecoder(WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	future := event(refTime.Add(time.Hour))
	wantReason(t, moving, future, ReasonClockSkew)
	clock.Advance(time.Hour)
	mustDecode(t, moving, future)
}

func TestNewDecoderRejectsBadOptions(t *testing.T) {
	for name, opt := range map[string]Option{
		"nil clock":     WithClock(nil),
		"zero bytes":    WithMaxBytes(0),
		"negative skew": WithMaxFutureSkew(-time.Second),
	} {
		if _, err := NewDecoder(opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if d.opts.maxBytes != DefaultMaxBytes || d.opts.maxFutureSkew != DefaultMaxFutureSkew || d.opts.clock == nil {
		t.Errorf("defaults: %+v", d.opts)
	}
}

func TestReasonOf(t *testing.T) {
	de := &DecodeError{Reason: ReasonMissingID, Detail: "missing event_id"}
	if got := ReasonOf(fmt.Errorf("partition 3: %w", de)); got != ReasonMissingID {
		t.Errorf("wrapped: %q", got)
	}
	if got := ReasonOf(errors.New("broker down")); got != "" {
		t.Errorf("other error: %q", got)
	}
	if got := ReasonOf(nil); got != "" {
		t.Errorf("nil: %q", got)
	}
	if got := de.Error(); got != "missing_id: missing event_id" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&DecodeError{Reason: ReasonEmpty}).Error(); got != "empty" {
		t.Errorf("Error() without detail = %q", got)
	}
	seen := map[Reason]bool{}
	for _, r := range Reasons {
		if r == "" || seen[r] {
			t.Errorf("bad or duplicate reason %q", r)
		}
		seen[r] = true
	}
}

// TestDetailIsOneShortLine feeds details hostile content: control
// characters and huge values in names and values.
func TestDetailIsOneShortLine(t *testing.T) {
	d := newTestDecoder(t)
	long := strings.Repeat("\\n\u00e9", 5000)
	for _, v := range []string{
		`{"type":"` + long + `"}`,
		`{"event_id":"e-1","type":"feedback","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","text":"","kind":"` + long + `"}`,
		`{"event_id":"e-1","type":"page_view","ts":"` + long + `","customer_id":"c-1"}`,
		`{"event_id":"e-1","type":"page_view","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","` + long + `":1e9999}`,
		`{"event_id":"e-1","type":"order","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","order_id":"o","total":1,"items":[{"sku":"s","price":1,"quantity":1,"` + long + `":1e9999}]}`,
		"\n\n\n" + long,
	} {
		var ev Event
		err := d.Decode([]byte(v), &ev)
		if err == nil {
			t.Fatalf("accepted %.80s", v)
		}
		checkDecodeError(t, err)
	}
}

// TestDecodeConcurrent shares one Decoder between goroutines; run with -race.
func TestDecodeConcurrent(t *testing.T) {
	d := newTestDecoder(t)
	samples := append(readSamples(t, "valid"), readSamples(t, "invalid")...)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				for _, s := range samples {
					var ev Event
					_ = d.Decode(s.value, &ev)
				}
			}
		})
	}
	wg.Wait()
}
