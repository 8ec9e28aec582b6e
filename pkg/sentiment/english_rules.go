package sentiment

// The constants and word lists in this file are adapted from VADER's
// reference implementation, vaderSentiment.py 3.3.2 (C.J. Hutto, MIT licence;
// see LEXICON.md and data/VADER-LICENSE.txt). Where spur departs from it, the
// comment says so.

// Empirical constants from VADER (Hutto & Gilbert, ICWSM 2014).
const (
	boostIncr   = 0.293 // B_INCR: a booster word ("very") adds this much
	boostDecr   = -0.293
	capsIncr    = 0.733 // C_INCR: an ALL-CAPS word among lower-case ones
	negScalar   = -0.74 // N_SCALAR: negation flips and dampens
	exclIncr    = 0.292 // per "!", at most maxExcl of them
	maxExcl     = 4
	questIncr   = 0.18 // per "?" when there are 2 or 3
	questMax    = 0.96 // for 4 or more "?"
	normAlpha   = 15   // score/sqrt(score²+alpha)
	butBefore   = 0.5  // the clause before "but" counts half
	butAfter    = 1.5  // the clause after it one and a half times
	neverSoThis = 1.25 // "never so good": emphasis, not negation
	farBooster1 = 0.95 // a booster two words back counts 95%
	farBooster2 = 0.9  // three words back, 90%
)

// enFlag marks what a word does besides carrying a valence.
type enFlag uint16

const (
	fLex         enFlag = 1 << iota // in the sentiment lexicon
	fNegator                        // "not", "never", "n't" ...
	fNo                             // "no": negates the next two words
	fNever                          // "never" (for "never so good")
	fSoThis                         // "so", "this"
	fWithout                        // "without" (for "without doubt")
	fDoubt                          // "doubt"
	fLeast                          // "least" (negates unless "at least")
	fAtVery                         // "at", "very" (before "least")
	fOrNor                          // "or", "nor" (for "no X or Y")
	fContrast                       // "but", "however"
	fPhraseHead                     // first word of a two-word phrase
	fSoftBooster                    // booster before a sentiment word, sentiment word otherwise
)

// enWord is what the scorer knows about one lower-case word or phrase.
type enWord struct {
	valence    float32 // lexicon valence, 0 if none
	negValence float32 // replaces valence when negated, 0 if none
	booster    float32 // booster (+) or dampener (-) scalar, 0 if none
	flags      enFlag
}

// maxHeadBytes bounds the first word of a phrase: the scanner copies a
// held-back head into a fixed buffer.
const maxHeadBytes = 24

type enRule struct {
	term    string
	flags   enFlag
	booster float32
}

