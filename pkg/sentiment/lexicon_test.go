package sentiment

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

// vaderSHA256 is the SHA-256 of data/vader_lexicon.tsv as LEXICON.md
// documents it. A change to the file must come with a change to LEXICON.md.
const vaderSHA256 = "11c8f0a485f8837259d09c16d1bf83591310a671fe3b4360980ffa5f4b108d7b"

func TestEmbeddedLexicons(t *testing.T) {
	s, err := newScorer(vaderTSV, enSupplementTSV, zhTSV)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(vaderTSV))
	if got := hex.EncodeToString(sum[:]); got != vaderSHA256 {
		t.Errorf("data/vader_lexicon.tsv has SHA-256 %s, LEXICON.md documents %s", got, vaderSHA256)
	}
	doc, err := os.ReadFile("LEXICON.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), vaderSHA256) {
		t.Errorf("LEXICON.md does not state the SHA-256 of data/vader_lexicon.tsv")
	}
	if _, err := os.Stat("data/VADER-LICENSE.txt"); err != nil {
		t.Errorf("VADER's licence must ship with its lexicon: %v", err)
	}

	var lex int
	for _, w := range s.enWords {
		if w.flags&fLex != 0 {
			lex++
		}
	}
	if lex < 7500 {
		t.Errorf("%d English lexicon words, want the VADER lexicon's 7,500 and more", lex)
	}
	if len(s.zh) < 500 {
		t.Errorf("%d Chinese terms, want at least 500", len(s.zh))
	}
	for term := range s.enPhrases {
		head, _, _ := strings.Cut(term, " ")
		if s.enWords[head].flags&fPhraseHead == 0 {
			t.Errorf("phrase %q: head %q not marked", term, head)
		}
	}
	// The brief's negators and degree adverbs are all there.
	for _, term := range []string{"不", "没", "没有", "别", "未", "无", "非"} {
		if s.zh[term].kind != zhNegator {
			t.Errorf("%s is not a negator", term)
		}
	}
	for _, term := range []string{"很", "非常", "太", "特别", "极其", "有点", "稍微"} {
		if s.zh[term].kind != zhDegree {
			t.Errorf("%s is not a degree adverb", term)
		}
	}
}

// TestNeutralTermsShield checks that every neutral Chinese term exists for
// a reason: it overlaps a term that does something, which it stops the
// longest-match scan from taking.
func TestNeutralTermsShield(t *testing.T) {
	for term, e := range scorer.zh {
		if e.kind != zhNeutral {
			continue
		}
		r := []rune(term)
		shields := false
		for i := range r {
			for j := i + 1; j <= len(r) && !shields; j++ {
				if o, ok := scorer.zh[string(r[i:j])]; ok && o.kind != zhNeutral {
					shields = true
				}
			}
		}
		if !shields {
			t.Errorf("neutral term %q contains no other term", term)
		}
	}
}

func TestLexiconErrors(t *testing.T) {
	const zhOK = "好\ts\t2\n"
	const enOK = "refund\t-1\n"
	for _, c := range []struct {
		name              string
		vader, en, zh     string
		wantFile, wantMsg string
	}{
		{"vader fields", "good\n", enOK, zhOK, "vader_lexicon.tsv:1", "want 2 fields"},
		{"vader number", "good\tx\n", enOK, zhOK, "vader_lexicon.tsv:1", "bad number"},
		{"vader range", "good\t1\nbad\t-9\n", enOK, zhOK, "vader_lexicon.tsv:2", "outside"},
		{"vader dup", "good\t1\ngood\t2\n", enOK, zhOK, "vader_lexicon.tsv:2", "duplicate"},
		{"en repeats vader", "good\t1\n", "good\t2\n", zhOK, "en_ecommerce.tsv:1", "repeats a VADER entry"},
		{"en fields", "good\t1\n", "# c\n\nx\t1\t2\t3\n", zhOK, "en_ecommerce.tsv:3", "want 2 or 3 fields"},
		{"en negated", "good\t1\n", "work\t0\tx\n", zhOK, "en_ecommerce.tsv:1", "bad number"},
		{"en empty", "good\t1\n", "# nothing\n", zhOK, "en_ecommerce.tsv", "no entries"},
		{"en long head", "good\t1\n", strings.Repeat("a", 30) + " b\t1\n", zhOK, "en_ecommerce.tsv:1", "longer than"},
		{"zh fields", "good\t1\n", enOK, "好\ts\n", "zh_lexicon.tsv:1", "want 3 or 4"},
		{"zh not Han", "good\t1\n", enOK, "好a\ts\t1\n", "zh_lexicon.tsv:1", "not a Han"},
		{"zh too long", "good\t1\n", enOK, "好好好好好好好好好\ts\t1\n", "zh_lexicon.tsv:1", "outside [1, 8]"},
		{"zh dup", "good\t1\n", enOK, zhOK + zhOK, "zh_lexicon.tsv:2", "duplicate"},
		{"zh kind", "good\t1\n", enOK, "好\tx\t1\n", "zh_lexicon.tsv:1", "unknown kind"},
		{"zh zero valence", "good\t1\n", enOK, "好\ts\t0\n", "zh_lexicon.tsv:1", "use kind o"},
		{"zh negator", "good\t1\n", enOK, "不\tn\t0.5\n", "zh_lexicon.tsv:1", "outside [-1, 0)"},
		{"zh degree", "good\t1\n", enOK, "很\td\t3\n", "zh_lexicon.tsv:1", "outside (0, 2]"},
		{"zh neutral value", "good\t1\n", enOK, "快递\to\t1\n", "zh_lexicon.tsv:1", "takes value 0"},
		{"zh degree on negator", "good\t1\n", enOK, "不\tn\t-0.7\t1.2\n", "zh_lexicon.tsv:1", "only sentiment"},
		{"zh bad degree", "good\t1\n", enOK, "好\ts\t2\t9\n", "zh_lexicon.tsv:1", "bad degree"},
		{"zh empty", "good\t1\n", enOK, "", "zh_lexicon.tsv", "no entries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := newScorer(c.vader, c.en, c.zh)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.wantFile) || !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q, want %q and %q", err, c.wantFile, c.wantMsg)
			}
			var le *lexiconError
			if strings.Contains(c.wantFile, ":") && !errors.As(err, &le) {
				t.Errorf("error %q is not a *lexiconError", err)
			}
		})
	}
}

func TestCRLFLexicon(t *testing.T) {
	s, err := newScorer("good\t1.9\r\n", "refund\t-1\r\n", "好\ts\t2\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.enWords["good"].valence != 1.9 || s.zh["好"].value != 2 {
		t.Errorf("CRLF lines not read: %+v %+v", s.enWords["good"], s.zh["好"])
	}
}
