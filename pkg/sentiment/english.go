package sentiment

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// English scoring follows VADER (Hutto & Gilbert, 2014): each lexicon word
// contributes its valence, adjusted by the three words before it in the same
// clause (boosters, dampeners, negations), by ALL-CAPS emphasis, and by "but".
// The sentence-level parts (the "but" weighting, punctuation emphasis,
// normalisation) live in scorer.go because Chinese text shares them.

// maxWordBytes bounds a word that is looked up; no lexicon term is longer.
// Longer words still count as words, just unknown ones.
const maxWordBytes = 32

// maxEmoticonBytes bounds a whitespace-delimited chunk tried as an emoticon.
const maxEmoticonBytes = 8

// capDiff states.
const (
	capDiffUnknown int8 = iota - 1
	capDiffNo
	capDiffYes
)

// enTok is one English word as the window sees it.
type enTok struct {
	w    enWord
	caps bool // written in capitals, at least three letters: may be emphasis
}

// isWordRune reports whether r belongs to an English (or other alphabetic)
// word: letters, digits and combining marks, except Han characters, which
// the Chinese scanner takes.
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	if isHan(r) {
		return false
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

func isApostrophe(r rune) bool {
	return r == '\'' || r == '\u2019' || r == '\u02BC'
}

// asciiKind classifies ASCII bytes for the word scanner.
var asciiKind = func() (k [utf8.RuneSelf]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		k[c] = kLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		k[c] = kUpper
	}
	for c := '0'; c <= '9'; c++ {
		k[c] = kDigit
	}
	return k
}()

const (
	kOther uint8 = iota
	kLower
	kUpper
	kDigit
)

// word scans the word at the start of t, which begins with a word rune,
// feeds it to the window and returns its length in bytes. Apostrophes and
// hyphens inside a word belong to it ("don't", "well-made").
func (sc *scan) word(t string) int {
	upper, lower, apos, ascii := false, false, false, true
	letters, latin := 0, 0
	i := 0
	for i < len(t) {
		c := t[i]
		if c < utf8.RuneSelf {
			switch asciiKind[c] {
			case kLower:
				lower = true
				letters++
				i++
				continue
			case kUpper:
				upper = true
				letters++
				i++
				continue
			case kDigit:
				i++
				continue
			}
			if (c == '\'' || c == '-') && i > 0 && wordRuneAt(t, i+1) {
				apos = apos || c == '\''
				i++
				continue
			}
			break
		}
		r, size := utf8.DecodeRuneInString(t[i:])
		if !isWordRune(r) {
			if !isApostrophe(r) || i == 0 || !wordRuneAt(t, i+size) {
				break
			}
			apos = true
		} else if unicode.IsLetter(r) {
			letters++
			if unicode.Is(unicode.Latin, r) {
				latin++
			}
			if unicode.IsUpper(r) {
				upper = true
			} else if unicode.IsLower(r) {
				lower = true
			}
		}
		ascii = false
		i += size
	}
	raw := t[:i]
	if ascii {
		latin = letters
	}
	sc.latin += latin

	tok := enTok{caps: upper && !lower && letters >= 3}
	if i <= maxWordBytes {
		if ascii && !upper {
			tok.w = sc.s.enWords[raw]
			if apos && tok.w.flags&fNegator == 0 && strings.Contains(raw, "n't") {
				tok.w.flags |= fNegator
			}
		} else {
			var buf [maxWordBytes]byte
			if n, ok := lowerInto(buf[:], raw); ok {
				key := buf[:n]
				tok.w = sc.s.enWords[string(key)]
				if apos && tok.w.flags&fNegator == 0 && bytes.Contains(key, []byte("n't")) {
					tok.w.flags |= fNegator
				}
			}
		}
	}
	sc.wordTok(tok, raw)
	return i
}

// wordRuneAt reports whether a word rune starts at t[i].
func wordRuneAt(t string, i int) bool {
	if i >= len(t) {
		return false
	}
	if c := t[i]; c < utf8.RuneSelf {
		return asciiKind[c] != kOther
	}
	r, _ := utf8.DecodeRuneInString(t[i:])
	return isWordRune(r)
}

// lowerInto writes the lookup key of a word into dst: lower case, with every
// apostrophe as "'". It reports false if the key does not fit.
func lowerInto(dst []byte, raw string) (int, bool) {
	n := 0
	for _, r := range raw {
		switch {
		case 'A' <= r && r <= 'Z':
			r += 'a' - 'A'
		case r >= utf8.RuneSelf && isApostrophe(r):
			r = '\''
		case r >= utf8.RuneSelf:
			r = unicode.ToLower(r)
		}
		if r < utf8.RuneSelf {
			if n >= len(dst) {
				return 0, false
			}
			dst[n] = byte(r)
			n++
			continue
		}
		if n+utf8.RuneLen(r) > len(dst) {
			return 0, false
		}
		n += utf8.EncodeRune(dst[n:], r)
	}
	return n, true
}

