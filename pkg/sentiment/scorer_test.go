package sentiment

import (
	"math"
	"strings"
	"sync"
	"testing"
)

// scorer is shared by the tests, as production code shares one Scorer.
var scorer = New()

// want is the band a score must fall in.
type want int

const (
	strongPos want = iota + 1 // > 0.3
	pos                       // > 0.05
	neutral                   // within ±0.05 (VADER's neutral band)
	neg                       // < -0.05
	strongNeg                 // < -0.3
)

func (w want) holds(s float64) bool {
	switch w {
	case strongPos:
		return s > 0.3
	case pos:
		return s > 0.05
	case neutral:
		return s >= -0.05 && s <= 0.05
	case neg:
		return s < -0.05
	case strongNeg:
		return s < -0.3
	}
	return false
}

func (w want) String() string {
	return [...]string{"?", "> 0.3", "> 0.05", "within ±0.05", "< -0.05", "< -0.3"}[w]
}

// scoreCases are reviews and tickets with an unambiguous verdict.
var scoreCases = []struct {
	text string
	want want
	lang string
}{
	// English reviews.
	{"The shoes are great, fast delivery!", strongPos, LangEnglish},
	{"Excellent quality, highly recommend this seller", strongPos, LangEnglish},
	{"Absolutely love it!!!", strongPos, LangEnglish},
	{"Fits perfectly and looks great", strongPos, LangEnglish},
	{"Will definitely buy again!", strongPos, LangEnglish},
	{"Sturdy, well made and arrived on time.", strongPos, LangEnglish},
	{"not bad", pos, LangEnglish},
	{"No problems at all, great seller", strongPos, LangEnglish},
	{"Terrible quality, I want a refund", strongNeg, LangEnglish},
	{"This is the worst purchase I have ever made", strongNeg, LangEnglish},
	{"I HATE this product", strongNeg, LangEnglish},
	{"Cheap material, fell apart after one wash", strongNeg, LangEnglish},
	{"It stopped working after a week", strongNeg, LangEnglish},
	{"It doesn't work", strongNeg, LangEnglish},
	{"Would not buy again", strongNeg, LangEnglish},
	{"pretty bad quality", strongNeg, LangEnglish},
	{"not good", neg, LangEnglish},
	{"It doesn’t work", strongNeg, LangEnglish}, // typographic apostrophe
	{"IT DOESN'T WORK", strongNeg, LangEnglish},
	{"It no longer works", strongNeg, LangEnglish},
	{"Without a doubt, excellent idea.", strongPos, LangEnglish},
	{"Great stuff :)", strongPos, LangEnglish},
	{"Not bad, great quality", strongPos, LangEnglish},
	{"Not as described", neg, LangEnglish},
	{"The product is fine but shipping took forever", neg, LangEnglish},
	{"The color is beautiful, however the zipper broke.", neg, LangEnglish},
	// English service tickets.
	{"Item arrived damaged and customer service never replied. I want my money back!", strongNeg, LangEnglish},
	{"Still waiting for my refund after 3 weeks, this is unacceptable", strongNeg, LangEnglish},
	{"no refund yet", strongNeg, LangEnglish},
	{"I'm fed up with waiting", strongNeg, LangEnglish},
	{"Thank you for the quick response, problem solved", strongPos, LangEnglish},
	{"Hello, where is my order?", neutral, LangEnglish},
	{"The package arrived on Tuesday.", neutral, LangEnglish},
	{"Looks like it was used", neutral, LangEnglish},

	// Chinese reviews.
	{"质量很好，物流很快", strongPos, LangChinese},
	{"收到货了，非常满意，五星好评", strongPos, LangChinese},
	{"物超所值，下次还来", strongPos, LangChinese},
	{"鞋子穿着很舒服，尺码也合适", strongPos, LangChinese},
	{"好评！质量不错，物流也快", strongPos, LangChinese},
	{"東西不錯，很滿意", strongPos, LangChinese},
	{"不错", strongPos, LangChinese},
	{"不贵", pos, LangChinese},
	{"没有任何问题", pos, LangChinese},
	{"质量太差了，客服态度也不好", strongNeg, LangChinese},
	{"包装破损，里面的东西都碎了，非常失望", strongNeg, LangChinese},
	{"衣服有色差，而且起球", strongNeg, LangChinese},
	{"千万别买，垃圾", strongNeg, LangChinese},
	{"质量好差", strongNeg, LangChinese},
	{"太贵了", strongNeg, LangChinese},
	{"好慢", strongNeg, LangChinese},
	{"不好", strongNeg, LangChinese},
	{"不是很满意", neg, LangChinese},
	{"没有想象中好", neg, LangChinese},
	{"东西还行，就是有点贵", neg, LangChinese},
	{"东西不错，但是物流太慢了", neg, LangChinese},
	// Chinese service tickets.
	{"客服一直不回复，太坑了，要求退款", strongNeg, LangChinese},
	{"发错货了，联系客服也没人理", strongNeg, LangChinese},
	{"你好，请问什么时候发货？", neutral, LangChinese},
	{"我的订单号是123，请帮我查一下", neutral, LangChinese},
	{"快递到了", neutral, LangChinese},
	{"差不多两天就到了", neutral, LangChinese},

	// Both languages in one text: both parts count.
	{"Great shoes 质量很好", strongPos, LangMixed},
	{"Great quality 但是物流太慢了", neg, LangMixed},
	{"Terrible 质量太差了", strongNeg, LangMixed},
	{"iPhone很好用，推荐", strongPos, LangChinese}, // a brand name does not make it mixed

	// Nothing to score.
	{"", neutral, LangNone},
	{"   \n\t ", neutral, LangNone},
	{"12345 !!! ???", neutral, LangNone},
	{"Order #A-1029, size 42, colour navy.", neutral, LangEnglish},
}

