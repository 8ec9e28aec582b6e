package emit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/event"
)

func TestTriggerIDDeterministic(t *testing.T) {
	const cause = "e-91@2026-11-23T05:00:10.12Z"
	id := TriggerID("cart_abandonment", "c-1", cause)
	// Pinned: changing the derivation changes every id consumers have seen,
	// so a re-sent trigger would no longer deduplicate against the original.
	if id != "6ba30f0783947bf7b8a7c67f3308f317" {
		t.Fatalf("TriggerID = %s; the derivation changed", id)
	}
	if again := TriggerID("cart_abandonment", "c-1", cause); again != id {
		t.Fatalf("TriggerID not deterministic: %s then %s", id, again)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("TriggerID = %q, want 32 lower-case hex digits", id)
	}
}

func TestTriggerIDDistinct(t *testing.T) {
	inputs := [][3]string{
		{"r", "c", "e"},
		{"r2", "c", "e"},  // rule
		{"r", "c2", "e"},  // customer
		{"r", "c", "e2"},  // cause
		{"a", "bc", ""},   // not ambiguous with the next ones
		{"ab", "c", ""},   //
		{"a", "b", "c"},   //
		{"", "abc", ""},   //
		{"abc", "", ""},   //
		{"", "", "abc"},   //
		{"", "", ""},      //
		{"r", "c", "e@1"}, // timer causes differ by deadline
		{"r", "c", "e@2"},
		{"c", "r", "e"}, // argument order matters
	}
	seen := map[string][3]string{}
	for _, in := range inputs {
		id := TriggerID(in[0], in[1], in[2])
		if prev, dup := seen[id]; dup {
			t.Errorf("TriggerID%q == TriggerID%q", in, prev)
		}
		seen[id] = in
	}
}

func TestCouponCode(t *testing.T) {
	id := TriggerID("cart_abandonment", "c-1", "e-91@2026-11-23T05:00:10.12Z")
	code := CouponCode("CART", id)
	if code != "CART-GKKRMXTRUPS52" {
		t.Fatalf("CouponCode = %s; the derivation changed", code)
	}
	if CouponCode("CART", id) != code {
		t.Fatal("CouponCode not stable")
	}
	if !regexp.MustCompile(`^CART-[A-Z2-7]{13}$`).MatchString(code) {
		t.Fatalf("CouponCode = %q, want CART- and 13 base32 characters", code)
	}
	other := CouponCode("CART", TriggerID("cart_abandonment", "c-2", "e-91@2026-11-23T05:00:10.12Z"))
	if other == code {
		t.Fatal("two triggers got the same coupon code")
	}
	// The prefix labels the code; the unique part depends on the trigger only.
	spur := CouponCode("SPUR", id)
	if !strings.HasPrefix(spur, "SPUR-") || strings.TrimPrefix(spur, "SPUR-") != strings.TrimPrefix(code, "CART-") {
		t.Fatalf("CouponCode(SPUR) = %s, want SPUR- and the same suffix as %s", spur, code)
	}
}

func manyHeaders(n int) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, n)
	for i := range hs {
		hs[i] = kgo.RecordHeader{Key: fmt.Sprintf("h%d", i), Value: []byte{byte(i), 0, 0xff}}
	}
	return hs
}

