package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/ingest"
)

func broker(t *testing.T, topics map[string]int32) (*devbroker.Broker, *kadm.Client) {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0", Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return b, kadm.NewClient(cl)
}

func TestEnsureTopicsRefusesUnequalPartitions(t *testing.T) {
	_, adm := broker(t, map[string]int32{"in.a": 4, "in.b": 3, "out": 1})
	_, err := ingest.EnsureTopics(context.Background(), adm, ingest.TopicSpec{Inputs: []string{"in.a", "in.b"}, Outputs: []string{"out"}}, false)
	if !errors.Is(err, ingest.ErrPartitionMismatch) {
		t.Fatalf("err = %v, want ErrPartitionMismatch", err)
	}
	if !strings.Contains(err.Error(), "in.a=4") || !strings.Contains(err.Error(), "in.b=3") {
		t.Errorf("error does not name the counts: %v", err)
	}
}

func TestEnsureTopicsMissingAndCreate(t *testing.T) {
	_, adm := broker(t, map[string]int32{"in.a": 3})
	spec := ingest.TopicSpec{Inputs: []string{"in.a", "in.b"}, Outputs: []string{"out", "dlq"}, Partitions: 8}
	_, err := ingest.EnsureTopics(context.Background(), adm, spec, false)
	if !errors.Is(err, ingest.ErrMissingTopic) || !strings.Contains(err.Error(), "in.b") || !strings.Contains(err.Error(), "--create-topics") {
		t.Fatalf("err = %v, want ErrMissingTopic naming in.b and --create-topics", err)
	}
	n, err := ingest.EnsureTopics(context.Background(), adm, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	// The new input topic matches the existing one, not spec.Partitions.
	if n != 3 {
		t.Errorf("partitions = %d, want 3", n)
	}
	details, err := adm.ListTopics(context.Background(), "in.b", "out", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"in.b", "out", "dlq"} {
		if d, ok := details[topic]; !ok || d.Err != nil {
			t.Errorf("%s not created: %+v", topic, d)
		}
	}
}

// TestRangeBalancerCoPartitions proves the property ingest relies on while
// a group still runs the range balancer (during an upgrade from a version
// that used only range): with equal partition counts, each member of the
// group is given the same partition numbers of every input topic (a task
// stays on one member).
func TestRangeBalancerCoPartitions(t *testing.T) {
	b, _ := broker(t, map[string]int32{"in.a": 6, "in.b": 6})
	assigned := make(chan map[string][]int32, 16)
	for i := 0; i < 3; i++ {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(b.Addr()), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in.a", "in.b"),
			kgo.Balancers(kgo.RangeBalancer()),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { assigned <- m }),
		)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		go func() {
			for {
				if cl.PollFetches(context.Background()).IsClientClosed() {
					return
				}
			}
		}()
	}
	// Wait until a generation covers all 12 partitions across 3 members.
	deadline := time.After(30 * time.Second)
	owners := map[string]int{}
	for len(owners) < 12 {
		select {
		case m := <-assigned:
			if len(m["in.a"]) != len(m["in.b"]) {
				t.Fatalf("member assigned %v: unequal shares of the two topics", m)
			}
			for i, p := range m["in.a"] {
				if m["in.b"][i] != p {
					t.Fatalf("member assigned in.a %v but in.b %v: task split", m["in.a"], m["in.b"])
				}
			}
			for topic, ps := range m {
				for _, p := range ps {
					owners[fmt.Sprintf("%s/%d", topic, p)]++
				}
			}
		case <-deadline:
			t.Fatalf("group did not settle: %v", owners)
		}
	}
}

func TestEnsureTopicsChangelog(t *testing.T) {
	_, adm := broker(t, map[string]int32{"in.a": 3, "in.b": 3, "two.changelog": 2, "plain.changelog": 3})
	ctx := context.Background()
	spec := ingest.TopicSpec{Inputs: []string{"in.a", "in.b"}, Changelog: "g.changelog"}
	// Created even without create: spur owns its changelog.
	n, err := ingest.EnsureTopics(ctx, adm, spec, false)
	if err != nil || n != 3 {
		t.Fatalf("EnsureTopics = %d, %v", n, err)
	}
	details, err := adm.ListTopics(ctx, "g.changelog")
	if err != nil || len(details["g.changelog"].Partitions) != 3 {
		t.Fatalf("changelog partitions: %+v %v", details["g.changelog"], err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "g.changelog")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("g.changelog", nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			policy = c.MaybeValue()
		}
	}
	if policy != "compact" {
		t.Errorf("cleanup.policy = %q, want compact", policy)
	}
	// Again: it exists and fits.
	if _, err := ingest.EnsureTopics(ctx, adm, spec, false); err != nil {
		t.Fatal(err)
	}

	spec.Changelog = "two.changelog"
	_, err = ingest.EnsureTopics(ctx, adm, spec, false)
	if !errors.Is(err, ingest.ErrChangelogMismatch) || !strings.Contains(err.Error(), "2 partitions") {
		t.Errorf("err = %v, want ErrChangelogMismatch naming 2 partitions", err)
	}
	spec.Changelog = "plain.changelog"
	_, err = ingest.EnsureTopics(ctx, adm, spec, false)
	if !errors.Is(err, ingest.ErrChangelogMismatch) || !strings.Contains(err.Error(), "cleanup.policy") {
		t.Errorf("err = %v, want ErrChangelogMismatch naming cleanup.policy", err)
	}
}
