package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Customers are loaded in chunks; the producer runs at most loadAhead
// chunks ahead of the engine, and on the embedded broker what the engine has
// committed is deleted, so that the broker's in-memory log stays small
// however many customers are loaded.
const (
	loadChunk = 50_000
	loadAhead = 2
)

// loadEventsPerCustomer is the number of events load sends per customer.
const loadEventsPerCustomer = 3

// loader builds state fast: every customer views a product, adds it to the
// cart and orders it, so that its record holds a profile, recent events,
// a category interest, an order and the spend, and its timer is armed and
// cancelled. A customer's events are stamped when they are sent, one
// millisecond apart, as a storefront's would be.
//
// They used to lie 10 to 50 minutes in the past, their carts' deadlines
// long gone. A timer may fire once every input topic is applied up to its
// deadline or caught up, and a caught-up topic's next append is taken to be
// newer than its end's last sighting: live traffic's is. The old orders
// were not, and a cart whose order had not been appended yet when the
// orders partition was seen caught up got a coupon (one in seven restart
// runs in session 13). Stamped when sent, an order is appended well inside
// its cart's wait.
type loader struct {
	r    *runner
	prod *kgo.Client
	buf  []byte

	produced atomic.Int64 // events acknowledged
	failed   atomic.Int64
	firstErr atomic.Value
	sent     float64 // events sent so far
	chunkEnd []int64 // events sent through each chunk
}

func (r *runner) newLoader() (*loader, error) {
	prod, err := r.cl.producer(kgo.ProducerLinger(5 * time.Millisecond))
	if err != nil {
		return nil, err
	}
	return &loader{r: r, prod: prod}, nil
}

func (l *loader) close() { l.prod.Close() }

func (l *loader) promise(_ *kgo.Record, err error) {
	if err != nil {
		if l.failed.Add(1) == 1 {
			l.firstErr.Store(err)
		}
		return
	}
	l.produced.Add(1)
}

// customerID names customer i (0-based) as loadgen does: c-1, c-2, ...
func customerID(i int) string { return "c-" + strconv.Itoa(i+1) }

// produceCustomer sends customer i's three events.
func (l *loader) produceCustomer(ctx context.Context, i int) {
	ts := time.Now().Truncate(time.Millisecond)
	var arr [loadEventsPerCustomer]*kgo.Record
	var recs []*kgo.Record
	recs, l.buf = customerEvents(l.buf, arr[:0], l.r.cl.topics, i, ts)
	for _, r := range recs {
		l.prod.Produce(ctx, r, l.promise)
	}
}

// customerEvents appends customer i's load events, starting at ts, to recs;
// buf is scratch space, returned for reuse.
func customerEvents(buf []byte, recs []*kgo.Record, t topics, i int, ts time.Time) ([]*kgo.Record, []byte) {
	id := customerID(i)
	sku := "sku-" + strconv.Itoa(i%5000)
	send := func(topic string, at time.Time, typ, extra string) {
		b := append(buf[:0], `{"event_id":"load-`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, '-')
		b = append(b, typ...)
		b = append(b, `","type":"`...)
		b = append(b, typ...)
		b = append(b, `","ts":"`...)
		b = at.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","customer_id":"`...)
		b = append(b, id...)
		b = append(b, `","channel":"web"`...)
		b = append(b, extra...)
		b = append(b, '}')
		buf = b
		v := make([]byte, len(b))
		copy(v, b)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(id), Value: v, Timestamp: at})
	}
	item := `"sku":"` + sku + `","category":"shoes","price":59.9,"quantity":1`
	send(t.Clickstream, ts, "product_view", `,"sku":"`+sku+`","category":"shoes","brand":"acme","price":59.9,"dwell_ms":1800`)
	send(t.Clickstream, ts.Add(time.Millisecond), "cart_add", ","+item)
	send(t.Orders, ts.Add(2*time.Millisecond), "order", `,"order_id":"load-o-`+strconv.Itoa(i)+`","items":[{`+item+`}],"total":59.9,"currency":"USD"`)
	return recs, buf
}

// load sends customers [from, to) and returns once the engine has applied
// them (its consumed counter reaches the events sent so far), with the
// events per second from the start of sending to the last applied. The
// engine must have been running since the loader's first load.
func (l *loader) load(ctx context.Context, c *child, mon *monitor, from, to int, phase string) (float64, error) {
	r := l.r
	var sentCustomers atomic.Int64
	r.prog.set(phase, func() string {
		s, _ := mon.latest()
		return fmt.Sprintf("customers sent %s/%s  applied %s events  lag %s  rss %.0f MiB",
			si(float64(from)+float64(sentCustomers.Load())), si(float64(to)), si(s.consumed), si(s.lag), float64(s.rss)/mib)
	})
	start := time.Now()
	first := l.sent
	waitApplied := func(target float64) error {
		return r.waitProgress(ctx, "the engine to apply the loaded customers", c, mon, r.cfg.DrainTimeout, func(s sample) bool {
			return s.consumed >= target
		})
	}
	for lo := from; lo < to; lo += loadChunk {
		hi := min(lo+loadChunk, to)
		// Stay at most loadAhead chunks ahead of the engine, and drop what
		// it has applied from the embedded broker.
		if k := len(l.chunkEnd) - loadAhead; k >= 0 {
			if err := waitApplied(float64(l.chunkEnd[k])); err != nil {
				return 0, err
			}
			if r.cl.embedded != nil {
				tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := r.cl.trimCommitted(tctx, r.group())
				cancel()
				if err != nil {
					r.prog.logf("trim applied input: %v", err)
				}
			}
		}
		for i := lo; i < hi; i++ {
			l.produceCustomer(ctx, i)
			sentCustomers.Add(1)
		}
		if err := l.prod.Flush(ctx); err != nil {
			return 0, err
		}
		if n := l.failed.Load(); n > 0 {
			return 0, fmt.Errorf("bench: %d load records not produced: %v", n, l.firstErr.Load())
		}
		l.sent += float64((hi - lo) * loadEventsPerCustomer)
		l.chunkEnd = append(l.chunkEnd, int64(l.sent))
	}
	if err := waitApplied(l.sent); err != nil {
		return 0, err
	}
	return (l.sent - first) / time.Since(start).Seconds(), nil
}
