package ingest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/ingest"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

const (
	clickstream = "shop.clickstream"
	orders      = "shop.orders"
	tasksN      = 6
	group       = "spur-rebalance"
)

// node is one spur instance: its own Pebble store, engine and consumer, in
// the group with a static instance id.
type node struct {
	id       string
	consumer *ingest.Consumer
	store    *state.Store
	producer *kgo.Client
	logs     *observer.ObservedLogs
	cancel   context.CancelFunc
	done     chan error
}

// fastGroup makes rebalances quick to notice: members learn that the group
// is rebalancing from a heartbeat.
var fastGroup = []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)}

func startNode(t *testing.T, addr, id string) *node {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	pipes, err := pipeline.LoadDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	dec, err := event.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	producer, err := emit.NewProducer(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	eng, err := engine.New(engine.Config{Partitions: tasksN}, store, dec, pipes, producer,
		engine.WithRegisterer(prometheus.NewRegistry()), engine.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ingest.New(ingest.Config{
		Brokers: []string{addr}, Group: group, Partitions: tasksN, InstanceID: id,
		CommitInterval: 50 * time.Millisecond, ClientOpts: fastGroup,
	}, eng, ingest.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{id: id, consumer: c, store: store, producer: producer, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- c.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop shuts the node down cleanly (drain, commit, leave); it is a no-op
// the second time.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	if err := <-n.done; err != nil {
		t.Errorf("%s: %v", n.id, err)
	}
	n.producer.Close()
	if err := n.store.Close(); err != nil {
		t.Error(err)
	}
}

// revoked returns every task this node's revoke and lost callbacks were
// given, in order.
func (n *node) revoked() []int32 {
	var out []int32
	for _, e := range n.logs.All() {
		if e.Message != "partitions revoked" && e.Message != "partitions lost" {
			continue
		}
		for _, v := range e.ContextMap()["tasks"].([]any) {
			out = append(out, v.(int32))
		}
	}
	return out
}

// groupTasks describes the group: each member's tasks by instance id, the
// protocol in use, and whether every task is assigned. It fails the test
// if any member holds part of a task or a task is on two members.
func groupTasks(t *testing.T, adm *kadm.Client) (map[string][]int32, string, bool) {
	t.Helper()
	ds, err := adm.DescribeGroups(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	d := ds[group]
	if d.Err != nil || d.State != "Stable" {
		return nil, "", false
	}
	out := map[string][]int32{}
	owner := map[int32]string{}
	for _, m := range d.Members {
		id := m.MemberID
		if m.InstanceID != nil {
			id = *m.InstanceID
		}
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return nil, "", false
		}
		per := map[string][]int32{}
		for _, tp := range a.Topics {
			per[tp.Topic] = slices.Sorted(slices.Values(tp.Partitions))
		}
		if !slices.Equal(per[clickstream], per[orders]) {
			t.Fatalf("%s assigned %s %v but %s %v: task split", id, clickstream, per[clickstream], orders, per[orders])
		}
		for _, p := range per[clickstream] {
			if o, ok := owner[p]; ok {
				t.Fatalf("task %d assigned to %s and %s", p, o, id)
			}
			owner[p] = id
		}
		out[id] = per[clickstream]
	}
	return out, d.Protocol, len(owner) == tasksN
}

// settle waits until the group is stable with every task assigned to the
// given nodes and each node running exactly the workers of its tasks.
func settle(t *testing.T, adm *kadm.Client, nodes ...*node) map[string][]int32 {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		got, _, all := groupTasks(t, adm)
		ok := all && len(got) == len(nodes)
		for _, n := range nodes {
			ok = ok && slices.Equal(n.consumer.Assigned(), got[n.id])
		}
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			var running []string
			for _, n := range nodes {
				running = append(running, fmt.Sprintf("%s:%v", n.id, n.consumer.Assigned()))
			}
			t.Fatalf("group did not settle: described %v, running %v", got, running)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func produceRound(t *testing.T, cl *kgo.Client, round int) {
	t.Helper()
	var rs []*kgo.Record
	for p := range int32(tasksN) {
		for _, topic := range []string{clickstream, orders} {
			v := fmt.Sprintf(`{"event_id":"e-%d-%s-%d","type":"page_view","ts":%q,"customer_id":"c-%d","channel":"web"}`,
				round, topic, p, time.Now().UTC().Format(time.RFC3339Nano), p)
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Key: fmt.Appendf(nil, "c-%d", p), Value: []byte(v)})
		}
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// waitCommitted waits until the group has committed every input partition's
// end: each task was consumed by whoever owns it now.
func waitCommitted(t *testing.T, adm *kadm.Client) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ends, err := adm.ListEndOffsets(context.Background(), clickstream, orders)
		if err != nil {
			t.Fatal(err)
		}
		committed, err := adm.FetchOffsets(context.Background(), group)
		if err != nil {
			t.Fatal(err)
		}
		behind := 0
		ends.Each(func(o kadm.ListedOffset) {
			c, _ := committed.Lookup(o.Topic, o.Partition)
			if c.At < o.Offset {
				behind++
			}
		})
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d partitions not committed to their end", behind)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCooperativeRebalanceKeepsTasksInPlace runs three spur instances on
// the embedded broker: every task stays whole on one member, a member
// joining takes tasks from the others without any task that stays being
// revoked, and a member leaving hands its tasks over without a revoke.
func TestCooperativeRebalanceKeepsTasksInPlace(t *testing.T) {
	b, adm := broker(t, map[string]int32{clickstream: tasksN, orders: tasksN, "spur.triggers": tasksN, "spur.dlq": tasksN})
	pcl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()

	n1 := startNode(t, b.Addr(), "spur-1")
	n2 := startNode(t, b.Addr(), "spur-2")
	before := settle(t, adm, n1, n2)
	if _, proto, _ := groupTasks(t, adm); proto != ingest.CopartitionProtocol {
		t.Fatalf("group protocol %q, want %q", proto, ingest.CopartitionProtocol)
	}
	if len(before["spur-1"]) != 3 || len(before["spur-2"]) != 3 {
		t.Fatalf("two members: %v", before)
	}
	produceRound(t, pcl, 1)
	waitCommitted(t, adm)
	r1, r2 := len(n1.revoked()), len(n2.revoked())

	n3 := startNode(t, b.Addr(), "spur-3")
	after := settle(t, adm, n1, n2, n3)
	for _, n := range []*node{n1, n2} {
		gone := n.revoked()[map[*node]int{n1: r1, n2: r2}[n]:]
		var want []int32
		for _, p := range before[n.id] {
			if !slices.Contains(after[n.id], p) {
				want = append(want, p)
			}
		}
		if len(want) != 1 {
			t.Errorf("%s went from %v to %v: want exactly one task taken", n.id, before[n.id], after[n.id])
		}
		slices.Sort(gone)
		if !slices.Equal(gone, want) {
			t.Errorf("%s revoked %v on the join, want only the task that moved %v", n.id, gone, want)
		}
	}
	if len(after["spur-3"]) != 2 {
		t.Errorf("three members: %v", after)
	}
	produceRound(t, pcl, 2)
	waitCommitted(t, adm)

	// A clean leave: the others take its tasks and revoke nothing.
	r1, r2 = len(n1.revoked()), len(n2.revoked())
	n3.stop(t)
	final := settle(t, adm, n1, n2)
	if len(n1.revoked()) != r1 || len(n2.revoked()) != r2 {
		t.Errorf("a member leaving made the others revoke: %v, %v", n1.revoked()[r1:], n2.revoked()[r2:])
	}
	for _, id := range []string{"spur-1", "spur-2"} {
		for _, p := range after[id] {
			if !slices.Contains(final[id], p) {
				t.Errorf("%s lost task %d when spur-3 left: %v", id, p, final)
			}
		}
	}
	produceRound(t, pcl, 3)
	waitCommitted(t, adm)
}

// TestUpgradeFromRangeBalancer: an instance of the version that lists only
// the range balancer shares the group with a current one; the group uses
// range (eager, co-partitioned) until the old instance leaves, then
// switches to spur-copartition-v1.
func TestUpgradeFromRangeBalancer(t *testing.T) {
	b, adm := broker(t, map[string]int32{clickstream: tasksN, orders: tasksN, "spur.triggers": tasksN, "spur.dlq": tasksN})
	old, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(b.Addr()), kgo.ConsumerGroup(group), kgo.ConsumeTopics(clickstream, orders),
		kgo.Balancers(kgo.RangeBalancer()), kgo.InstanceID("spur-old"),
	}, fastGroup...)...)
	if err != nil {
		t.Fatal(err)
	}
	oldDone := make(chan struct{})
	go func() {
		defer close(oldDone)
		for !old.PollFetches(context.Background()).IsClientClosed() {
		}
	}()
	n := startNode(t, b.Addr(), "spur-new")
	deadline := time.Now().Add(45 * time.Second)
	for {
		got, proto, all := groupTasks(t, adm)
		if all && len(got) == 2 && slices.Equal(n.consumer.Assigned(), got["spur-new"]) {
			if proto != "range" {
				t.Fatalf("mixed group uses %q, want range", proto)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mixed group did not settle: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The old instance leaves (a static member is removed explicitly).
	if resp, err := adm.LeaveGroup(context.Background(), kadm.LeaveGroup(group).InstanceIDs("spur-old")); err != nil || resp.Error() != nil {
		t.Fatalf("leave: %v %v", err, resp.Error())
	}
	old.Close()
	<-oldDone
	deadline = time.Now().Add(45 * time.Second)
	for {
		got, proto, all := groupTasks(t, adm)
		if all && proto == ingest.CopartitionProtocol && len(n.consumer.Assigned()) == tasksN {
			if len(got["spur-new"]) != tasksN {
				t.Fatalf("%v", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group did not move to %s: %q %v, running %v", ingest.CopartitionProtocol, proto, got, n.consumer.Assigned())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