// enRules are the function words of the English rules. Negators are VADER's
// NEGATE list; boosters are VADER's BOOSTER_DICT.
var enRules = []enRule{
	// VADER NEGATE. Words with "n't" need no entry (any token containing
	// "n't" negates) but are listed for clarity.
	{term: "aint", flags: fNegator}, {term: "arent", flags: fNegator},
	{term: "cannot", flags: fNegator}, {term: "cant", flags: fNegator},
	{term: "couldnt", flags: fNegator}, {term: "darent", flags: fNegator},
	{term: "didnt", flags: fNegator}, {term: "doesnt", flags: fNegator},
	{term: "ain't", flags: fNegator}, {term: "aren't", flags: fNegator},
	{term: "can't", flags: fNegator}, {term: "couldn't", flags: fNegator},
	{term: "daren't", flags: fNegator}, {term: "didn't", flags: fNegator},
	{term: "doesn't", flags: fNegator}, {term: "dont", flags: fNegator},
	{term: "hadnt", flags: fNegator}, {term: "hasnt", flags: fNegator},
	{term: "havent", flags: fNegator}, {term: "isnt", flags: fNegator},
	{term: "mightnt", flags: fNegator}, {term: "mustnt", flags: fNegator},
	{term: "neither", flags: fNegator}, {term: "don't", flags: fNegator},
	{term: "hadn't", flags: fNegator}, {term: "hasn't", flags: fNegator},
	{term: "haven't", flags: fNegator}, {term: "isn't", flags: fNegator},
	{term: "mightn't", flags: fNegator}, {term: "mustn't", flags: fNegator},
	{term: "neednt", flags: fNegator}, {term: "needn't", flags: fNegator},
	{term: "never", flags: fNegator | fNever}, {term: "none", flags: fNegator},
	{term: "nope", flags: fNegator}, {term: "nor", flags: fNegator | fOrNor},
	{term: "not", flags: fNegator}, {term: "nothing", flags: fNegator},
	{term: "nowhere", flags: fNegator}, {term: "oughtnt", flags: fNegator},
	{term: "shant", flags: fNegator}, {term: "shouldnt", flags: fNegator},
	{term: "uhuh", flags: fNegator}, {term: "wasnt", flags: fNegator},
	{term: "werent", flags: fNegator}, {term: "oughtn't", flags: fNegator},
	{term: "shan't", flags: fNegator}, {term: "shouldn't", flags: fNegator},
	{term: "uh-uh", flags: fNegator}, {term: "wasn't", flags: fNegator},
	{term: "weren't", flags: fNegator}, {term: "without", flags: fNegator | fWithout},
	{term: "wont", flags: fNegator}, {term: "wouldnt", flags: fNegator},
	{term: "won't", flags: fNegator}, {term: "wouldn't", flags: fNegator},
	{term: "rarely", flags: fNegator}, {term: "seldom", flags: fNegator},
	{term: "despite", flags: fNegator},
	// spur: "no longer" negates ("no longer works").
	{term: "no longer", flags: fNegator},

	// Words the special cases look at.
	{term: "no", flags: fNo},
	{term: "so", flags: fSoThis}, {term: "this", flags: fSoThis},
	{term: "doubt", flags: fDoubt}, {term: "least", flags: fLeast},
	{term: "at", flags: fAtVery}, {term: "very", flags: fAtVery},
	{term: "or", flags: fOrNor},
	// VADER weighs only "but"; spur adds "however", which opens the clause
	// that counts in the same way.
	{term: "but", flags: fContrast}, {term: "however", flags: fContrast},

	// VADER BOOSTER_DICT, increments.
	{term: "absolutely", booster: boostIncr}, {term: "amazingly", booster: boostIncr},
	{term: "awfully", booster: boostIncr}, {term: "completely", booster: boostIncr},
	{term: "considerable", booster: boostIncr}, {term: "considerably", booster: boostIncr},
	{term: "decidedly", booster: boostIncr}, {term: "deeply", booster: boostIncr},
	{term: "effing", booster: boostIncr}, {term: "enormous", booster: boostIncr},
	{term: "enormously", booster: boostIncr}, {term: "entirely", booster: boostIncr},
	{term: "especially", booster: boostIncr}, {term: "exceptional", booster: boostIncr},
	{term: "exceptionally", booster: boostIncr}, {term: "extreme", booster: boostIncr},
	{term: "extremely", booster: boostIncr}, {term: "fabulously", booster: boostIncr},
	{term: "flipping", booster: boostIncr}, {term: "flippin", booster: boostIncr},
	{term: "frackin", booster: boostIncr}, {term: "fracking", booster: boostIncr},
	{term: "fricking", booster: boostIncr}, {term: "frickin", booster: boostIncr},
	{term: "frigging", booster: boostIncr}, {term: "friggin", booster: boostIncr},
	{term: "fully", booster: boostIncr}, {term: "fuckin", booster: boostIncr},
	{term: "fucking", booster: boostIncr}, {term: "fuggin", booster: boostIncr},
	{term: "fugging", booster: boostIncr}, {term: "greatly", booster: boostIncr},
	{term: "hella", booster: boostIncr}, {term: "highly", booster: boostIncr},
	{term: "hugely", booster: boostIncr}, {term: "incredible", booster: boostIncr},
	{term: "incredibly", booster: boostIncr}, {term: "intensely", booster: boostIncr},
	{term: "major", booster: boostIncr}, {term: "majorly", booster: boostIncr},
	{term: "more", booster: boostIncr}, {term: "most", booster: boostIncr},
	{term: "particularly", booster: boostIncr}, {term: "purely", booster: boostIncr},
	{term: "quite", booster: boostIncr}, {term: "really", booster: boostIncr},
	{term: "remarkably", booster: boostIncr}, {term: "so", booster: boostIncr},
	{term: "substantially", booster: boostIncr}, {term: "thoroughly", booster: boostIncr},
	{term: "total", booster: boostIncr}, {term: "totally", booster: boostIncr},
	{term: "tremendous", booster: boostIncr}, {term: "tremendously", booster: boostIncr},
	{term: "uber", booster: boostIncr}, {term: "unbelievably", booster: boostIncr},
	{term: "unusually", booster: boostIncr}, {term: "utter", booster: boostIncr},
	{term: "utterly", booster: boostIncr}, {term: "very", booster: boostIncr},
	// spur: "pretty" and "super" are lexicon words that VADER scores as
	// positive even in "pretty bad"; as soft boosters they boost when a
	// sentiment word follows and keep their valence otherwise.
	{term: "pretty", booster: boostIncr}, {term: "super", booster: boostIncr},

	// VADER BOOSTER_DICT, decrements.
	{term: "almost", booster: boostDecr}, {term: "barely", booster: boostDecr},
	{term: "hardly", booster: boostDecr}, {term: "just enough", booster: boostDecr},
	{term: "kind of", booster: boostDecr}, {term: "kinda", booster: boostDecr},
	{term: "kindof", booster: boostDecr}, {term: "kind-of", booster: boostDecr},
	{term: "less", booster: boostDecr}, {term: "little", booster: boostDecr},
	{term: "marginal", booster: boostDecr}, {term: "marginally", booster: boostDecr},
	{term: "occasional", booster: boostDecr}, {term: "occasionally", booster: boostDecr},
	{term: "partly", booster: boostDecr}, {term: "scarce", booster: boostDecr},
	{term: "scarcely", booster: boostDecr}, {term: "slight", booster: boostDecr},
	{term: "slightly", booster: boostDecr}, {term: "somewhat", booster: boostDecr},
	{term: "sort of", booster: boostDecr}, {term: "sorta", booster: boostDecr},
	{term: "sortof", booster: boostDecr}, {term: "sort-of", booster: boostDecr},
}
