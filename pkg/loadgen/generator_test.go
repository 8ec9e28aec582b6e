package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spur-crm/spur/pkg/event"
)

var t0 = time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)

func mustNew(tb testing.TB, cfg Config) *Generator {
	tb.Helper()
	g, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// generate calls Next n times, advancing now by step each time.
func generate(g *Generator, n int, step time.Duration) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = g.Next(t0.Add(time.Duration(i) * step))
	}
	return out
}

// decode parses a value strictly (no fields outside the contract) and checks
// the fields every event needs.
func decode(v []byte) (event.Event, error) {
	var e event.Event
	d := json.NewDecoder(bytes.NewReader(v))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return e, err
	}
	if d.More() {
		return e, errors.New("trailing data")
	}
	switch {
	case e.EventID == "":
		return e, errors.New("no event_id")
	case !slices.Contains(event.Types, e.Type):
		return e, fmt.Errorf("unknown type %q", e.Type)
	case e.TS.IsZero():
		return e, errors.New("no ts")
	case e.Subject() == "":
		return e, errors.New("no subject id")
	}
	return e, nil
}

// shapes are the paces the callers use: demo-like, full speed (every
// session brought forward), and few customers (customer reservation binds).
var shapes = []struct {
	name string
	cfg  Config
	step time.Duration
}{
	{"paced", Config{Seed: 1, Customers: 2000}, 50 * time.Millisecond},
	{"fullspeed", Config{Seed: 2, Customers: 100_000}, time.Microsecond},
	{"samenow", Config{Seed: 3, Customers: 1000, MaxSessions: 50}, 0},
	{"fewcustomers", Config{Seed: 4, Customers: 7, AnonymousShare: 0.5}, 200 * time.Millisecond},
	{"malformed", Config{Seed: 5, Customers: 300, MalformedShare: 0.1, ForgetShare: 0.05}, 20 * time.Millisecond},
}

func TestDeterministic(t *testing.T) {
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			a := generate(mustNew(t, sh.cfg), 10_000, sh.step)
			b := generate(mustNew(t, sh.cfg), 10_000, sh.step)
			for i := range a {
				if a[i].Topic != b[i].Topic || !bytes.Equal(a[i].Key, b[i].Key) ||
					!bytes.Equal(a[i].Value, b[i].Value) || !a[i].TS.Equal(b[i].TS) || a[i].Malformed != b[i].Malformed {
					t.Fatalf("record %d differs:\n%s %s\n%s %s", i, a[i].Key, a[i].Value, b[i].Key, b[i].Value)
				}
			}
			other := sh.cfg
			other.Seed += 100
			c := generate(mustNew(t, other), 1000, sh.step)
			if slices.EqualFunc(a[:1000], c, func(x, y Record) bool { return bytes.Equal(x.Value, y.Value) }) {
				t.Fatal("a different seed gave the same stream")
			}
		})
	}
}

func TestStreamContract(t *testing.T) {
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			g := mustNew(t, sh.cfg)
			cfg := g.Config()
			recs := generate(g, 10_000, sh.step)
			lastTS := map[string]time.Time{}
			ids := map[string]bool{}
			orderIDs := map[string]bool{}
			for i, r := range recs {
				if r.Malformed {
					continue
				}
				e, err := decode(r.Value)
				if err != nil {
					t.Fatalf("record %d: %v: %s", i, err, r.Value)
				}
				if string(r.Key) != e.Subject() {
					t.Fatalf("record %d: key %q, subject %q", i, r.Key, e.Subject())
				}
				if !e.TS.Equal(r.TS) || e.TS.Location() != time.UTC || e.TS.Nanosecond()%1e6 != 0 {
					t.Fatalf("record %d: ts %v, record ts %v", i, e.TS, r.TS)
				}
				if ids[e.EventID] {
					t.Fatalf("record %d: duplicate event_id %s", i, e.EventID)
				}
				ids[e.EventID] = true
				if prev, ok := lastTS[string(r.Key)]; ok && e.TS.Before(prev) {
					t.Fatalf("record %d: ts %v before %v for key %s", i, e.TS, prev, r.Key)
				}
				lastTS[string(r.Key)] = e.TS
				wantTopic := cfg.ClickstreamTopic
				if e.Type == event.Order {
					wantTopic = cfg.OrdersTopic
				}
				if r.Topic != wantTopic {
					t.Fatalf("record %d: %s on %s", i, e.Type, r.Topic)
				}
				checkFields(t, i, &e)
				if e.Type == event.Order {
					if orderIDs[e.OrderID] {
						t.Fatalf("record %d: duplicate order_id %s", i, e.OrderID)
					}
					orderIDs[e.OrderID] = true
				}
			}
		})
	}
}

