package sentiment

import (
	"unicode"
	"unicode/utf8"
)

// Chinese has no spaces between words, so a run of Han characters is cut
// by forward maximum matching: at each position take the longest lexicon
// term that starts there (up to the longest term that begins with that
// character), else step over one character. Negators and degree adverbs
// wait for the next sentiment word in the run and multiply its valence.

// zhMaxGap is how many unmatched characters a waiting negator or degree
// adverb survives: 没有想象中好 ("not as good as imagined") keeps 没有 across
// 想象中.
const zhMaxGap = 3

// isHan reports whether r is a Han (Chinese) character.
func isHan(r rune) bool {
	switch {
	case r >= cjkStart && r <= cjkEnd:
		return true
	case r < 0x2E80, r >= 0xFF00 && r <= 0xFFFF:
		// Below the CJK radicals; fullwidth forms, specials (including
		// utf8.RuneError, which every invalid byte decodes to).
		return false
	}
	return unicode.Is(unicode.Han, r)
}

// decodeRune is utf8.DecodeRuneInString(s[i:]) with a fast path for the
// three-byte sequences that Chinese text is made of.
func decodeRune(s string, i int) (rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	if c&0xF0 == 0xE0 && i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
		r := rune(c&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
		if r >= 0x800 && (r < 0xD800 || r > 0xDFFF) {
			return r, 3
		}
	}
	return utf8.DecodeRuneInString(s[i:])
}

// zhState holds the modifiers waiting for a sentiment word, and a sentiment
// word that may turn out to be a degree adverb (好 in 好慢).
type zhState struct {
	active   bool    // a modifier is waiting
	neg, deg float64 // its multipliers, valid while active
	gap      int     // characters passed since the last modifier
	held     zhEntry
	hasHeld  bool
}

func (z *zhState) activate() {
	if !z.active {
		z.active, z.neg, z.deg, z.gap = true, 1, 1, 0
	}
}

// factor is the multiplier the waiting modifiers give a sentiment word.
func (z *zhState) factor() float64 {
	if !z.active {
		return 1
	}
	return z.neg * z.deg
}

func (z *zhState) reset() {
	z.active, z.gap = false, 0
}

// hanRun scores one maximal run of Han characters.
func (sc *scan) hanRun(run string) {
	// English modifiers do not reach into Chinese text.
	sc.flushHeld()
	sc.nring = 0

	s := sc.s
	for i := 0; i < len(run); {
		r, size := decodeRune(run, i)
		if maxRunes := s.zhMaxRunes(r); maxRunes > 0 {
			// Offsets of the ends of the next maxRunes characters.
			var ends [maxZhRunes]int
			ends[0] = i + size
			m := 1
			for ; m < maxRunes && ends[m-1] < len(run); m++ {
				_, n := decodeRune(run, ends[m-1])
				ends[m] = ends[m-1] + n
			}
			matched := false
			for l := m; l > 0; l-- {
				if e, ok := s.zh[run[i:ends[l-1]]]; ok {
					sc.zhTerm(e)
					sc.han += int(e.runes)
					i = ends[l-1]
					matched = true
					break
				}
			}
			if matched {
				continue
			}
		}
		sc.zhSkip(1)
		sc.han++
		i += size
	}
	sc.zhFlush()
}

// zhTerm applies one matched lexicon term.
func (sc *scan) zhTerm(e zhEntry) {
	z := &sc.zh
	switch e.kind {
	case zhNegator:
		sc.zhRelease()
		z.activate()
		z.neg *= float64(e.value)
		z.gap = 0
	case zhDegree:
		sc.zhRelease()
		z.activate()
		z.deg *= float64(e.value)
		z.gap = 0
	case zhContrast:
		sc.zhFlush()
		sc.contrast()
	case zhNeutral:
		sc.zhSkip(int(e.runes))
	case zhSentiment:
		if z.hasHeld {
			// 好 right before a sentiment word means "very": 好慢.
			z.hasHeld = false
			z.activate()
			z.deg *= float64(z.held.degree)
		}
		if e.degree > 0 {
			z.held, z.hasHeld = e, true
			return
		}
		sc.add(float64(e.value) * z.factor())
		z.reset()
	}
}

// zhSkip passes over n characters that are not modifiers or sentiment
// words; waiting modifiers expire after zhMaxGap of them.
func (sc *scan) zhSkip(n int) {
	sc.zhRelease()
	z := &sc.zh
	if z.active {
		z.gap += n
		if z.gap > zhMaxGap {
			z.reset()
		}
	}
}

// zhRelease scores a held word as the sentiment word it is.
func (sc *scan) zhRelease() {
	z := &sc.zh
	if z.hasHeld {
		z.hasHeld = false
		sc.add(float64(z.held.value) * z.factor())
		z.reset()
	}
}

// zhFlush ends the Chinese clause.
func (sc *scan) zhFlush() {
	sc.zhRelease()
	sc.zh.reset()
}
