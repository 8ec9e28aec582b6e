package sentiment

import (
	"math"
	"unicode/utf8"
)

// DefaultMaxBytes is how much of a text Score reads unless WithMaxBytes says
// otherwise. Feedback text may be 10,000 characters (up to 40 KB of UTF-8);
// the opening 8 KB carries the verdict of nearly every review and ticket and
// keeps the cost of one call bounded on the hot path.
const DefaultMaxBytes = 8 << 10

// Lang values of a Result.
const (
	LangNone    = ""      // no letters of either script
	LangEnglish = "en"    // Latin letters only, or nearly
	LangChinese = "zh"    // Han characters only, or nearly
	LangMixed   = "mixed" // a substantial share of each
)

// Result is the sentiment of one text.
type Result struct {
	// Score is the overall sentiment, normalised to [-1, 1]: negative below
	// zero, positive above. VADER's convention reads |Score| < 0.05 as
	// neutral.
	Score float64
	// Positive and Negative count the sentiment terms that matched, by the
	// sign of their valence after negation and intensifiers.
	Positive, Negative int
	// Lang is the script of the scanned text: LangEnglish, LangChinese,
	// LangMixed or LangNone.
	Lang string
	// Truncated reports that the text was longer than the scorer's byte
	// limit and only its beginning was scored.
	Truncated bool
}

// Scorer scores English and Chinese text against embedded lexicons. It is
// immutable once built and safe for concurrent use; build one with New and
// share it.
type Scorer struct {
	enWords   map[string]enWord // lower-case words, with rule flags
	enPhrases map[string]enWord // "head tail", lower case
	zh        map[string]zhEntry
	// zhFirst holds, for a rune that starts some Chinese term, the length in
	// runes of the longest such term; zhFirstBMP covers the main CJK block
	// without a map look-up.
	zhFirstBMP [cjkEnd - cjkStart + 1]uint8
	zhFirst    map[rune]uint8
	maxBytes   int
}

// The CJK Unified Ideographs block, where nearly all Chinese text lives.
const (
	cjkStart = 0x4E00
	cjkEnd   = 0x9FFF
)

// Option configures a Scorer.
type Option func(*Scorer)

// WithMaxBytes sets how many bytes of a text Score reads (DefaultMaxBytes
// if n <= 0). Longer texts are cut at a character boundary and the Result
// says Truncated.
func WithMaxBytes(n int) Option {
	return func(s *Scorer) {
		if n <= 0 {
			n = DefaultMaxBytes
		}
		s.maxBytes = n
	}
}

