package event

import (
	"os"
	"testing"
)

// BenchmarkDecode measures the hot path on typical records. cart_add is the
// design's example event; order has two items; page_view is the most
// frequent and smallest.
func BenchmarkDecode(b *testing.B) {
	d := newTestDecoder(b)
	for _, name := range []string{"cart_add", "page_view", "order"} {
		value, err := os.ReadFile("testdata/valid/" + name + ".json")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			var ev Event
			for b.Loop() {
				if err := d.Decode(value, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeGeneric measures the same records on the generic path
// alone (what Decode did before the direct path), for comparison under the
// same load.
func BenchmarkDecodeGeneric(b *testing.B) {
	d := newTestDecoder(b)
	for _, name := range []string{"cart_add", "page_view", "order"} {
		value, err := os.ReadFile("testdata/valid/" + name + ".json")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			var ev Event
			for b.Loop() {
				if err := d.decodeReference(value, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeParallel shows how decoding scales when every partition
// worker shares one Decoder.
func BenchmarkDecodeParallel(b *testing.B) {
	d := newTestDecoder(b)
	value, err := os.ReadFile("testdata/valid/cart_add.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	b.RunParallel(func(pb *testing.PB) {
		var ev Event
		for pb.Next() {
			if err := d.Decode(value, &ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDecodeInvalid measures rejections, which a broken producer can
// make as frequent as valid events.
func BenchmarkDecodeInvalid(b *testing.B) {
	d := newTestDecoder(b)
	for _, name := range []string{"invalid_field__cart_add_negative_price", "missing_id__no_customer_or_anonymous_id", "malformed_json__not_json"} {
		value, err := os.ReadFile("testdata/invalid/" + name + ".json")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var ev Event
			for b.Loop() {
				if err := d.Decode(value, &ev); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}