func TestOutRoundTrip(t *testing.T) {
	qualified := time.Date(2026, 11, 23, 5, 0, 10, 123456789, time.UTC)
	tests := []struct {
		name string
		out  Out
	}{
		{"trigger", Out{
			Kind: OutTrigger, Topic: "spur.triggers", Key: []byte("c-1"), Value: []byte(`{"trigger_id":"x"}`),
			Rule: "cart_abandonment", TriggerKind: KindCoupon, QualifiedAt: qualified,
		}},
		{"headers", Out{
			Kind: OutTrigger, Topic: "t", Key: []byte("k"), Value: []byte("v"),
			Headers: []kgo.RecordHeader{
				{Key: "a", Value: []byte("1")},
				{Key: "a", Value: []byte("duplicate keys kept in order")},
				{Key: "bin", Value: []byte{0, 1, 2, 0xff}},
				{Key: "ünï", Value: []byte("ü")},
			},
			QualifiedAt: qualified,
		}},
		{"dead letter with many headers", Out{
			Kind: OutDeadLetter, Topic: "spur.dlq", Key: []byte{0xff, 0}, Value: bytes.Repeat([]byte{0xab}, 70000),
			Headers: manyHeaders(300), Rule: "bad_json", QualifiedAt: time.Unix(0, 0).UTC(),
		}},
		{"before 1970", Out{Kind: OutTrigger, Topic: "t", Key: []byte("k"), Value: []byte("v"), QualifiedAt: time.Date(1960, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"unknown kind byte kept", Out{Kind: 200, Topic: "t", Key: []byte("k"), Value: []byte("v"), QualifiedAt: qualified}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.out.AppendBinary([]byte("prefix"))
			if !bytes.HasPrefix(enc, []byte("prefix")) {
				t.Fatal("AppendBinary overwrote its buffer")
			}
			var got Out
			if err := got.UnmarshalBinary(enc[len("prefix"):]); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.out) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.out)
			}
			// The decoded record owns its memory: the outbox row's buffer is
			// reused by the caller.
			for i := range enc {
				enc[i] = 0
			}
			if !reflect.DeepEqual(got, tc.out) {
				t.Fatal("decoded Out shares memory with its input")
			}
		})
	}
}

func TestOutUnmarshalResetsReceiver(t *testing.T) {
	in := Out{Kind: OutTrigger, Topic: "t", Key: []byte("k"), Value: []byte("v"), QualifiedAt: time.Unix(5, 0).UTC()}
	o := Out{Headers: manyHeaders(3), Rule: "old", TriggerKind: "old"}
	if err := o.UnmarshalBinary(in.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, in) {
		t.Fatalf("decoding into a used Out = %+v, want %+v", o, in)
	}
}

func TestOutUnmarshalCorrupt(t *testing.T) {
	full := Out{
		Kind: OutDeadLetter, Topic: "spur.dlq", Key: []byte("k"), Value: []byte("value"),
		Headers: manyHeaders(3), Rule: "r", TriggerKind: "k", QualifiedAt: time.Unix(1_795_000_000, 0),
	}
	enc := full.AppendBinary(nil)
	tests := map[string][]byte{
		"nil":                   nil,
		"version only":          {outVersion},
		"unknown version":       append([]byte{outVersion + 1}, enc[1:]...),
		"topic longer than row": {outVersion, OutTrigger, 100, 'a'},
		"huge length":           {outVersion, OutTrigger, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"overlong varint":       append([]byte{outVersion, OutTrigger}, bytes.Repeat([]byte{0x80}, 11)...),
		// Topic, key and value empty; then a header count no row can hold.
		"header count huge": {outVersion, OutTrigger, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"header count over": {outVersion, OutTrigger, 0, 0, 0, 10, 0, 0, 0, 0},
	}
	for n := 0; n < len(enc); n++ {
		tests[fmt.Sprintf("prefix %02d of %d", n, len(enc))] = enc[:n]
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			var o Out
			if err := o.UnmarshalBinary(data); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("UnmarshalBinary(%x) = %v, want ErrCorrupt", data, err)
			}
		})
	}
}

func FuzzOutUnmarshal(f *testing.F) {
	seed := Out{Kind: OutTrigger, Topic: "t", Key: []byte("k"), Value: []byte("v"), Headers: manyHeaders(2), Rule: "r", TriggerKind: "coupon", QualifiedAt: time.Unix(1, 2)}
	f.Add(seed.AppendBinary(nil))
	f.Add([]byte{outVersion, OutTrigger, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var o Out
		if err := o.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		enc := o.AppendBinary(nil)
		var again Out
		if err := again.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoded row does not decode: %v", err)
		}
		if !bytes.Equal(again.AppendBinary(nil), enc) {
			t.Fatal("encoding not stable")
		}
	})
}

func TestRecord(t *testing.T) {
	o := Out{Kind: OutTrigger, Topic: "spur.triggers", Key: []byte("c-1"), Value: []byte("{}"), Headers: manyHeaders(1), Rule: "r"}
	r := o.Record()
	if r.Topic != o.Topic || !bytes.Equal(r.Key, o.Key) || !bytes.Equal(r.Value, o.Value) || !reflect.DeepEqual(r.Headers, o.Headers) {
		t.Fatalf("Record = %+v, want the Out's topic, key, value and headers", r)
	}
	if r.Partition != 0 || r.Offset != 0 {
		t.Fatalf("Record sets partition/offset: %+v", r)
	}
}

