package sentiment

import (
	"strings"
	"testing"
)

// Typical feedback texts: an English review and a Chinese service ticket of
// ordinary length.
const (
	benchEnglish = "I ordered these running shoes last week. Delivery was fast and the box " +
		"arrived in perfect condition! The fit is great and they are very comfortable, " +
		"but the sole started peeling after two runs, which is really disappointing. " +
		"Customer service was helpful and offered a replacement, so overall not bad."
	benchChinese = "鞋子收到了，物流很快，包装也很严实。穿起来很舒服，尺码正好，" +
		"但是跑了两次鞋底就开胶了，质量太差了，有点失望。联系客服，客服态度还不错，" +
		"答应给我换货，希望新的没有问题。"
)

func BenchmarkScore(b *testing.B) {
	s := New()
	long := strings.Repeat(benchEnglish+" ", 40) // ~13 KB, cut at 8 KB
	for _, bc := range []struct{ name, text string }{
		{"en", benchEnglish},
		{"zh", benchChinese},
		{"mixed", benchEnglish + benchChinese},
		{"long", long},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(min(len(bc.text), DefaultMaxBytes)))
			for b.Loop() {
				s.Score(bc.text)
			}
		})
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		New()
	}
}
