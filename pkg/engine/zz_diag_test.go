package engine_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/loadgen"
)

type tpo struct {
	topic string
	part  int32
	off   int64
}

type diagHook struct {
	mu       sync.Mutex
	seq      int
	buffered map[tpo]int
	polled   map[tpo]int
	log      []string
}

func (d *diagHook) OnFetchRecordBuffered(r *kgo.Record) {
	d.mu.Lock()
	d.seq++
	d.buffered[tpo{r.Topic, r.Partition, r.Offset}] = d.seq
	d.mu.Unlock()
}
func (d *diagHook) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	d.mu.Lock()
	d.seq++
	d.polled[tpo{r.Topic, r.Partition, r.Offset}] = d.seq
	d.mu.Unlock()
}

type prodHook struct {
	mu   sync.Mutex
	resp int
	tag  map[tpo]int
}

func (p *prodHook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == 0 {
		p.mu.Lock()
		p.resp++
		p.mu.Unlock()
	}
}
func (p *prodHook) OnProduceRecordUnbuffered(r *kgo.Record, _ error) {
	p.mu.Lock()
	p.tag[tpo{r.Topic, r.Partition, r.Offset}] = p.resp
	p.mu.Unlock()
}

type prodRec struct {
	idx int
	k   tpo
	ts  time.Time
	key string
	id  string
	typ string
	bad bool
}

