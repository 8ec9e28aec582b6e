package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendTS(t *testing.T) {
	g := mustNew(t, Config{Seed: 1})
	r := rand.New(rand.NewPCG(1, 2))
	base := []time.Time{t0, time.Unix(0, 0).UTC(), time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC)}
	for i := range 20_000 {
		ts := base[i%len(base)].Add(time.Duration(r.Int64N(int64(48 * time.Hour))))
		switch i % 4 {
		case 1:
			ts = ts.Truncate(time.Second)
		case 2:
			ts = ts.Truncate(time.Millisecond)
		}
		got := string(g.appendTS(nil, ts))
		if want := ts.Format(time.RFC3339Nano); got != want {
			t.Fatalf("appendTS(%v) = %s, want %s", ts, got, want)
		}
	}
}