func header(hs []kgo.RecordHeader, key string) ([]byte, int) {
	n := 0
	var v []byte
	for _, h := range hs {
		if h.Key == key {
			v = h.Value
			n++
		}
	}
	return v, n
}

func TestDeadLetter(t *testing.T) {
	src := &kgo.Record{
		Topic: "shop.clickstream", Partition: 7, Offset: 1234567890123,
		Key:   []byte{0, 0xff, 'c'},
		Value: []byte("{\"type\":\"cart_add\"\x00\xfe"),
		Headers: []kgo.RecordHeader{
			{Key: "traceparent", Value: []byte("00-abc-01")},
			{Key: "spur-error", Value: []byte("a source header of the same name")},
		},
	}
	srcHeaders := append([]kgo.RecordHeader(nil), src.Headers...)
	long := strings.Repeat("x", 600)
	tests := []struct {
		name, detail, wantDetail string
	}{
		{"short detail", "unexpected end of JSON input", "unexpected end of JSON input"},
		{"empty detail", "", ""},
		{"exactly 512", long[:512], long[:512]},
		{"truncated to 512", long, long[:512]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DeadLetter("spur.dlq", src, "bad_json", tc.detail)
			if o.Kind != OutDeadLetter || o.Topic != "spur.dlq" || o.Rule != "bad_json" {
				t.Fatalf("dead letter = kind %d topic %q rule %q", o.Kind, o.Topic, o.Rule)
			}
			if !bytes.Equal(o.Key, src.Key) || !bytes.Equal(o.Value, src.Value) {
				t.Fatalf("key/value changed: %q/%q", o.Key, o.Value)
			}
			if !reflect.DeepEqual(o.Headers[:len(srcHeaders)], srcHeaders) {
				t.Fatalf("source headers not kept first and in order: %v", o.Headers)
			}
			want := map[string]string{
				HeaderDetail:    tc.wantDetail,
				HeaderTopic:     "shop.clickstream",
				HeaderPartition: "7",
				HeaderOffset:    "1234567890123",
			}
			for k, v := range want {
				got, n := header(o.Headers, k)
				if n != 1 || string(got) != v {
					t.Errorf("header %s = %q (%d times), want %q once", k, got, n, v)
				}
			}
			// spur-error appears twice: the source's, then spur's, which a
			// consumer reading the last value of a key gets.
			if last := o.Headers[len(o.Headers)-5]; last.Key != HeaderError || string(last.Value) != "bad_json" {
				t.Errorf("spur's error header = %+v", last)
			}
			if len(o.Headers) != len(srcHeaders)+5 {
				t.Errorf("%d headers, want %d", len(o.Headers), len(srcHeaders)+5)
			}
			if !reflect.DeepEqual(src.Headers, srcHeaders) {
				t.Fatal("DeadLetter modified the source record's headers")
			}
			// Through the outbox and out to the broker, byte for byte.
			var back Out
			if err := back.UnmarshalBinary(o.AppendBinary(nil)); err != nil {
				t.Fatal(err)
			}
			r := back.Record()
			if !bytes.Equal(r.Key, src.Key) || !bytes.Equal(r.Value, src.Value) || !sameHeaders(r.Headers, o.Headers) {
				t.Fatalf("dead letter changed through the outbox: %+v", r)
			}
		})
	}
}

func TestDeadLetterOfRecordWithManyHeaders(t *testing.T) {
	// A poison record may carry any number of headers; its dead letter must
	// still survive the outbox, or the partition cannot restart.
	src := &kgo.Record{Topic: "shop.orders", Partition: 0, Offset: 0, Key: []byte("k"), Value: []byte("v"), Headers: manyHeaders(200)}
	o := DeadLetter("spur.dlq", src, "schema", "d")
	var back Out
	if err := back.UnmarshalBinary(o.AppendBinary(nil)); err != nil {
		t.Fatalf("dead letter with %d headers does not decode from the outbox: %v", len(o.Headers), err)
	}
	if len(back.Headers) != 205 {
		t.Fatalf("%d headers after the outbox, want 205", len(back.Headers))
	}
}

