package ingest

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

// TestCallbacksHandlePartialTasks drives the group callbacks directly with
// assignments that split a task, as a balancer other than spur's could: a
// task's worker runs while any of its partitions is owned, stops as soon
// as one is revoked, and the partitions kept meanwhile are paused (their
// records would have no worker) until the task is whole again.
// testEngine starts an embedded broker holding spur's topics (input and
// output, cfg.Partitions each) and an engine on a fresh store, with the
// shipped pipelines keep selects (nil: all of them), on clock (nil: the
// real one).
func testEngine(t *testing.T, cfg engine.Config, keep func(*pipeline.Pipeline) bool, clock clockwork.Clock, log *zap.Logger) (*devbroker.Broker, *engine.Engine) {
	t.Helper()
	n := int32(max(cfg.Partitions, 1))
	b, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0", Topics: map[string]int32{"shop.clickstream": n, "shop.orders": n, "spur.triggers": n, "spur.dlq": n}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	store, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pipes, err := pipeline.LoadDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	if keep != nil {
		pipes = slices.DeleteFunc(pipes, func(p *pipeline.Pipeline) bool { return !keep(p) })
	}
	decOpts := []event.Option{}
	engOpts := []engine.Option{engine.WithRegisterer(prometheus.NewRegistry()), engine.WithLogger(log)}
	if clock != nil {
		decOpts = append(decOpts, event.WithClock(clock))
		engOpts = append(engOpts, engine.WithClock(clock))
	}
	dec, err := event.NewDecoder(decOpts...)
	if err != nil {
		t.Fatal(err)
	}
	producer, err := emit.NewProducer(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	eng, err := engine.New(cfg, store, dec, pipes, producer, engOpts...)
	if err != nil {
		t.Fatal(err)
	}
	return b, eng
}

func TestCallbacksHandlePartialTasks(t *testing.T) {
	const cs, or = "shop.clickstream", "shop.orders"
	log := zaptest.NewLogger(t)
	b, eng := testEngine(t, engine.Config{Partitions: 2}, nil, nil, log)
	// A client outside any group: the test is the group.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c := &Consumer{cfg: Config{Partitions: 2, StopTimeout: 5e9}, eng: eng, cl: cl, log: log, clock: clockwork.NewRealClock(),
		workers: map[int32]*engine.Worker{}, held: map[heldKey][]engine.Batch{}, owned: map[int32]map[string]bool{}}
	ctx := context.Background()
	paused := func() map[string][]int32 {
		p := cl.PauseFetchPartitions(nil)
		for t, ps := range p {
			if len(ps) == 0 {
				delete(p, t)
			}
		}
		return p
	}
	check := func(step string, wantWorkers []int32, wantPaused map[string][]int32) {
		t.Helper()
		if got := c.Assigned(); !slices.Equal(got, wantWorkers) {
			t.Fatalf("%s: workers %v, want %v", step, got, wantWorkers)
		}
		got := paused()
		if len(got) != len(wantPaused) {
			t.Fatalf("%s: paused %v, want %v", step, got, wantPaused)
		}
		for tp, ps := range wantPaused {
			if !slices.Equal(got[tp], ps) {
				t.Fatalf("%s: paused %v, want %v", step, got, wantPaused)
			}
		}
	}

	c.assigned(ctx, cl, map[string][]int32{})
	check("empty assignment (a cooperative rebalance that adds nothing)", nil, nil)
	if !c.Ready() {
		t.Fatal("not ready after an empty assignment")
	}
	c.revoked(ctx, cl, nil)
	check("empty revoke (the end of a cooperative session)", nil, nil)

	c.assigned(ctx, cl, map[string][]int32{cs: {1}})
	check("half of task 1", []int32{1}, nil)
	w := c.worker(1)
	c.assigned(ctx, cl, map[string][]int32{or: {1}, cs: {0}})
	check("task 1 completed, task 0 begun", []int32{0, 1}, nil)
	if c.worker(1) != w {
		t.Fatal("completing a task restarted its worker")
	}

	c.revoked(ctx, cl, map[string][]int32{or: {1}})
	check("half of task 1 revoked", []int32{0}, map[string][]int32{cs: {1}})

	c.assigned(ctx, cl, map[string][]int32{or: {1}})
	check("task 1 whole again", []int32{0, 1}, nil)

	c.lost(ctx, cl, map[string][]int32{cs: {0, 1}, or: {1}})
	check("everything lost", nil, nil)
	if len(c.owned) != 0 {
		t.Fatalf("still owns %v", c.owned)
	}
}

// TestReadEnds reads the end offsets of the partitions asked for and of no
// others (reportEnds asks for those an assignment adds), keeping what the
// healthy shards answered when another fails (probeEnds uses them).
func TestReadEnds(t *testing.T) {
	const cs, or = "shop.clickstream", "shop.orders"
	b, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0", Topics: map[string]int32{cs: 2, or: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx := context.Background()
	var rs []*kgo.Record
	for topic, counts := range map[string][2]int{cs: {1, 3}, or: {4, 2}} {
		for p, n := range counts {
			for range n {
				rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte("v")})
			}
		}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	for _, m := range []map[string][]int32{nil, {cs: {}}} {
		if req := endsRequest(m); req != nil {
			t.Fatalf("endsRequest(%v) = %+v, want nil", m, req)
		}
	}
	ends, err := readEnds(ctx, cl, endsRequest(map[string][]int32{cs: {1}, or: {1}}))
	if err != nil {
		t.Fatal(err)
	}
	sortEnds := func(es []partitionEnd) {
		slices.SortFunc(es, func(a, b partitionEnd) int { return strings.Compare(a.topic, b.topic) })
	}
	sortEnds(ends)
	if want := []partitionEnd{{cs, 1, 3}, {or, 1, 2}}; !slices.Equal(ends, want) {
		t.Fatalf("ends %+v, want %+v", ends, want)
	}

	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err = readEnds(ctx, cl, endsRequest(map[string][]int32{cs: {0}, "no.such.topic": {0}}))
	if err == nil {
		t.Fatal("readEnds with a topic the broker does not have: no error")
	}
	if want := []partitionEnd{{cs, 0, 1}}; !slices.Equal(ends, want) {
		t.Fatalf("ends beside the failed shard %+v, want %+v", ends, want)
	}
}

// TestDetachCopiesOutOfTheFetchBuffer: detached records keep their bytes
// when the buffer they were fetched in is overwritten (or freed), and an
// absent key or value stays absent.
func TestDetachCopiesOutOfTheFetchBuffer(t *testing.T) {
	fetch := []byte("k-1value-1hv-1value-2")
	recs := []*kgo.Record{
		{Key: fetch[0:3], Value: fetch[3:10], Headers: []kgo.RecordHeader{{Key: "h", Value: fetch[10:14]}}},
		{Value: fetch[14:21]},
	}
	detach(recs)
	for i := range fetch {
		fetch[i] = 'x'
	}
	got := []string{string(recs[0].Key), string(recs[0].Value), string(recs[0].Headers[0].Value), string(recs[1].Value)}
	if want := []string{"k-1", "value-1", "hv-1", "value-2"}; !slices.Equal(got, want) {
		t.Fatalf("detached records read %q after the fetch buffer was overwritten, want %q", got, want)
	}
	if recs[1].Key != nil {
		t.Fatalf("an absent key became %q", recs[1].Key)
	}
	// Each slice is capped: appending to one cannot overwrite the next.
	_ = append(recs[0].Key, 'X')
	if string(recs[0].Value) != "value-1" {
		t.Fatalf("appending to a detached key overwrote the value: %q", recs[0].Value)
	}
}