func TestZZDiag(t *testing.T) {
	const (
		records = 15000
		step    = 10 * time.Millisecond
		batch   = 2500
	)
	d := &diagHook{buffered: map[tpo]int{}, polled: map[tpo]int{}}
	h := newHarness(t)
	h.consumerOpts = []kgo.Opt{kgo.WithHooks(d)}
	h.start()
	ph := &prodHook{tag: map[tpo]int{}}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addr()), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(1<<20), kgo.WithHooks(ph))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	g, _ := loadgen.New(loadgen.Config{Seed: 20261123, Customers: 400, MalformedShare: 0.02})
	warm := 0
	if os.Getenv("WARM") != "" {
		for _, topic := range []string{clickstream, orders} {
			if err := pcl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte("a-warm"), Value: ev("e-warm-"+topic, "page_view", "a-warm", -time.Millisecond, ""), Timestamp: t0.Add(-time.Millisecond)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			warm++
		}
	}
	var all []prodRec
	var last time.Time
	for i := 0; i < records; i += batch {
		recs := make([]*kgo.Record, 0, batch)
		var meta []prodRec
		for j := i; j < min(i+batch, records); j++ {
			r := g.Next(t0.Add(time.Duration(j) * step))
			last = r.TS
			recs = append(recs, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.TS})
			var v struct {
				ID   string `json:"event_id"`
				Type string `json:"type"`
			}
			json.Unmarshal(r.Value, &v)
			meta = append(meta, prodRec{idx: j, ts: r.TS, key: string(r.Key), id: v.ID, typ: v.Type, bad: r.Malformed})
		}
		res := pcl.ProduceSync(context.Background(), recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		idx := map[*kgo.Record]int{}
		for k, r := range recs {
			idx[r] = k
		}
		for _, pr := range res {
			k := idx[pr.Record]
			meta[k].k = tpo{pr.Record.Topic, pr.Record.Partition, pr.Record.Offset}
			if !pr.Record.Timestamp.Equal(meta[k].ts) {
				t.Errorf("ts changed %v %v", pr.Record.Timestamp, meta[k].ts)
			}
		}
		all = append(all, meta...)
	}
	h.waitFor("all input applied", func() bool { return h.consumed() == records+warm })
	end := last.Add(g.Config().Wait + time.Minute)
	want := g.Oracle().Expected(end)
	h.clock.Advance(end.Sub(h.clock.Now()))
	h.waitFor("every timer fired and acknowledged", func() bool { return h.timersPending() == 0 && h.settled() })
	var got []loadgen.Expected
	for _, trs := range h.triggersByCustomer() {
		for _, tr := range trs {
			got = append(got, loadgen.Expected{Rule: tr.Rule, CustomerID: tr.CustomerID, QualifiedAt: tr.QualifiedAt.UTC(), CauseEventID: tr.CauseEventIDs[0]})
		}
	}
	inWant := map[loadgen.Expected]bool{}
	for _, w := range want {
		inWant[w] = true
	}
	inGot := map[loadgen.Expected]bool{}
	for _, x := range got {
		inGot[x] = true
	}
	// Check the read-back timestamps.
	for _, r := range h.readAll(orders) {
		_ = r
	}
	// Inversions by poll order: for each partition, a record polled before a
	// record of the other topic with a smaller ts.
	byPart := map[int32][]prodRec{}
	for _, r := range all {
		byPart[r.k.part] = append(byPart[r.k.part], r)
	}
	for p, rs := range byPart {
		inv := 0
		for _, o := range rs {
			if o.k.topic != orders {
				continue
			}
			for _, c := range rs {
				if c.k.topic == clickstream && c.ts.After(o.ts) && d.polled[c.k] < d.polled[o.k] {
					inv++
				}
			}
		}
		t.Logf("partition %d: %d (clickstream later ts polled before order) pairs", p, inv)
	}
	show := func(customer string, from, to time.Time) {
		for _, r := range all {
			if r.key == customer && !r.ts.Before(from) && !r.ts.After(to) {
				t.Logf("   %s idx=%d ts=%s %s/%d@%d %s %s produceResp#%d buffered#%d polled#%d", r.key, r.idx, r.ts.Format("15:04:05.000"), r.k.topic, r.k.part, r.k.off, r.id, r.typ, ph.tag[r.k], d.buffered[r.k], d.polled[r.k])
			}
		}
	}
	for _, x := range got {
		if !inWant[x] {
			t.Logf("ENGINE ONLY %+v", x)
			show(x.CustomerID, x.QualifiedAt.Add(-12*time.Second), x.QualifiedAt.Add(12*time.Second))
		}
	}
	for _, w := range want {
		if !inGot[w] {
			t.Logf("ORACLE ONLY %+v", w)
			show(w.CustomerID, w.QualifiedAt.Add(-12*time.Second), w.QualifiedAt.Add(12*time.Second))
		}
	}
	// Classify engine-only coupons: the order O that should have cancelled
	// (cause < O.ts <= deadline) and the event F after the deadline that made
	// the engine fire by event time.
	byCust := map[string][]prodRec{}
	for _, r := range all {
		if !r.bad {
			byCust[r.key] = append(byCust[r.key], r)
		}
	}
	cls := map[string]int{}
	for _, x := range got {
		if inWant[x] {
			continue
		}
		var cause, o, f *prodRec
		for i := range byCust[x.CustomerID] {
			r := &byCust[x.CustomerID][i]
			switch {
			case r.id == x.CauseEventID:
				cause = r
			case cause != nil && o == nil && r.typ == "order" && !r.ts.After(x.QualifiedAt):
				o = r
			case o != nil && f == nil && r.ts.After(x.QualifiedAt):
				f = r
			}
		}
		if cause == nil || o == nil || f == nil {
			cls["engine-only: other"]++
			continue
		}
		key := "engine-only, order O and later event F: "
		switch {
		case ph.tag[o.k] == ph.tag[f.k]:
			key += "same produce request; "
		case ph.tag[o.k] > ph.tag[f.k]:
			key += "O in a later produce request; "
		default:
			key += "O in an earlier produce request; "
		}
		switch {
		case d.buffered[o.k] > d.polled[f.k]:
			key += "O fetched after F was polled"
		case d.polled[o.k] > d.polled[f.k]:
			key += "O in the client when F was polled, but polled after F"
		default:
			key += "O polled before F"
		}
		if cls[key] == 0 {
			t.Logf("EXAMPLE %s: %s", key, x.CustomerID)
			for _, r := range []*prodRec{cause, o, f} {
				t.Logf("EXAMPLE    idx=%d ts=%s %s/%d@%d %s %s produceResp#%d buffered#%d polled#%d", r.idx, r.ts.Format("15:04:05.000"), r.k.topic, r.k.part, r.k.off, r.id, r.typ, ph.tag[r.k], d.buffered[r.k], d.polled[r.k])
			}
		}
		cls[key]++
	}
	for _, w := range want {
		if !inGot[w] {
			cls["oracle-only"]++
		}
	}
	for k, v := range cls {
		t.Logf("CLASS %4d %s", v, k)
	}
	_ = fmt.Sprint
	_ = slices.Sort[[]int]
	_ = cmp.Compare[int]
	h.stop()
}