// checkFields checks each type's own fields.
func checkFields(t *testing.T, i int, e *event.Event) {
	t.Helper()
	fail := func(what string) { t.Fatalf("record %d: %s %s: %+v", i, e.Type, what, e) }
	if e.Channel == "" {
		fail("no channel")
	}
	switch e.Type {
	case event.ProductView, event.CartAdd, event.CartRemove:
		if e.SKU == "" || e.Category == "" || e.Brand == "" || e.Price <= 0 {
			fail("product fields")
		}
		if e.Type == event.ProductView && e.DwellMS <= 0 {
			fail("dwell_ms")
		}
		if e.Type != event.ProductView && e.Quantity <= 0 {
			fail("quantity")
		}
	case event.Search:
		if e.Query == "" {
			fail("query")
		}
	case event.Order:
		if e.CustomerID == "" || e.OrderID == "" || len(e.Items) == 0 || e.Currency == "" {
			fail("order fields")
		}
		var cents int64
		for _, it := range e.Items {
			if it.SKU == "" || it.Price <= 0 || it.Quantity <= 0 {
				fail("item")
			}
			cents += int64(it.Price*100+0.5) * int64(it.Quantity)
		}
		if cents != int64(e.Total*100+0.5) {
			fail(fmt.Sprintf("total %v, items sum to %d cents", e.Total, cents))
		}
	case event.Identify:
		if e.CustomerID == "" || e.AnonymousID == "" {
			fail("ids")
		}
	case event.Feedback:
		if e.Rating < 1 || e.Rating > 5 || e.Text == "" {
			fail("rating or text")
		}
	case event.Forget:
		if e.CustomerID == "" {
			fail("customer_id")
		}
	}
}

// TestTrafficMix checks that the stream exercises every event type and the
// cases the oracle must get right.
func TestTrafficMix(t *testing.T) {
	g := mustNew(t, Config{Seed: 9, Customers: 5000, ForgetShare: 0.02})
	recs := generate(g, 25_000, 20*time.Millisecond)
	types := map[event.Type]int{}
	var anonCartAdds, chinese, loggedInLater int
	loggedIn := map[string]bool{}
	for _, r := range recs {
		e, err := decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		types[e.Type]++
		if e.Type == event.CartAdd && e.CustomerID == "" {
			anonCartAdds++
		}
		if strings.ContainsFunc(e.Text, func(r rune) bool { return r >= 0x4e00 && r <= 0x9fff }) {
			chinese++
		}
		if e.Type == event.Identify {
			loggedIn[e.AnonymousID] = true
		} else if e.CustomerID != "" && e.AnonymousID != "" && loggedIn[e.AnonymousID] {
			loggedInLater++
		}
	}
	for _, typ := range event.Types {
		if types[typ] == 0 {
			t.Errorf("no %s events in %v", typ, types)
		}
	}
	if anonCartAdds == 0 || chinese == 0 || loggedInLater == 0 {
		t.Errorf("anonymous cart_adds %d, Chinese texts %d, events after identify %d", anonCartAdds, chinese, loggedInLater)
	}
	last := recs[len(recs)-1].TS
	exp := g.Oracle().Expected(last.Add(time.Hour))
	if len(exp) < 50 {
		t.Errorf("only %d coupons expected", len(exp))
	}
	t.Logf("types %v; %d coupons over %v of traffic", types, len(exp), last.Sub(t0))
}

// TestOracleMatchesReplay feeds the decoded stream to a fresh Oracle: the
// generator's internal feed must model exactly what the bytes say.
func TestOracleMatchesReplay(t *testing.T) {
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			g := mustNew(t, sh.cfg)
			recs := generate(g, 20_000, sh.step)
			replay := NewOracle(g.Config().Wait)
			malformed := 0
			for _, r := range recs {
				if r.Malformed {
					malformed++
					replay.ObserveMalformed()
					continue
				}
				e, err := decode(r.Value)
				if err != nil {
					t.Fatal(err)
				}
				replay.Observe(&e)
			}
			last := recs[len(recs)-1].TS
			for _, until := range []time.Time{t0, last.Add(-g.Config().Wait), last, last.Add(time.Hour)} {
				want, got := replay.Expected(until), g.Oracle().Expected(until)
				if !slices.Equal(want, got) {
					t.Fatalf("until %v: generator oracle has %d coupons, replay %d", until, len(got), len(want))
				}
			}
			if g.Oracle().DeadLetters() != malformed {
				t.Fatalf("dead letters %d, malformed records %d", g.Oracle().DeadLetters(), malformed)
			}
			if sh.name != "samenow" && len(replay.Expected(last.Add(time.Hour))) == 0 {
				t.Fatal("no coupons at all")
			}
		})
	}
}