func TestScore(t *testing.T) {
	for _, c := range scoreCases {
		r := scorer.Score(c.text)
		if !c.want.holds(r.Score) {
			t.Errorf("Score(%q) = %+.3f, want %s", c.text, r.Score, c.want)
		}
		if r.Lang != c.lang {
			t.Errorf("Score(%q).Lang = %q, want %q", c.text, r.Lang, c.lang)
		}
		if r.Truncated {
			t.Errorf("Score(%q).Truncated = true", c.text)
		}
	}
}

// TestOrder checks that modifiers move scores the right way.
func TestOrder(t *testing.T) {
	for _, c := range []struct{ more, less string }{
		// Intensifiers and dampeners.
		{"very good", "good"},
		{"extremely good", "good"},
		{"good", "slightly good"},
		{"good", "kind of good"},
		{"slightly bad", "bad"},
		{"bad", "very bad"},
		// Punctuation and capitals.
		{"Good!", "Good"},
		{"Good!!!", "Good!"},
		{"The product is GREAT", "The product is great"},
		// Negation.
		{"not bad", "bad"},
		{"good", "not good"},
		{"good", "never good"},
		// "but": the clause after it dominates.
		{"The box was damaged but the shoes are great", "The shoes are great but the box was damaged"},
		// Chinese degree adverbs and negators.
		{"很好", "好"},
		{"好好看", "好看"},
		{"非常满意", "满意"},
		{"满意", "有点满意"},
		{"有点失望", "失望"},
		{"失望", "非常失望"},
		{"差", "太差"},
		{"好", "不好"},
		{"不太好", "不好"},
		{"不差", "差"},
		{"物流太慢了，但是东西很好", "东西很好，但是物流太慢了"},
		// Both languages count.
		{"Great 很好", "Great"},
		{"Great", "Great 很差"},
	} {
		m, l := scorer.Score(c.more).Score, scorer.Score(c.less).Score
		if !(m > l) {
			t.Errorf("Score(%q) = %+.3f, want more than Score(%q) = %+.3f", c.more, m, c.less, l)
		}
	}
}

func TestCounts(t *testing.T) {
	for _, c := range []struct {
		text     string
		pos, neg int
	}{
		{"", 0, 0},
		{"good", 1, 0},
		{"not good", 0, 1},
		{"Great price, poor quality", 1, 1},
		{"The shoes are great, fast delivery!", 2, 0},
		{"质量很好，物流很快", 2, 0},
		{"质量太差了，客服态度也不好", 0, 2},
		{"Great quality 但是物流太慢了", 1, 1},
		// Modifiers are not terms.
		{"very", 0, 0},
		{"非常", 0, 0},
		{"不", 0, 0},
	} {
		r := scorer.Score(c.text)
		if r.Positive != c.pos || r.Negative != c.neg {
			t.Errorf("Score(%q) counts +%d -%d, want +%d -%d", c.text, r.Positive, r.Negative, c.pos, c.neg)
		}
	}
}

