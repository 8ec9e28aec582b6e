package sentiment_test

import (
	"fmt"

	"github.com/spur-crm/spur/pkg/sentiment"
)

func Example() {
	s := sentiment.New() // once per process; safe for concurrent use

	for _, text := range []string{
		"The shoes are great, fast delivery!",
		"Terrible quality, I want a refund",
		"质量很好，物流很快",
		"质量太差了，客服态度也不好",
		"Great quality 但是物流太慢了",
	} {
		r := s.Score(text)
		fmt.Printf("%+.2f +%d -%d %-5s %s\n", r.Score, r.Positive, r.Negative, r.Lang, text)
	}
	// Output:
	// +0.75 +2 -0 en    The shoes are great, fast delivery!
	// -0.59 +1 -2 en    Terrible quality, I want a refund
	// +0.76 +2 -0 zh    质量很好，物流很快
	// -0.76 +0 -2 zh    质量太差了，客服态度也不好
	// -0.43 +1 -1 mixed Great quality 但是物流太慢了
}
