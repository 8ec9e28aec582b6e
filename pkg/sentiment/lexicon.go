package sentiment

import (
	_ "embed"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The lexicons are compiled into the binary so that a Scorer needs no files
// at run time; LEXICON.md says where each comes from and under what licence.
var (
	//go:embed data/vader_lexicon.tsv
	vaderTSV string
	//go:embed data/en_ecommerce.tsv
	enSupplementTSV string
	//go:embed data/zh_lexicon.tsv
	zhTSV string
)

// maxValence bounds every valence in every lexicon (VADER's scale).
const maxValence = 4

// lexiconError is a malformed line in one of the lexicon files.
type lexiconError struct {
	file string
	line int
	msg  string
}

func (e *lexiconError) Error() string {
	return fmt.Sprintf("sentiment: %s:%d: %s", e.file, e.line, e.msg)
}

// eachLine calls fn with the tab-separated fields of every line of src that
// is neither blank nor a comment, stopping at the first error.
func eachLine(file, src string, fn func(line int, fields []string) error) error {
	for n := 1; src != ""; n++ {
		line := src
		if i := strings.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			src = ""
		}
		line = strings.TrimSuffix(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		if err := fn(n, strings.Split(line, "\t")); err != nil {
			return &lexiconError{file: file, line: n, msg: err.Error()}
		}
	}
	return nil
}

// parseValence reads a valence and checks it lies on VADER's scale.
func parseValence(s string) (float32, error) {
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", s)
	}
	if math.IsNaN(v) || v < -maxValence || v > maxValence {
		return 0, fmt.Errorf("valence %v outside [-%d, %d]", v, maxValence, maxValence)
	}
	return float32(v), nil
}

// loadEnglish builds the English word and phrase tables: the VADER lexicon,
// then the project's supplement (which must not repeat a VADER term), then
// the rule words of english_rules.go.
func loadEnglish(vader, supplement string) (words, phrases map[string]enWord, err error) {
	words = make(map[string]enWord, 8000)
	phrases = make(map[string]enWord, 64)

	add := func(term string, w enWord, allowDup bool) error {
		// Terms are stored as written. Words are looked up lower-cased, so a
		// term with capitals (VADER's ":D") matches only as an emoticon,
		// which is looked up as written first.
		table := words
		switch strings.Count(term, " ") {
		case 0:
		case 1:
			head, tail, _ := strings.Cut(term, " ")
			if head == "" || tail == "" {
				return fmt.Errorf("bad phrase %q", term)
			}
			if len(head) > maxHeadBytes {
				return fmt.Errorf("phrase head %q longer than %d bytes", head, maxHeadBytes)
			}
			table = phrases
		default:
			// Longer phrases are not matched; VADER's own scorer never
			// matches them either.
			return nil
		}
		if _, dup := table[term]; dup && !allowDup {
			return fmt.Errorf("duplicate term %q", term)
		}
		table[term] = w
		return nil
	}

	err = eachLine("vader_lexicon.tsv", vader, func(_ int, f []string) error {
		if len(f) != 2 {
			return fmt.Errorf("want 2 fields, got %d", len(f))
		}
		v, err := parseValence(f[1])
		if err != nil {
			return err
		}
		return add(f[0], enWord{valence: v, flags: fLex}, false)
	})
	if err != nil {
		return nil, nil, err
	}
	nVader := len(words) + len(phrases)
	err = eachLine("en_ecommerce.tsv", supplement, func(_ int, f []string) error {
		if len(f) != 2 && len(f) != 3 {
			return fmt.Errorf("want 2 or 3 fields, got %d", len(f))
		}
		if _, ok := words[f[0]]; ok {
			return fmt.Errorf("term %q repeats a VADER entry", f[0])
		}
		if _, ok := phrases[f[0]]; ok {
			return fmt.Errorf("term %q repeats a VADER entry", f[0])
		}
		var w enWord
		v, err := parseValence(f[1])
		if err != nil {
			return err
		}
		w.valence = v
		if len(f) == 3 {
			if w.negValence, err = parseValence(f[2]); err != nil {
				return err
			}
		}
		if w.valence != 0 || w.negValence != 0 {
			w.flags |= fLex
		}
		return add(f[0], w, false)
	})
	if err != nil {
		return nil, nil, err
	}
	if len(words)+len(phrases) == nVader {
		return nil, nil, fmt.Errorf("sentiment: en_ecommerce.tsv: no entries")
	}

	// Rule words: flags and booster values merge into whatever the lexicon
	// says about the same word.
	for _, r := range enRules {
		table := words
		if strings.Contains(r.term, " ") {
			table = phrases
		}
		w := table[r.term]
		w.flags |= r.flags
		if r.booster != 0 {
			w.booster = r.booster
			if w.flags&fLex != 0 && w.valence != 0 {
				// A word such as "incredible" is both: a booster before a
				// sentiment word, a sentiment word on its own.
				w.flags |= fSoftBooster
			}
		}
		table[r.term] = w
	}
	// Every first word of a phrase must be known, so that the scanner can
	// hold it back until it sees the next word.
	for term := range phrases {
		head, _, _ := strings.Cut(term, " ")
		w := words[head]
		w.flags |= fPhraseHead
		words[head] = w
	}
	return words, phrases, nil
}