// New builds a Scorer from the embedded lexicons. It takes a few
// milliseconds; build one per process, not per event. It panics only if the
// embedded lexicons are malformed, which the package's tests rule out.
func New(opts ...Option) *Scorer {
	s, err := newScorer(vaderTSV, enSupplementTSV, zhTSV)
	if err != nil {
		panic(err)
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func newScorer(vader, enSupplement, zh string) (*Scorer, error) {
	words, phrases, err := loadEnglish(vader, enSupplement)
	if err != nil {
		return nil, err
	}
	zhTable, first, err := loadChinese(zh)
	if err != nil {
		return nil, err
	}
	s := &Scorer{
		enWords:   words,
		enPhrases: phrases,
		zh:        zhTable,
		zhFirst:   make(map[rune]uint8),
		maxBytes:  DefaultMaxBytes,
	}
	for r, n := range first {
		if r >= cjkStart && r <= cjkEnd {
			s.zhFirstBMP[r-cjkStart] = n
		} else {
			s.zhFirst[r] = n
		}
	}
	return s, nil
}

// zhMaxRunes is the length of the longest Chinese term starting with r, or
// 0 if none does.
func (s *Scorer) zhMaxRunes(r rune) int {
	if r >= cjkStart && r <= cjkEnd {
		return int(s.zhFirstBMP[r-cjkStart])
	}
	if len(s.zhFirst) == 0 {
		return 0
	}
	return int(s.zhFirst[r])
}

// Score returns the sentiment of text. It reads at most the scorer's byte
// limit, never panics, tolerates invalid UTF-8 (bad bytes separate words),
// and gives the same Result for the same text every time. It does not
// allocate.
func (s *Scorer) Score(text string) Result {
	var res Result
	if len(text) > s.maxBytes {
		text = cutAt(text, s.maxBytes)
		res.Truncated = true
	}
	sc := scan{s: s, text: text, capDiff: capDiffUnknown}
	sc.run()
	sc.endSentence()
	sum := sc.total + sc.prev

	// Punctuation emphasis strengthens whichever way the text leans.
	emph := float64(min(sc.excl, maxExcl)) * exclIncr
	switch {
	case sc.quest > 3:
		emph += questMax
	case sc.quest > 1:
		emph += float64(sc.quest) * questIncr
	}
	switch {
	case sum > 0:
		sum += emph
	case sum < 0:
		sum -= emph
	}
	res.Score = normalize(sum)
	res.Positive, res.Negative = sc.pos, sc.neg
	res.Lang = lang(sc.latin, sc.han)
	return res
}

// cutAt shortens text to at most n bytes, ending before any character that
// the limit would split.
func cutAt(text string, n int) string {
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(text[i]) {
		i--
	}
	if !utf8.RuneStart(text[i]) {
		// Not UTF-8 around the cut anyway: cut where the limit says.
		i = n
	}
	return text[:i]
}

// normalize maps a raw valence sum to [-1, 1] as VADER does:
// x/sqrt(x²+alpha), which approaches ±1 as |x| grows.
func normalize(x float64) float64 {
	switch {
	case x == 0 || math.IsNaN(x):
		return 0
	case math.IsInf(x, 0):
		return math.Copysign(1, x)
	}
	// Hypot, unlike Sqrt(x*x+alpha), does not overflow for huge x.
	v := x / math.Hypot(x, math.Sqrt(normAlpha))
	return max(-1, min(1, v))
}

// lang classifies by script volume. A Han character carries about as much
// as four Latin letters, so Han characters weigh four; a script with less
// than a quarter of the weight is incidental (a brand name in a Chinese
// review, a Chinese product name in an English one).
func lang(latin, han int) string {
	switch {
	case latin == 0 && han == 0:
		return LangNone
	case han == 0:
		return LangEnglish
	case latin == 0:
		return LangChinese
	}
	h, l := 4*han, latin
	switch total := h + l; {
	case 4*l < total:
		return LangChinese
	case 4*h < total:
		return LangEnglish
	default:
		return LangMixed
	}
}

// scan is the state of one Score call. It lives on the caller's stack.
type scan struct {
	s    *Scorer
	text string

	// Sentence accumulator. A sentence's terms gather in cur; a finished
	// sentence waits in prev, where a sentence-opening "But" can still
	// halve it, before it joins total.
	total, prev, cur float64
	curTerms         int
	afterBut         bool

	pos, neg    int
	excl, quest int
	latin, han  int

	// English window: the last three words of the clause, nearest first,
	// and one word held back until the next word shows what it is.
	ring     [3]enTok
	nring    int
	held     enTok
	hasHeld  bool
	heldKey  [maxHeadBytes]byte
	heldKeyN int
	capDiff  int8

	// Chinese modifiers waiting for the next sentiment word.
	zh zhState
}

// add records one sentiment term's valence.
func (sc *scan) add(v float64) {
	if v == 0 {
		return
	}
	if sc.afterBut {
		v *= butAfter
	}
	sc.cur += v
	sc.curTerms++
	if v > 0 {
		sc.pos++
	} else {
		sc.neg++
	}
}

// contrast handles "but": what came before it in the sentence counts half,
// what follows one and a half times. A sentence that opens with "But" halves
// the sentence before it instead.
func (sc *scan) contrast() {
	if sc.curTerms == 0 {
		sc.prev *= butBefore
	} else {
		sc.cur *= butBefore
	}
	sc.afterBut = true
}

// endSentence closes the current sentence.
func (sc *scan) endSentence() {
	sc.clause()
	if sc.curTerms == 0 {
		sc.afterBut = false
		return
	}
	sc.total += sc.prev
	sc.prev, sc.cur = sc.cur, 0
	sc.curTerms = 0
	sc.afterBut = false
}

// clause closes the current clause: negation and intensifiers do not reach
// across a comma.
func (sc *scan) clause() {
	sc.flushHeld()
	sc.nring = 0
	sc.zhFlush()
}

// run walks the text once, dispatching runs of Han characters, words and
// punctuation.
func (sc *scan) run() {
	t := sc.text
	chunkStart := true // at the start of a whitespace-delimited chunk
	for i := 0; i < len(t); {
		if chunkStart {
			if n := sc.emoticon(t[i:]); n > 0 {
				i += n
				continue
			}
		}
		r, size := decodeRune(t, i)
		chunkStart = false
		switch {
		case r < utf8.RuneSelf && isWordRune(r):
			i += sc.word(t[i:])
		case r >= utf8.RuneSelf && isHan(r):
			j := i + size
			for j < len(t) {
				r2, n := decodeRune(t, j)
				if !isHan(r2) {
					break
				}
				j += n
			}
			sc.hanRun(t[i:j])
			i = j
		case r >= utf8.RuneSelf && isWordRune(r):
			i += sc.word(t[i:])
		default:
			i += size
			sc.punct(r)
			chunkStart = isSpace(r)
		}
	}
}

// punct handles one rune that is neither a word character nor Han.
func (sc *scan) punct(r rune) {
	switch r {
	case ' ', '\t', '\r':
		// Spaces separate English words; a Han run has already ended.
	case '!', '！':
		sc.excl++
		sc.endSentence()
	case '?', '？':
		sc.quest++
		sc.endSentence()
	case '.', ';', '\n', '。', '；', '…', '｡':
		sc.endSentence()
	default:
		if isSpace(r) {
			return
		}
		// Commas, colons, brackets, quotes, symbols, invalid bytes.
		sc.clause()
	}
}

func isSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f', 0x85, 0xA0, 0x3000:
		return true
	}
	return r > 0x2000 && r <= 0x200A
}