// emoticon tries the whitespace-delimited chunk at the start of t as a
// lexicon emoticon (":)", ":-(", "<3") and returns its length if it is one,
// 0 otherwise. Only chunks with punctuation are tried; words go through word.
func (sc *scan) emoticon(t string) int {
	// Emoticons start with punctuation (":)", "<3" after a digit-free
	// start) or have punctuation second ("8)", "d:"); a plain word has
	// neither, and skipping it here keeps the common case cheap.
	if c := t[0]; c >= utf8.RuneSelf ||
		asciiKind[c] != kOther && (len(t) < 2 || t[1] >= utf8.RuneSelf || asciiKind[t[1]] != kOther) {
		return 0
	}
	end, punct := 0, false
	for end < len(t) && end <= maxEmoticonBytes {
		c := t[end]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		if c < utf8.RuneSelf && !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			punct = true
		}
		end++
	}
	if end == 0 || end > maxEmoticonBytes || !punct {
		return 0
	}
	chunk := t[:end]
	w, ok := sc.s.enWords[chunk]
	if !ok {
		var buf [maxEmoticonBytes]byte
		for i := 0; i < end; i++ {
			c := chunk[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		w, ok = sc.s.enWords[string(buf[:end])]
	}
	if !ok || w.flags&fLex == 0 || w.valence == 0 {
		return 0
	}
	sc.wordTok(enTok{w: enWord{valence: w.valence, flags: fLex}}, "")
	return end
}

// wordTok feeds one word to the window. A word whose role depends on the
// next word (a phrase head, a soft booster, "no") is held back until that
// word arrives or the clause ends.
func (sc *scan) wordTok(tok enTok, raw string) {
	if sc.hasHeld {
		sc.hasHeld = false
		h := sc.held
		if h.w.flags&fPhraseHead != 0 && raw != "" {
			if p, ok := sc.phrase(raw); ok {
				sc.commit(enTok{w: p, caps: h.caps && tok.caps})
				return
			}
		}
		switch {
		case tok.w.flags&fLex == 0:
			sc.commit(h)
		case h.w.flags&fSoftBooster != 0 && tok.w.valence != 0:
			// "pretty bad": a booster, not a compliment.
			h.w.flags &^= fLex | fSoftBooster
			h.w.valence = 0
			sc.push(h)
		case h.w.flags&fNo != 0:
			// "no problem": "no" negates the word after it and loses its
			// own valence (VADER).
			h.w.valence = 0
			sc.push(h)
		default:
			sc.commit(h)
		}
	}
	if tok.w.flags&(fPhraseHead|fSoftBooster|fNo) != 0 {
		sc.held, sc.hasHeld = tok, true
		n, ok := lowerInto(sc.heldKey[:], raw)
		if !ok {
			n = 0
			sc.held.w.flags &^= fPhraseHead
		}
		sc.heldKeyN = n
		return
	}
	sc.commit(tok)
}

// phrase looks up the held word followed by the word raw as a two-word
// phrase.
func (sc *scan) phrase(raw string) (enWord, bool) {
	var buf [maxHeadBytes + 1 + maxWordBytes]byte
	n := copy(buf[:], sc.heldKey[:sc.heldKeyN])
	buf[n] = ' '
	n++
	m, ok := lowerInto(buf[n:], raw)
	if !ok {
		return enWord{}, false
	}
	w, ok := sc.s.enPhrases[string(buf[:n+m])]
	return w, ok
}

// flushHeld commits a held-back word: nothing follows it in its clause.
func (sc *scan) flushHeld() {
	if sc.hasHeld {
		sc.hasHeld = false
		sc.commit(sc.held)
	}
}

// commit scores a word if it carries sentiment and pushes it into the
// window.
func (sc *scan) commit(tok enTok) {
	w := tok.w
	switch {
	case w.flags&fContrast != 0:
		sc.contrast()
		// spur: the window does not reach across "but" ("not cheap but
		// good" is not a negated "good"); VADER's does.
		sc.nring = 0
		return
	case w.flags&fLex != 0:
		sc.add(sc.valence(tok))
	}
	sc.push(tok)
}

func (sc *scan) push(tok enTok) {
	sc.ring[2], sc.ring[1], sc.ring[0] = sc.ring[1], sc.ring[0], tok
	if sc.nring < len(sc.ring) {
		sc.nring++
	}
}

// valence is VADER's sentiment_valence for one lexicon word, given the
// window of up to three words before it.
func (sc *scan) valence(tok enTok) float64 {
	w := tok.w
	r, n := &sc.ring, sc.nring
	if w.negValence != 0 && sc.negated() {
		// The lexicon says what this word means negated: "doesn't work",
		// "no refund".
		return float64(w.negValence)
	}
	if w.valence == 0 {
		return 0
	}
	v := float64(w.valence)

	// "no" one or two words before: "no problem", "no real problem",
	// "no X or Y".
	if n > 0 && r[0].w.flags&fNo != 0 || n > 1 && r[1].w.flags&fNo != 0 ||
		n > 2 && r[2].w.flags&fNo != 0 && r[0].w.flags&fOrNor != 0 {
		v *= negScalar
	}
	if tok.caps && sc.capsDifferential() {
		if v > 0 {
			v += capsIncr
		} else {
			v -= capsIncr
		}
	}
	for k := range n {
		p := &r[k]
		if p.w.flags&fLex != 0 {
			// A sentiment word before this one neither boosts nor negates.
			continue
		}
		if p.w.booster != 0 {
			b := float64(p.w.booster)
			if v < 0 {
				b = -b
			}
			if p.caps && sc.capsDifferential() {
				if v > 0 {
					b += capsIncr
				} else {
					b -= capsIncr
				}
			}
			switch k {
			case 1:
				b *= farBooster1
			case 2:
				b *= farBooster2
			}
			v += b
		}
		v = sc.negationCheck(k, v)
	}
	// "least helpful" negates; "at least", "very least" do not.
	if n > 0 && r[0].w.flags&(fLeast|fLex) == fLeast &&
		(n == 1 || r[1].w.flags&fAtVery == 0) {
		v *= negScalar
	}
	return v
}

// negationCheck applies VADER's negation rule for the word k+1 places back.
func (sc *scan) negationCheck(k int, v float64) float64 {
	r := &sc.ring
	switch k {
	case 0:
		if r[0].w.flags&fNegator != 0 {
			v *= negScalar
		}
	case 1:
		switch {
		case r[1].w.flags&fNever != 0 && r[0].w.flags&fSoThis != 0:
			v *= neverSoThis // "never so good"
		case r[1].w.flags&fWithout != 0 && r[0].w.flags&fDoubt != 0:
			// "without doubt good"
		case r[1].w.flags&fNegator != 0:
			v *= negScalar
		}
	case 2:
		switch {
		case r[2].w.flags&fNever != 0 && (r[1].w.flags|r[0].w.flags)&fSoThis != 0:
			// "never so very good", "never been this good". VADER's code
			// reads "never and so, or this", which also boosts any word
			// after "this"; spur reads it as meant.
			v *= neverSoThis
		case r[2].w.flags&fWithout != 0 && (r[1].w.flags|r[0].w.flags)&fDoubt != 0:
		case r[2].w.flags&fNegator != 0:
			v *= negScalar
		}
	}
	return v
}

// negated reports whether a negation reaches the next word.
func (sc *scan) negated() bool {
	r, n := &sc.ring, sc.nring
	if n > 0 && r[0].w.flags&fNo != 0 || n > 1 && r[1].w.flags&fNo != 0 {
		return true
	}
	for k := range n {
		if r[k].w.flags&(fNegator|fLex) == fNegator {
			return true
		}
	}
	return false
}

// capsDifferential is VADER's allcap_differential: some words, but not
// all, are in capitals. Only then is a capitalised word emphasis. It is
// computed on first need, which is rare, by a second pass over the text.
func (sc *scan) capsDifferential() bool {
	if sc.capDiff == capDiffUnknown {
		sc.capDiff = capDiffNo
		if capsDiff(sc.text) {
			sc.capDiff = capDiffYes
		}
	}
	return sc.capDiff == capDiffYes
}

func capsDiff(t string) bool {
	words, caps := 0, 0
	inWord, upper, lower := false, false, false
	endWord := func() {
		if inWord {
			words++
			if upper && !lower {
				caps++
			}
		}
		inWord, upper, lower = false, false, false
	}
	for _, r := range t {
		if !isWordRune(r) {
			endWord()
			continue
		}
		inWord = true
		switch {
		case 'a' <= r && r <= 'z':
			lower = true
		case 'A' <= r && r <= 'Z':
			upper = true
		case r >= utf8.RuneSelf && unicode.IsUpper(r):
			upper = true
		case r >= utf8.RuneSelf && unicode.IsLower(r):
			lower = true
		}
	}
	endWord()
	return caps > 0 && caps < words
}
