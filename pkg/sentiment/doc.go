// Package sentiment scores the text of feedback events (reviews and service
// tickets) in English, Chinese, or both, with lexicons and rules: no model,
// no network, no files at run time.
//
// # Use
//
// Build one Scorer with New when the process starts and share it; it is
// immutable and safe for concurrent use. Score reads at most the first
// DefaultMaxBytes (8 KB) of a text, does not allocate, and returns a Result:
// a Score in [-1, 1], the number of positive and negative terms it matched,
// and the script it saw ("en", "zh", "mixed" or ""). VADER's convention reads
// a Score within ±0.05 as neutral; what counts as unhappy enough for the
// `unhappy` tag is the pipeline's choice, not this package's.
//
//	s := sentiment.New()
//	r := s.Score("质量太差了，客服态度也不好") // r.Score ≈ -0.76
//
// # English
//
// English follows VADER (Hutto & Gilbert, ICWSM 2014) and uses its lexicon of
// about 7,500 rated words, slang terms and emoticons, plus a small e-commerce
// supplement written for spur. Each lexicon word adds its valence (-4 to +4),
// adjusted by the up to three words before it in the same clause: boosters
// ("very", "extremely") and dampeners ("slightly", "kind of") shift it;
// negations ("not", "never", "n't", "no") flip and dampen it by -0.74. A word
// in capitals among lower-case words gains emphasis. In a sentence with "but"
// (or "however"), the part before counts half and the part after one and a
// half times. Exclamation marks (up to four) and repeated question marks add
// emphasis in the direction the text already leans. The sum x becomes the
// score x/sqrt(x²+15).
//
// spur departs from VADER's reference implementation in a few places, each
// commented where it happens: the negation window stops at commas and at
// "but"; "but" applies per sentence; a word that is both a booster and a
// sentiment word ("pretty", "super", "incredible") boosts only when a
// sentiment word follows; two-word phrases ("fell apart", "kind of", "fed up")
// match as units; some neutral words score only when negated ("doesn't
// work"). Emoji are not scored.
//
// # Chinese
//
// Chinese text has no spaces, so each run of Han characters is cut by forward
// maximum matching against the Chinese lexicon: at each character take the
// longest lexicon term that starts there. The lexicon, written for spur, holds
// sentiment words on VADER's scale, negators (不, 没有, 别, 未, 无, 非, and
// softer ones such as 不太), degree adverbs (很, 非常, 太, 特别, 极其 boost;
// 有点, 稍微 dampen) and neutral words that shield a misleading character
// (快递 is a courier, not 快 "fast"). Negators and degree adverbs multiply the
// next sentiment word if it comes within three characters and before any
// punctuation; contrast words (但是, 可是, 不过) weigh clauses as "but" does.
// Chinese valences are on VADER's scale, so both languages in one review add
// up into one score.
//
// # Limits
//
// A lexicon scorer reads words, not meaning: sarcasm ("great, broke in a
// day"), domain senses it does not know, and long texts whose verdict comes
// after the first 8 KB are beyond it. The Chinese lexicon is small (about 570
// entries) and maximum matching can take the wrong cut where two words
// overlap. LEXICON.md names every lexicon's source and licence.
package sentiment
