package bench

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spur-crm/spur/pkg/loadgen"
)

// TestSchedule checks that a schedule hands back, in order, exactly the
// records a generator makes when asked at each due moment, across chunk
// boundaries, with event times one 1/rate apart.
func TestSchedule(t *testing.T) {
	cfg := loadgen.Config{Customers: 500, Seed: 7, Wait: time.Second, ClickstreamTopic: "clicks", OrdersTopic: "orders"}
	genA, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	genB, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	const rate, n = 2000.0, 5000
	s, err := generate(context.Background(), genA, start, rate, n, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.recs) != n {
		t.Fatalf("%d records, want %d", len(s.recs), n)
	}
	if len(s.chunks) < 10 {
		t.Fatalf("%d chunks of 4 KiB for %d records: the test does not cross chunk boundaries", len(s.chunks), n)
	}
	if got, want := s.due(n-1), start.Add(2499500*time.Microsecond); !got.Equal(want) {
		t.Errorf("event %d due at %v, want %v", n-1, got, want)
	}
	topics := map[string]int{}
	for i := range n {
		want := genB.Next(start.Add(time.Duration(i) * time.Second / time.Duration(rate)))
		got := s.record(i)
		if got.Topic != want.Topic || !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) || !got.Timestamp.Equal(want.TS) {
			t.Fatalf("record %d = %s %q %q %v, want %s %q %q %v", i, got.Topic, got.Key, got.Value, got.Timestamp,
				want.Topic, want.Key, want.Value, want.TS)
		}
		if cap(got.Key) != len(got.Key) || cap(got.Value) != len(got.Value) {
			t.Fatalf("record %d: key or value has room to append into its neighbour", i)
		}
		topics[got.Topic]++
	}
	if topics["clicks"] == 0 || topics["orders"] == 0 {
		t.Errorf("topics %v: want both", topics)
	}
}