// TestDeadlineGuard checks that no customer event lands on (or, with a guard,
// near) that customer's pending deadline. A coarse step makes ties likely.
func TestDeadlineGuard(t *testing.T) {
	for _, guard := range []time.Duration{0, 300 * time.Millisecond} {
		t.Run(guard.String(), func(t *testing.T) {
			cfg := Config{Seed: 11, Customers: 50, Wait: time.Second, DeadlineGuard: guard}
			g := mustNew(t, cfg)
			recs := generate(g, 30_000, 100*time.Millisecond)
			o := NewOracle(cfg.Wait)
			near := 0
			for i, r := range recs {
				e, err := decode(r.Value)
				if err != nil {
					t.Fatal(err)
				}
				if e.CustomerID != "" {
					if dMS, ok := o.pendingDeadline(e.CustomerID); ok {
						ts, d := e.TS.UnixNano(), dMS*1e6
						if ts >= d-int64(guard) && ts <= d+int64(guard) {
							t.Fatalf("record %d: %s at %v, deadline %v", i, e.Type, e.TS, time.Unix(0, d).UTC())
						}
						if ts > d && ts <= d+int64(time.Second) {
							near++
						}
					}
				}
				o.Observe(&e)
			}
			if near == 0 {
				t.Fatal("the test never came near a deadline")
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	g := mustNew(t, Config{Seed: 3, Customers: 1000, MalformedShare: 0.2})
	recs := generate(g, 20_000, 10*time.Millisecond)
	n := 0
	for i, r := range recs {
		_, err := decode(r.Value)
		if r.Malformed {
			n++
			if err == nil {
				t.Fatalf("record %d is marked malformed but is a valid event: %s", i, r.Value)
			}
			if r.Topic == "" || len(r.Key) == 0 {
				t.Fatalf("record %d: malformed record without topic or key", i)
			}
		} else if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if n < 3600 || n > 4400 {
		t.Fatalf("%d malformed of %d, want about 20%%", n, len(recs))
	}
	if g.Oracle().DeadLetters() != n {
		t.Fatalf("DeadLetters %d, want %d", g.Oracle().DeadLetters(), n)
	}

	for _, r := range generate(mustNew(t, Config{Seed: 3}), 5000, 10*time.Millisecond) {
		if r.Malformed {
			t.Fatal("malformed record with the default config")
		}
	}
}

// TestManyCustomers checks that a 10M-customer generator allocates by active
// session, not by customer.
func TestManyCustomers(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := mustNew(t, Config{Seed: 1, Customers: 10_000_000, NoOracle: true})
	generate(g, 20_000, time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 32<<20 {
		t.Fatalf("heap grew by %d bytes", grew)
	}
	if len(g.active) > g.limit || len(g.due) != len(g.active) {
		t.Fatalf("%d active customers, %d sessions, limit %d", len(g.active), len(g.due), g.limit)
	}
	if g.Oracle() != nil || g.Oracle().Expected(t0) != nil || g.Oracle().DeadLetters() != 0 {
		t.Fatal("NoOracle generator has an oracle")
	}
}

func TestNowNeverRunsBackwards(t *testing.T) {
	g := mustNew(t, Config{Seed: 1})
	a := g.Next(t0.Add(time.Second))
	b := g.Next(t0)
	if !b.TS.Equal(a.TS) {
		t.Fatalf("second record at %v, first at %v", b.TS, a.TS)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Customers: -1},
		{AbandonRate: 1.5},
		{MalformedShare: 2},
		{Wait: -time.Second},
		{MaxSessions: -3},
		{DeadlineGuard: -1},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	g := mustNew(t, Config{AnonymousShare: -1, FeedbackShare: -1})
	c := g.Config()
	if c.AnonymousShare != 0 || c.FeedbackShare != 0 || c.AbandonRate != DefaultAbandonRate ||
		c.Customers != DefaultCustomers || c.Wait != DefaultWait || c.OrdersTopic != DefaultOrdersTopic {
		t.Fatalf("defaults: %+v", c)
	}
	for _, r := range generate(g, 5000, 10*time.Millisecond) {
		if e, _ := decode(r.Value); e.AnonymousID != "" && e.Type != event.PageView {
			t.Fatalf("AnonymousShare -1 produced %s", r.Value)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
		step time.Duration
	}{
		{"fullspeed/oracle", Config{Seed: 1}, time.Microsecond},
		{"fullspeed/nooracle", Config{Seed: 1, NoOracle: true}, time.Microsecond},
		{"paced/oracle", Config{Seed: 1}, 10 * time.Millisecond},
		{"10Mcustomers/nooracle", Config{Seed: 1, Customers: 10_000_000, MaxSessions: 100_000, NoOracle: true}, time.Microsecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := mustNew(b, bc.cfg)
			now := t0
			var bytes int64
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(bc.step)
				r := g.Next(now)
				bytes += int64(len(r.Value))
			}
			b.SetBytes(bytes / int64(b.N))
		})
	}
}

// TestEngineDecoder runs every record through the engine's own decoder (the
// v1 JSON Schemas): valid records must pass, malformed ones must be
// dead-lettered, for a spread of reasons.
func TestEngineDecoder(t *testing.T) {
	dec, err := event.NewDecoder(event.WithClock(clockwork.NewFakeClockAt(t0.Add(24 * time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	g := mustNew(t, Config{Seed: 8, Customers: 500, MalformedShare: 0.1, ForgetShare: 0.05})
	reasons := map[event.Reason]int{}
	for i, r := range generate(g, 15_000, 20*time.Millisecond) {
		var got event.Event
		err := dec.Decode(r.Value, &got)
		switch {
		case r.Malformed && err == nil:
			t.Fatalf("record %d is marked malformed but the engine accepts it: %s", i, r.Value)
		case r.Malformed:
			reasons[event.ReasonOf(err)]++
		case err != nil:
			t.Fatalf("record %d: engine rejects it: %v: %s", i, err, r.Value)
		default:
			want, err := decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if got.EventID != want.EventID || !got.TS.Equal(want.TS) || got.Subject() != want.Subject() ||
				got.SKU != want.SKU || got.Quantity != want.Quantity || got.Total != want.Total || len(got.Items) != len(want.Items) {
				t.Fatalf("record %d: engine decodes %+v, encoding/json %+v", i, got, want)
			}
		}
	}
	for _, want := range []event.Reason{event.ReasonEmpty, event.ReasonMalformedJSON, event.ReasonUnknownType,
		event.ReasonMissingID, event.ReasonInvalidField} {
		if reasons[want] == 0 {
			t.Errorf("no malformed record of reason %s: %v", want, reasons)
		}
	}
	t.Logf("dead-letter reasons: %v", reasons)
}

// TestFastTraffic: at a rate the sessions can offer only by being brought
// forward (many events in each millisecond), with a guard window around
// every pending coupon deadline,
//   - the traffic still comes from sessions. Filling in with a new
//     visitor's one-page visit whenever the earliest session was in its
//     guard window had made about 70 % of the records one-page visits at
//     40k/s;
//   - no customer's cart change follows their order in the same
//     millisecond: the engine cannot tell the publish order of the two
//     topics' records in one millisecond, so such a cart_add could be
//     applied before the order that the oracle expects to come first.
func TestFastTraffic(t *testing.T) {
	cfg := Config{Seed: 3, Customers: 100_000, MaxSessions: 25_000, Wait: 2 * time.Second, DeadlineGuard: time.Second, MalformedShare: -1}
	g := mustNew(t, cfg)
	recs := generate(g, 400_000, 10*time.Microsecond) // 100k/s for 4 s
	seen := map[string]int{}
	ordered := map[string]time.Time{} // customer → their last order's ts
	for i, r := range recs {
		seen[string(r.Key)]++
		e, err := decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if e.CustomerID == "" {
			continue
		}
		if e.Type == event.Order {
			ordered[e.CustomerID] = e.TS
		} else if at, ok := ordered[e.CustomerID]; ok && at.Equal(e.TS) && (e.Type == event.CartAdd || e.Type == event.CartRemove) {
			t.Fatalf("record %d: %s of %s in the millisecond of their order (%v)", i, e.Type, e.CustomerID, at)
		}
	}
	once := 0
	for k, n := range seen {
		if n == 1 && strings.HasPrefix(k, "a-") {
			once++
		}
	}
	if share := float64(once) / float64(len(recs)); share > 0.05 {
		t.Errorf("%.1f %% of the records are an anonymous visitor's only event, want under 5 %%", 100*share)
	}
	if got := len(g.Oracle().Expected(recs[len(recs)-1].TS.Add(time.Hour))); got == 0 {
		t.Error("no coupons")
	}
}