// sameHeaders compares headers byte for byte. It does not tell a nil value
// from an empty one: the outbox encoding does not either.
func sameHeaders(a, b []kgo.RecordHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

var (
	qualified = time.Date(2026, 11, 23, 5, 0, 10, 120_000_000, time.UTC)
	emitted   = time.Date(2026, 11, 23, 5, 0, 10, 130_500_000, time.UTC)
)

func couponTrigger() *Trigger {
	id := TriggerID("cart_abandonment", "c-1", "e-91@"+qualified.Format(time.RFC3339Nano))
	return &Trigger{
		SchemaVersion: SchemaVersion,
		TriggerID:     id,
		Kind:          KindCoupon,
		Rule:          "cart_abandonment",
		CustomerID:    "c-1",
		Variant:       VariantTreatment,
		QualifiedAt:   qualified,
		EmittedAt:     emitted,
		CauseEventIDs: []string{"e-91"},
		Payload: Payload{
			Coupon: &Coupon{Code: CouponCode("CART", id), PercentOff: 10, ExpiresAt: emitted.Add(48 * time.Hour).Truncate(time.Second)},
			Cart: &Cart{Items: []CartItem{
				{SKU: "sku-1", Category: "shoes", Price: 59.9, Quantity: 2},
				{SKU: "sku-2", Price: 0, Quantity: 1},
			}, Value: 119.8},
		},
	}
}

func TestTriggerMarshalMatchesSchema(t *testing.T) {
	tagExpires := emitted.Add(72 * time.Hour)
	tests := []struct {
		name string
		edit func(*Trigger)
	}{
		{"coupon", func(*Trigger) {}},
		{"coupon holdout", func(tr *Trigger) { tr.Variant = VariantHoldout; tr.Payload.Coupon = nil }},
		{"coupon with free shipping", func(tr *Trigger) { tr.Payload.Coupon.FreeShipping = true }},
		{"coupon with 100 percent", func(tr *Trigger) { tr.Payload.Coupon.PercentOff = 100 }},
		{"coupon, empty cart", func(tr *Trigger) { tr.Payload.Cart = &Cart{} }},
		{"coupon, no cart", func(tr *Trigger) { tr.Payload.Cart = nil }},
		{"local time zones", func(tr *Trigger) {
			tr.QualifiedAt = tr.QualifiedAt.In(time.FixedZone("", -5*3600))
			tr.EmittedAt = tr.EmittedAt.In(time.FixedZone("", 5*3600+1800))
		}},
		{"tag added", func(tr *Trigger) {
			tr.Kind = KindTagAdded
			tr.Payload = Payload{Tag: "interested:shoes", TagExpiresAt: &tagExpires}
		}},
		{"tag removed without a cause event", func(tr *Trigger) {
			tr.Kind = KindTagRemoved
			tr.CauseEventIDs = nil
			tr.Payload = Payload{Tag: "interested:shoes"}
		}},
		{"conversion", func(tr *Trigger) {
			tr.Kind = KindConversion
			tr.CauseEventIDs = []string{"e-200"}
			tr.Payload = Payload{AttributedTriggerID: "6ba30f0783947bf7b8a7c67f3308f317", Order: &Order{OrderID: "o-1", Total: 119.8}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := couponTrigger()
			tc.edit(tr)
			v, err := tr.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if err := event.ValidateTrigger(v); err != nil {
				t.Fatalf("%s\ndoes not match schemas/trigger.json: %v", v, err)
			}
			var back Trigger
			if err := json.Unmarshal(v, &back); err != nil {
				t.Fatal(err)
			}
			if back.TriggerID != tr.TriggerID || !back.QualifiedAt.Equal(tr.QualifiedAt) || back.Kind != tr.Kind {
				t.Fatalf("JSON does not carry the trigger: %s", v)
			}
		})
	}
}

func TestTriggerMarshalFields(t *testing.T) {
	v, err := couponTrigger().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"schema_version":  float64(1),
		"kind":            "coupon",
		"rule":            "cart_abandonment",
		"customer_id":     "c-1",
		"variant":         "treatment",
		"qualified_at":    "2026-11-23T05:00:10.12Z",
		"emitted_at":      "2026-11-23T05:00:10.1305Z",
		"cause_event_ids": []any{"e-91"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(m[k], w) {
			t.Errorf("%s = %#v, want %#v", k, m[k], w)
		}
	}
	coupon := m["payload"].(map[string]any)["coupon"].(map[string]any)
	if coupon["expires_at"] != "2026-11-25T05:00:10Z" || coupon["percent_off"] != float64(10) {
		t.Errorf("coupon = %v", coupon)
	}
	if _, ok := coupon["free_shipping"]; ok {
		t.Error("free_shipping false is written")
	}
	// Nil arrays are written as [], never null.
	tr := couponTrigger()
	tr.CauseEventIDs = nil
	tr.Payload.Cart.Items = nil
	v, err = tr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(v, []byte(`"cause_event_ids":[]`)) || !bytes.Contains(v, []byte(`"items":[]`)) || bytes.Contains(v, []byte("null")) {
		t.Fatalf("nil arrays marshal as %s", v)
	}
	if tr.CauseEventIDs != nil || tr.Payload.Cart.Items != nil {
		t.Fatal("Marshal modified the trigger")
	}
}

// TestValidateTriggerRejects makes sure the schema check above has teeth.
func TestValidateTriggerRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Trigger)
	}{
		{"unknown kind", func(tr *Trigger) { tr.Kind = "sms" }},
		{"unknown variant", func(tr *Trigger) { tr.Variant = "control" }},
		{"coupon without coupon", func(tr *Trigger) { tr.Payload.Coupon = nil }},
		{"tag added without expiry", func(tr *Trigger) { tr.Kind = KindTagAdded; tr.Payload = Payload{Tag: "t"} }},
		{"empty trigger id", func(tr *Trigger) { tr.TriggerID = "" }},
		{"schema version 2", func(tr *Trigger) { tr.SchemaVersion = 2 }},
		{"zero percent", func(tr *Trigger) { tr.Payload.Coupon.PercentOff = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := couponTrigger()
			tc.edit(tr)
			v, err := tr.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if err := event.ValidateTrigger(v); err == nil {
				t.Fatalf("schema accepted %s", v)
			}
		})
	}
}