// TestVADER compares English scores with vaderSentiment 3.3.2's compound
// scores, computed by the reference implementation on these sentences.
// spur reproduces VADER wherever its rules are VADER's.
func TestVADER(t *testing.T) {
	for _, c := range []struct {
		text     string
		compound float64
	}{
		{"VADER is smart, handsome, and funny.", 0.8316},
		{"VADER is smart, handsome, and funny!", 0.8439},
		{"The book was good.", 0.4404},
		{"At least it isn't a horrible book.", 0.4310},
		{"The book was only kind of good.", 0.3832},
		{"The plot was good, but the characters are uncompelling and the dialog is not great.", -0.7042},
		{"Today SUX!", -0.5461},
		{"Today only kinda sux! But I'll get by, lol", 0.5249},
		{"Not bad at all", 0.4310},
		{"Sentiment analysis has never been good.", -0.3412},
		{"Sentiment analysis has never been this good!", 0.5672},
		{"Most automated sentiment analysis tools are shit.", -0.5574},
		{"Other sentiment analysis tools can be quite bad.", -0.5849},
		{"Roger Dodger is one of the most compelling variations on this theme.", 0.2944},
		{"Roger Dodger is at least compelling as a variation on the theme.", 0.2263},
		{"Roger Dodger is one of the least compelling variations on this theme.", -0.1695},
		{"not bad", 0.4310},
		{"not good", -0.3412},
		{"very good", 0.4927},
		{"good", 0.4404},
		{"extremely good", 0.4927},
		{"slightly good", 0.3832},
		{"I love these shoes", 0.6369},
		{"Absolutely love it!!!", 0.7483},
		{"I HATE this product", -0.6633},
		{"This is the worst purchase I have ever made", -0.6249},
		{"Excellent quality, highly recommend this seller", 0.7574},
		{"Is this any good??", 0.5040},
		{"It was horrible???", -0.6174},
		{"Make sure you :)", 0.6486},
	} {
		if got := scorer.Score(c.text).Score; math.Abs(got-c.compound) > 0.0005 {
			t.Errorf("Score(%q) = %+.4f, VADER says %+.4f", c.text, got, c.compound)
		}
	}
	// Where spur departs from VADER on purpose (see doc.go), the sign still
	// agrees on these.
	for _, c := range []struct {
		text     string
		compound float64
		why      string
	}{
		{"VADER is very smart, handsome, and funny.", 0.8545, "boosters stop at commas"},
		{"VADER is not smart, handsome, nor funny.", -0.7424, "negation stops at commas"},
		{"Make sure you :) or :D today!", 0.8633, "emoticons are never ALL CAPS"},
		{"The seller was rude and unhelpful.", -0.4588, "supplement adds \"unhelpful\""},
	} {
		if got := scorer.Score(c.text).Score; got*c.compound <= 0 {
			t.Errorf("Score(%q) = %+.4f, VADER says %+.4f (differs because %s, but the sign should agree)",
				c.text, got, c.compound, c.why)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	texts := make([]string, 0, len(scoreCases))
	want := make([]Result, 0, len(scoreCases))
	for _, c := range scoreCases {
		texts = append(texts, c.text)
		want = append(want, scorer.Score(c.text))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 * len(texts) {
				k := (i + g) % len(texts)
				if got := scorer.Score(texts[k]); got != want[k] {
					t.Errorf("Score(%q) = %+v concurrently, %+v alone", texts[k], got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestScoreDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("instrumented builds allocate")
	}
	for _, text := range []string{benchEnglish, benchChinese, benchEnglish + benchChinese,
		"Pretty BAD, kind of broken :( no refund", strings.Repeat("很好", 5000)} {
		if n := testing.AllocsPerRun(20, func() { scorer.Score(text) }); n != 0 {
			t.Errorf("Score(%.20q...) allocates %v times", text, n)
		}
	}
}

func TestLang(t *testing.T) {
	for _, c := range []struct {
		latin, han int
		want       string
	}{
		{0, 0, LangNone},
		{10, 0, LangEnglish},
		{0, 10, LangChinese},
		{10, 4, LangMixed},
		{6, 5, LangChinese},   // "iPhone很好用，推荐"
		{100, 2, LangEnglish}, // a Chinese product name in an English review
	} {
		if got := lang(c.latin, c.han); got != c.want {
			t.Errorf("lang(%d, %d) = %q, want %q", c.latin, c.han, got, c.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, x := range []float64{0, 1, -1, 4, -4, 1e6, -1e6, math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN()} {
		if v := normalize(x); !(v >= -1 && v <= 1) {
			t.Errorf("normalize(%v) = %v, outside [-1, 1]", x, v)
		}
	}
}
