package devbroker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBrokerConfigs: the broker runs with the message size and segment
// size it was given, as its clients see them, and keeps kfake's segment
// size when given none.
func TestBrokerConfigs(t *testing.T) {
	for _, c := range []struct {
		segment     int
		wantSegment string
	}{
		{8 << 20, "8388608"},
		{0, "104857600"},
	} {
		b, err := Start(Config{Listen: "127.0.0.1:0", SegmentBytes: c.segment})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rcs, err := kadm.NewClient(cl).DescribeBrokerConfigs(ctx)
		cancel()
		cl.Close()
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, rc := range rcs {
			for _, kv := range rc.Configs {
				if kv.Value != nil {
					got[kv.Key] = *kv.Value
				}
			}
		}
		if got["log.segment.bytes"] != c.wantSegment {
			t.Errorf("SegmentBytes %d: log.segment.bytes = %q, want %q", c.segment, got["log.segment.bytes"], c.wantSegment)
		}
		if got["message.max.bytes"] != "33554432" {
			t.Errorf("message.max.bytes = %q, want the default 32 MiB", got["message.max.bytes"])
		}
	}
}