// TestOutKeepsNullApartFromEmpty: a null value is a tombstone to Kafka, an
// empty one is not; a dead letter re-sent from the outbox must keep which.
func TestOutKeepsNullApartFromEmpty(t *testing.T) {
	for _, o := range []Out{
		{Kind: OutDeadLetter, Topic: "dlq", Key: nil, Value: []byte{}},
		{Kind: OutDeadLetter, Topic: "dlq", Key: []byte{}, Value: nil},
	} {
		var got Out
		if err := got.UnmarshalBinary(o.AppendBinary(nil)); err != nil {
			t.Fatal(err)
		}
		if (got.Key == nil) != (o.Key == nil) || (got.Value == nil) != (o.Value == nil) {
			t.Errorf("key nil=%v value nil=%v, want key nil=%v value nil=%v", got.Key == nil, got.Value == nil, o.Key == nil, o.Value == nil)
		}
	}
}

// TestOutReadsVersion1 decodes a row in the first encoding (plain lengths),
// as an outbox may hold after an upgrade.
func TestOutReadsVersion1(t *testing.T) {
	v1 := []byte{1, OutTrigger}
	for _, f := range [][]byte{[]byte("spur.triggers"), []byte("c-1"), []byte(`{"a":1}`)} {
		v1 = append(v1, byte(len(f)))
		v1 = append(v1, f...)
	}
	v1 = append(v1, 0)                     // no headers
	v1 = append(v1, 4, 'r', 'u', 'l', 'e') // rule
	v1 = append(v1, 6, 'c', 'o', 'u', 'p', 'o', 'n')
	v1 = append(v1, 0) // qualified_at varint 0
	var o Out
	if err := o.UnmarshalBinary(v1); err != nil {
		t.Fatal(err)
	}
	if o.Topic != "spur.triggers" || string(o.Key) != "c-1" || string(o.Value) != `{"a":1}` || o.Rule != "rule" || o.TriggerKind != "coupon" {
		t.Fatalf("decoded %+v", o)
	}
}
