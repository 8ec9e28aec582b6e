package emit

import (
	"bytes"
	"math"
	"testing"
	"time"
)

// marshalCases are triggers covering every field and omitempty choice.
func marshalCases() map[string]*Trigger {
	tagExpires := emitted.Add(72 * time.Hour)
	cases := map[string]*Trigger{}
	add := func(name string, edit func(*Trigger)) {
		tr := couponTrigger()
		edit(tr)
		cases[name] = tr
	}
	add("coupon", func(*Trigger) {})
	add("holdout", func(tr *Trigger) { tr.Variant = VariantHoldout; tr.Payload.Coupon = nil })
	add("free shipping", func(tr *Trigger) { tr.Payload.Coupon.FreeShipping = true; tr.Payload.Coupon.PercentOff = 0 })
	add("empty cart", func(tr *Trigger) { tr.Payload.Cart = &Cart{} })
	add("no cart", func(tr *Trigger) { tr.Payload.Cart = nil })
	add("no cause", func(tr *Trigger) { tr.CauseEventIDs = nil })
	add("empty cause", func(tr *Trigger) { tr.CauseEventIDs = []string{} })
	add("many causes", func(tr *Trigger) { tr.CauseEventIDs = []string{"a", "b", "c"} })
	add("zones", func(tr *Trigger) {
		tr.QualifiedAt = tr.QualifiedAt.In(time.FixedZone("", -5*3600))
		tr.EmittedAt = tr.EmittedAt.In(time.FixedZone("X", 5*3600+1800+7))
	})
	add("zero times", func(tr *Trigger) { tr.QualifiedAt, tr.EmittedAt = time.Time{}, time.Unix(0, 1) })
	add("tag added", func(tr *Trigger) {
		tr.Kind = KindTagAdded
		tr.Payload = Payload{Tag: "interested:shoes & <bags>", TagExpiresAt: &tagExpires}
	})
	add("tag removed", func(tr *Trigger) { tr.Kind = KindTagRemoved; tr.Payload = Payload{Tag: "t"} })
	add("conversion", func(tr *Trigger) {
		tr.Kind = KindConversion
		tr.Payload = Payload{AttributedTriggerID: "6ba3", Order: &Order{OrderID: "o-1", Total: 119.8}}
	})
	add("notify", func(tr *Trigger) {
		tr.Kind = KindNotify
		tr.Payload = Payload{Notify: &Notify{Message: "browse", Data: map[string]string{"z": "1", "a": "\u2028", "m": "x\x00y"}}}
	})
	add("notify without data", func(tr *Trigger) {
		tr.Kind = KindNotify
		tr.Payload = Payload{Notify: &Notify{Message: "browse", Data: map[string]string{}}}
	})
	add("everything", func(tr *Trigger) {
		tr.Payload.Tag, tr.Payload.TagExpiresAt = "t", &tagExpires
		tr.Payload.AttributedTriggerID = "x"
		tr.Payload.Order = &Order{Total: 1e21}
		tr.Payload.Notify = &Notify{Message: "m"}
	})
	for i, f := range []float64{0, math.Copysign(0, -1), 1e-7, 1e-6, 0.000001234, 1e20, 1e21, 123456789.125, -3.5, 5e-324, math.MaxFloat64} {
		add("float "+string(rune('a'+i)), func(tr *Trigger) {
			tr.Payload.Cart.Value = f
			tr.Payload.Cart.Items[0].Price = -f
		})
	}
	for i, s := range []string{"", "\"\\/", "\b\f\n\r\t\x01\x1f\x7f", "é€😀", "\xff\xfe", "a\u2028b\u2029c", "<script>&amp;</script>", "\xed\xa0\x80"} {
		add("string "+string(rune('a'+i)), func(tr *Trigger) {
			tr.Rule, tr.CustomerID, tr.Payload.Coupon.Code, tr.Payload.Cart.Items[1].Category = s, s+s, s, s
			tr.CauseEventIDs = []string{s}
		})
	}
	// Values encoding/json writes its own way or rejects: Marshal must
	// leave them to it.
	add("year 10000", func(tr *Trigger) { tr.EmittedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })
	add("negative year", func(tr *Trigger) { tr.QualifiedAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) })
	add("offset of a day", func(tr *Trigger) { tr.EmittedAt = tr.EmittedAt.In(time.FixedZone("", 24*3600)) })
	add("NaN", func(tr *Trigger) { tr.Payload.Cart.Value = math.NaN() })
	add("Inf", func(tr *Trigger) { tr.Payload.Cart.Items[0].Price = math.Inf(1) })
	return cases
}

// TestMarshalMatchesEncodingJSON holds the hand-written JSON to
// encoding/json's, byte for byte, errors included.
func TestMarshalMatchesEncodingJSON(t *testing.T) {
	for name, tr := range marshalCases() {
		got, gotErr := tr.Marshal()
		want, wantErr := tr.marshalStd()
		if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s (%v)\nwant %s (%v)", name, got, gotErr, want, wantErr)
		}
	}
}

// FuzzMarshalStrings compares the two encodings on arbitrary strings,
// floats and times.
func FuzzMarshalStrings(f *testing.F) {
	f.Add("c-1", "shoes", 59.9, int64(1795000000120000000), 3600)
	f.Add("\xff<\u2028>&\"\\\x00", "", 1e-7, int64(0), -5*3600)
	f.Fuzz(func(t *testing.T, s, cat string, x float64, ns int64, off int) {
		tr := couponTrigger()
		tr.CustomerID, tr.Payload.Cart.Items[0].Category, tr.Payload.Coupon.Code = s, cat, cat+s
		tr.Payload.Cart.Value, tr.Payload.Cart.Items[1].Price = x, x/3
		tr.EmittedAt = time.Unix(0, ns).In(time.FixedZone("", off%(48*3600)))
		tr.Payload.Notify = &Notify{Message: s, Data: map[string]string{s: cat, cat: s}}
		got, gotErr := tr.Marshal()
		want, wantErr := tr.marshalStd()
		if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("\n got %s (%v)\nwant %s (%v)", got, gotErr, want, wantErr)
		}
	})
}

// BenchmarkTriggerMarshal measures a coupon with a two-line cart, by
// Marshal and by encoding/json.
func BenchmarkTriggerMarshal(b *testing.B) {
	tr := couponTrigger()
	for _, m := range []struct {
		name    string
		marshal func() ([]byte, error)
	}{{"hand", tr.Marshal}, {"encoding_json", tr.marshalStd}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.marshal(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