// zhKind is what a Chinese lexicon entry does.
type zhKind uint8

const (
	zhSentiment zhKind = iota + 1
	zhNegator
	zhDegree
	zhContrast
	zhNeutral
)

// zhEntry is one Chinese lexicon entry.
type zhEntry struct {
	kind  zhKind
	runes uint8   // length in runes
	value float32 // valence, negation scalar or degree factor
	// degree, when non-zero, makes a sentiment word act as a degree adverb
	// when another sentiment word follows it at once (好 in 好慢).
	degree float32
}

// maxZhRunes bounds the length of a Chinese term; the scanner keeps the rune
// offsets of one candidate match in an array of this size.
const maxZhRunes = 8

// loadChinese builds the Chinese table and, for every first rune of a term,
// the length of the longest term starting with it.
func loadChinese(src string) (map[string]zhEntry, map[rune]uint8, error) {
	table := make(map[string]zhEntry, 700)
	first := make(map[rune]uint8, 500)
	err := eachLine("zh_lexicon.tsv", src, func(_ int, f []string) error {
		if len(f) != 3 && len(f) != 4 {
			return fmt.Errorf("want 3 or 4 fields, got %d", len(f))
		}
		term := f[0]
		n := utf8.RuneCountInString(term)
		if n == 0 || n > maxZhRunes {
			return fmt.Errorf("term %q: length %d outside [1, %d]", term, n, maxZhRunes)
		}
		for _, r := range term {
			if !isHan(r) {
				return fmt.Errorf("term %q: %q is not a Han character", term, r)
			}
		}
		if _, dup := table[term]; dup {
			return fmt.Errorf("duplicate term %q", term)
		}
		e := zhEntry{runes: uint8(n)}
		switch f[1] {
		case "s":
			e.kind = zhSentiment
		case "n":
			e.kind = zhNegator
		case "d":
			e.kind = zhDegree
		case "c":
			e.kind = zhContrast
		case "o":
			e.kind = zhNeutral
		default:
			return fmt.Errorf("unknown kind %q", f[1])
		}
		v, err := strconv.ParseFloat(f[2], 32)
		if err != nil {
			return fmt.Errorf("bad number %q", f[2])
		}
		e.value = float32(v)
		switch e.kind {
		case zhSentiment:
			if _, err := parseValence(f[2]); err != nil {
				return err
			}
			if v == 0 {
				return fmt.Errorf("sentiment term %q has valence 0; use kind o", term)
			}
		case zhNegator:
			if v >= 0 || v < -1 {
				return fmt.Errorf("negator %q: scalar %v outside [-1, 0)", term, v)
			}
		case zhDegree:
			if v <= 0 || v > 2 {
				return fmt.Errorf("degree %q: factor %v outside (0, 2]", term, v)
			}
		case zhContrast, zhNeutral:
			if v != 0 {
				return fmt.Errorf("term %q: kind %s takes value 0", term, f[1])
			}
		}
		if len(f) == 4 {
			if e.kind != zhSentiment {
				return fmt.Errorf("term %q: only sentiment terms take a degree", term)
			}
			d, err := strconv.ParseFloat(f[3], 32)
			if err != nil || d <= 0 || d > 2 {
				return fmt.Errorf("term %q: bad degree %q", term, f[3])
			}
			e.degree = float32(d)
		}
		table[term] = e
		r, _ := utf8.DecodeRuneInString(term)
		if uint8(n) > first[r] {
			first[r] = uint8(n)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(table) == 0 {
		return nil, nil, fmt.Errorf("sentiment: zh_lexicon.tsv: no entries")
	}
	return table, first, nil
}
