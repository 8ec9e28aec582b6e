package sentiment

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileTexts are inputs a producer might send by mistake or on purpose.
func hostileTexts() map[string]string {
	return map[string]string{
		"10k English":       strings.Repeat("Terrible quality, not good at all! ", 300)[:10000],
		"10k Chinese":       strings.Repeat("质量很好，物流很快。", 1000)[:10000*3],
		"10k one word":      strings.Repeat("a", 10000),
		"10k capitals":      strings.Repeat("GOOD ", 2000),
		"10k exclamations":  strings.Repeat("!", 10000),
		"10k questions":     strings.Repeat("？", 10000),
		"10k apostrophes":   strings.Repeat("n't'", 2500),
		"10k hyphens":       strings.Repeat("a-", 5000),
		"10k negators":      strings.Repeat("not ", 2500),
		"10k zh negators":   strings.Repeat("不没", 5000),
		"10k zh degrees":    strings.Repeat("很非常", 3333),
		"10k held words":    strings.Repeat("no pretty kind ", 700),
		"10k emoticons":     strings.Repeat(":) ", 3333),
		"10k mixed scripts": strings.Repeat("good好bad坏", 1000),
		"invalid UTF-8":     "good \xff\xfe\xfd bad \xc0\xaf 好\xe5\xa5 \xed\xa0\x80 great",
		"only invalid":      strings.Repeat("\xff", 10000),
		"overlong":          "\xe0\x80\xaf\xf0\x80\x80\xaf\xc1\xbf",
		"NUL bytes":         "good\x00bad\x00\x00很好",
		"cut mid-rune":      strings.Repeat("a", DefaultMaxBytes-1) + "好好好",
		"cut mid-word":      strings.Repeat("x", DefaultMaxBytes-2) + " great",
		"rare Han":          "𠀀𠀁𪚥 很好 豈",
		"combining marks":   "goóód cafe\u0301 ǅ",
		"long word in zh":   "很" + strings.Repeat("z", 100) + "好",
		"emoticon-ish":      ":-) :-( <3 </3 :D D: xD (: ): :'( 8-) ;) ;-)",
	}
}

func TestHostileInput(t *testing.T) {
	for name, text := range hostileTexts() {
		t.Run(name, func(t *testing.T) {
			r := scorer.Score(text)
			checkResult(t, text, r)
			if len(text) > DefaultMaxBytes {
				if !r.Truncated {
					t.Errorf("Truncated = false for %d bytes", len(text))
				}
				// Bounded work: the result is exactly that of the prefix.
				prefix := scorer.Score(cutAt(text, DefaultMaxBytes))
				prefix.Truncated = true
				if r != prefix {
					t.Errorf("Score = %+v, prefix scores %+v", r, prefix)
				}
			}
		})
	}
}

func TestCutAt(t *testing.T) {
	for _, c := range []struct {
		text string
		n    int
		want string
	}{
		{"abcdef", 3, "abc"},
		{"好好", 3, "好"},
		{"好好", 4, "好"},
		{"好好", 5, "好"},
		{"a好", 2, "a"},
		{"😀😀", 5, "😀"},
		{"\x80\x80\x80\x80\x80\x80", 5, "\x80\x80\x80\x80\x80"}, // not UTF-8: cut at n
	} {
		if got := cutAt(c.text, c.n); got != c.want {
			t.Errorf("cutAt(%q, %d) = %q, want %q", c.text, c.n, got, c.want)
		}
	}
}

func TestWithMaxBytes(t *testing.T) {
	s := New(WithMaxBytes(16))
	r := s.Score("great great great, terrible terrible terrible")
	if !r.Truncated || r.Score <= 0 {
		t.Errorf("16-byte scorer: %+v, want truncated and positive", r)
	}
	if r := New(WithMaxBytes(0)).Score(strings.Repeat("a ", DefaultMaxBytes)); !r.Truncated {
		t.Errorf("WithMaxBytes(0) should mean the default limit")
	}
}

// checkResult holds the invariants of every Result.
func checkResult(t *testing.T, text string, r Result) {
	t.Helper()
	if math.IsNaN(r.Score) || r.Score < -1 || r.Score > 1 {
		t.Errorf("Score(%.40q) = %v, outside [-1, 1]", text, r.Score)
	}
	if r.Positive < 0 || r.Negative < 0 {
		t.Errorf("Score(%.40q) counts +%d -%d", text, r.Positive, r.Negative)
	}
	if r.Positive+r.Negative == 0 && r.Score != 0 {
		t.Errorf("Score(%.40q) = %v with no terms", text, r.Score)
	}
	switch r.Lang {
	case LangNone, LangEnglish, LangChinese, LangMixed:
	default:
		t.Errorf("Score(%.40q).Lang = %q", text, r.Lang)
	}
	if r.Truncated != (len(text) > DefaultMaxBytes) {
		t.Errorf("Score(%.40q).Truncated = %v for %d bytes", text, r.Truncated, len(text))
	}
	if again := scorer.Score(text); again != r {
		t.Errorf("Score(%.40q) not deterministic: %+v then %+v", text, r, again)
	}
}

func FuzzScore(f *testing.F) {
	for _, c := range scoreCases {
		f.Add(c.text)
	}
	for _, text := range hostileTexts() {
		f.Add(text)
	}
	f.Add(benchEnglish)
	f.Add(benchChinese)
	f.Fuzz(func(t *testing.T, text string) {
		r := scorer.Score(text)
		checkResult(t, text, r)
		// Scoring never depends on what lies past the limit.
		if len(text) > DefaultMaxBytes {
			p := scorer.Score(cutAt(text, DefaultMaxBytes))
			p.Truncated = true
			if p != r {
				t.Errorf("Score = %+v, prefix scores %+v", r, p)
			}
		}
		// Valid text stays valid when cut, so the cut never splits a rune.
		if utf8.ValidString(text) && len(text) > DefaultMaxBytes && !utf8.ValidString(cutAt(text, DefaultMaxBytes)) {
			t.Errorf("cutAt split a character")
		}
	})
}
