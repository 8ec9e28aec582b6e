package changelog_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/ingest"
	"github.com/spur-crm/spur/pkg/state"
)

// BenchmarkRestore100kCustomers restores one partition holding 100k
// customers (each with a cart item, three recent events and a category
// count) and their armed timers, written as steps of 10 customers with the
// input offset (120k changelog records), from the embedded broker into
// Pebble on disk, synced. It reports restored records and customers per
// second.
func BenchmarkRestore100kCustomers(b *testing.B) {
	const customers, perStep = 100_000, 10
	br, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	const topic = "bench.changelog"
	if _, err := ingest.EnsureTopics(ctx, kadm.NewClient(cl), ingest.TopicSpec{Inputs: []string{"in"}, Partitions: 1, Changelog: topic}, true); err != nil {
		b.Fatal(err)
	}

	// Produce the changelog as a worker would.
	writer := []byte("benchmrk")
	var seq uint64
	var wg sync.WaitGroup
	var perr error
	var mu sync.Mutex
	produce := func(c state.Change) {
		rec := changelog.Record(topic, 0, writer, state.ChangelogRow{Seq: seq, Change: c})
		seq++
		wg.Add(1)
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	var buf []byte
	now := time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC).UnixMilli()
	for i := 0; i < customers; i++ {
		id := fmt.Sprintf("c-%07d", i)
		c := state.Customer{
			FirstSeen: now, LastActivity: now, Events: 4, CartUpdatedAt: now,
			Cart:          []state.CartItem{{SKU: "sku-1234", Category: "shoes", Price: 59.9, Qty: 1}},
			Recent:        []state.Recent{{EventID: "e-1-" + id, Type: "page_view", TS: now, SKU: "sku-1234"}, {EventID: "e-2-" + id, Type: "product_view", TS: now}, {EventID: "e-3-" + id, Type: "cart_add", TS: now, SKU: "sku-1234"}},
			CategoryViews: []state.Count{{Name: "shoes", Count: 2}},
		}
		buf = c.AppendBinary(buf[:0])
		produce(state.Change{Key: state.Key(0, state.KindCustomer, []byte(id)), Value: append([]byte(nil), buf...)})
		if i%perStep == perStep-1 {
			var off [8]byte
			binary.BigEndian.PutUint64(off[:], uint64(i))
			produce(state.Change{Key: state.Key(0, state.KindOffset, []byte("shop.clickstream")), Value: off[:]})
			produce(state.Change{StepEnd: true})
		}
	}
	wg.Wait()
	if perr != nil {
		b.Fatal(perr)
	}
	records := int(seq)

	b.ResetTimer()
	var took time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := state.Open(filepath.Join(b.TempDir(), "state"))
		if err != nil {
			b.Fatal(err)
		}
		r, err := changelog.New(changelog.Config{Topic: topic, ClientOpts: []kgo.Opt{kgo.SeedBrokers(br.Addr())}}, st)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := r.Restore(ctx, 0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if res.Records != records || res.Mode != changelog.ModeFull {
			b.Fatalf("restored %d records (%s), want %d", res.Records, res.Mode, records)
		}
		took += res.Duration
		if n, err := st.CountKind(0, state.KindCustomer); err != nil || n != customers {
			b.Fatalf("restored %d customers (%v)", n, err)
		}
		r.Close()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(records*b.N)/took.Seconds(), "records/s")
	b.ReportMetric(float64(customers*b.N)/took.Seconds(), "customers/s")
	b.ReportMetric(took.Seconds()/float64(b.N), "s/restore")
}
