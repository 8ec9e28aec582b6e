package loadgen

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/spur-crm/spur/pkg/event"
)

// Record is one Kafka record to publish.
type Record struct {
	Topic string
	// Key is customer_id, or anonymous_id before login. Key and Value are
	// owned by the caller: the Generator never touches them again.
	Key, Value []byte
	// TS is the event time, equal to the value's "ts": the now given to Next,
	// truncated to the millisecond (the precision the engine keeps).
	TS time.Time
	// Malformed marks a garbage record that the engine must dead-letter.
	Malformed bool
}

// Shape of the traffic that Config does not expose.
const (
	cartShare  = 0.5  // share of sessions that add to cart
	emptyShare = 0.15 // share of non-abandoning carting sessions that empty the cart instead of ordering
	maxPlan    = 24   // upper bound of a session's plan length: plan emits at most 21
	maxLines   = 8    // cart lines a session tracks
)

// Generator produces seeded storefront traffic: many concurrent sessions,
// interleaved, each a small state machine in simulated time. It feeds every
// record it emits to its Oracle.
//
// A Generator is not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	oracle *Oracle
	limit  int // concurrent sessions: min(MaxSessions, Customers)

	eventPrefix, orderPrefix []byte // "e-<seed>-", "o-<seed>-"
	events, orders, anons    uint64
	sessions                 uint64
	last                     int64 // latest now, unix ns: time never runs backwards

	// Sessions live in slab and are referred to by index, so the due heap
	// holds no pointers (no GC write barriers on every heap move).
	slab   []session
	due    []slot           // heap of sessions, earliest ready first
	parked []slot           // heap of sessions whose next action is held out of a guard window (see Next)
	free   []int32          // unused slab indices
	active map[int]struct{} // customers with a session, or one ended this millisecond
	ended  []endedSession   // sessions ended, customers not yet released

	buf          []byte // value scratch; copied into each Record
	key          []byte // key scratch
	idStart, idE int    // the current event_id within buf
	tsSec        int64  // the second tsPrefix renders
	tsPrefix     []byte // "2006-01-02T15:04:05" of tsSec
}

// New returns a Generator for cfg, which Validate must accept.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Generator{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5b0a_d1e5_c0ff_ee00)),
		limit:  min(cfg.MaxSessions, cfg.Customers),
		active: make(map[int]struct{}, min(cfg.MaxSessions, cfg.Customers)),
		buf:    make([]byte, 0, 1024),
	}
	if !cfg.NoOracle {
		g.oracle = NewOracle(cfg.Wait)
	}
	g.eventPrefix = strconv.AppendInt([]byte("e-"), cfg.Seed, 10)
	g.eventPrefix = append(g.eventPrefix, '-')
	g.orderPrefix = strconv.AppendInt([]byte("o-"), cfg.Seed, 10)
	g.orderPrefix = append(g.orderPrefix, '-')
	return g, nil
}

// Config returns the configuration in use, defaults applied.
func (g *Generator) Config() Config { return g.cfg }

// Oracle returns the oracle fed with every record emitted so far, or nil with
// Config.NoOracle.
func (g *Generator) Oracle() *Oracle { return g.oracle }

// Next returns the next record, with event time now truncated to the
// millisecond. It always returns a record: a session whose next action is due
// at now if there is one, else the first action of a new session, else (all
// sessions busy) the earliest session's next action that may be brought
// forward (outside its customer's deadline guard), else a one-page
// anonymous visit.
//
// Time never runs backwards: a now before an earlier call's is treated as
// that earlier now, so every customer's events have nondecreasing ts.
func (g *Generator) Next(now time.Time) Record {
	t := floorMS(now.UnixNano()) * 1e6
	if t < g.last {
		t = g.last
	}
	g.last = t
	ts := time.Unix(0, t).UTC()

	if g.cfg.MalformedShare > 0 && g.rng.Float64() < g.cfg.MalformedShare {
		return g.malformed(ts)
	}
	g.release(t)
	for len(g.parked) > 0 && g.parked[0].ready <= t {
		i := g.parked[0].i
		g.heapPop(&g.parked)
		g.push(i)
	}
	for {
		s := g.top()
		if s != nil && s.ready <= t {
			if until, ok := g.guarded(s, t); ok {
				s.ready = until
				g.down(0)
				continue
			}
			return g.step(s, ts)
		}
		if len(g.active) < g.limit && g.start(t) {
			continue // the new session is due at t: the branch above takes it
		}
		if s == nil {
			return g.bounce(ts)
		}
		until, ok := g.guarded(s, t)
		if !ok {
			return g.step(s, ts)
		}
		// The earliest session's next action cannot be brought forward
		// into its customer's guard window: it is parked until that
		// window has passed, and the next session tried. (Filling in with
		// a new visitor's page view instead, as before, made two thirds of
		// the bench's traffic one-page visits at high rates.)
		s.ready = max(s.ready, until)
		i := g.due[0].i
		g.pop()
		g.heapPush(&g.parked, i)
	}
}

// endedSession is a customer whose session ended at a moment (unix ns).
type endedSession struct {
	cust int
	at   int64
}

// release frees the customers whose session ended before t (g.ended is in
// time order).
func (g *Generator) release(t int64) {
	k := 0
	for ; k < len(g.ended) && g.ended[k].at < t; k++ {
		delete(g.active, g.ended[k].cust)
	}
	if k > 0 {
		g.ended = g.ended[:copy(g.ended, g.ended[k:])]
	}
}

// guarded reports whether s's next event would carry a customer id inside
// the guard window around that customer's pending deadline, and if so the
// first instant after the window.
func (g *Generator) guarded(s *session, t int64) (int64, bool) {
	if g.oracle == nil || (!s.loggedIn && s.plan[s.pc] != actIdentify) {
		return 0, false
	}
	dMS, ok := g.oracle.pendingDeadline(s.custID)
	if !ok {
		return 0, false
	}
	d, w := dMS*1e6, int64(g.cfg.DeadlineGuard)
	if t < d-w || t > d+w {
		return 0, false
	}
	return d + w + 1, true
}

// start begins a session, due at t, for a customer without one. It reports
// false, changing nothing, if it found no such customer.
func (g *Generator) start(t int64) bool {
	n := g.pickCustomer()
	if n == 0 {
		return false
	}
	var i int32
	if k := len(g.free); k > 0 {
		i, g.free = g.free[k-1], g.free[:k-1]
	} else {
		i = int32(len(g.slab))
		g.slab = append(g.slab, session{})
	}
	s := &g.slab[i]
	g.sessions++
	*s = session{
		ready:  t,
		seq:    g.sessions,
		cust:   n,
		custID: "c-" + strconv.Itoa(n),
		viewed: -1,
	}
	r := g.rng
	switch x := r.Float64(); {
	case x < 0.6:
		s.channel = chWeb
	case x < 0.85:
		s.channel = chIOS
	default:
		s.channel = chAndroid
	}
	s.cat = r.IntN(len(shop.categories))
	if r.Float64() < g.cfg.AnonymousShare {
		g.anons++
		s.anon = g.anons
	} else {
		s.loggedIn = true
	}
	g.plan(s)
	g.active[n] = struct{}{}
	g.push(i)
	return true
}

// pickCustomer returns a customer number without an active session, or 0.
// Low numbers are picked more often, as regulars visit more often.
func (g *Generator) pickCustomer() int {
	c := g.cfg.Customers
	for range 8 {
		u := g.rng.Float64()
		n := 1 + int(u*u*float64(c))
		if n > c {
			n = c
		}
		if _, busy := g.active[n]; !busy {
			return n
		}
	}
	// Nearly every customer is busy, which only happens when Customers is
	// close to MaxSessions: scan a bounded stretch from a random point.
	start := g.rng.IntN(c)
	for i := range min(c, 4*g.limit+64) {
		n := 1 + (start+i)%c
		if _, busy := g.active[n]; !busy {
			return n
		}
	}
	return 0
}

// plan writes s's sequence of actions. The outcome is decided up front:
// browse only, or cart then order, abandon, or empty the cart.
func (g *Generator) plan(s *session) {
	r, p := g.rng, s.plan[:0]
	browse := func(k int) {
		for range k {
			p = append(p, actBrowse)
		}
	}
	browse(1 + r.IntN(5))
	loginBefore := -1 // an anonymous visitor must log in before checkout
	if r.Float64() < cartShare {
		adds := 1 + r.IntN(3)
		for i := range adds {
			if i > 0 {
				browse(r.IntN(3))
			}
			p = append(p, actCartAdd)
		}
		if adds > 1 && r.Float64() < 0.3 {
			p = append(p, actCartRemove)
		}
		switch {
		case r.Float64() < g.cfg.AbandonRate:
			browse(r.IntN(4))
			if r.Float64() < 0.3 { // checkout_start does not cancel the wait
				p = append(p, actCheckout)
				browse(r.IntN(2))
			}
		case r.Float64() < emptyShare:
			browse(r.IntN(3))
			p = append(p, actEmpty)
			browse(r.IntN(3))
		default:
			browse(r.IntN(3))
			loginBefore = len(p)
			p = append(p, actCheckout, actOrder)
		}
	} else {
		browse(r.IntN(10))
	}
	if !s.loggedIn {
		// Log in midway: after at least one anonymous event, before checkout,
		// feedback and forget.
		last := len(p)
		if loginBefore >= 0 {
			last = loginBefore
		}
		at := 1 + r.IntN(last)
		p = append(p, 0)
		copy(p[at+1:], p[at:])
		p[at] = actIdentify
	}
	if r.Float64() < g.cfg.FeedbackShare {
		p = append(p, actFeedback)
	}
	if r.Float64() < g.cfg.ForgetShare {
		p = append(p, actForget)
	}
	if cap(p) != maxPlan {
		panic("loadgen: session plan outgrew its array")
	}
	s.n, s.pc = len(p), 0
}

// step emits s's next action at ts and schedules or ends s. s is at the top
// of the ready heap.
func (g *Generator) step(s *session, ts time.Time) Record {
	t := ts.UnixNano()
	gap := g.thinkTime()
	rec := g.act(s, ts, gap)
	if s.pc == s.n {
		// The customer may start another session from the next
		// millisecond on: an order ending this one goes to the orders
		// topic, and the next session's first events, in the same
		// millisecond on the clickstream topic, could be applied before
		// it.
		g.ended = append(g.ended, endedSession{s.cust, t})
		s.custID = ""
		g.free = append(g.free, g.due[0].i)
		g.pop()
	} else {
		s.ready = t + int64(gap)
		g.down(0)
	}
	return rec
}

// thinkTime is the pause before a session's next action: 0.3 s plus an
// exponential with mean 2.2 s, capped at 12 s, so sessions span seconds to
// about a minute.
func (g *Generator) thinkTime() time.Duration {
	d := 300*time.Millisecond + time.Duration(g.rng.ExpFloat64()*float64(2200*time.Millisecond))
	return min(d, 12*time.Second)
}

// act builds the record for s's action at s.pc and advances s.pc.
func (g *Generator) act(s *session, ts time.Time, gap time.Duration) Record {
	r := g.rng
	a := s.plan[s.pc]
	s.pc++
	var (
		typ   event.Type
		sku   string
		qty   int
		cause bool // the oracle needs this event's id
	)
	switch a {
	case actBrowse:
		switch x := r.Float64(); {
		case x < 0.35:
			typ = event.PageView
			g.begin(s, typ, ts)
		case x < 0.85:
			typ = event.ProductView
			p := g.browseProduct(s)
			s.viewed = int32(p)
			g.begin(s, typ, ts)
			g.buf = append(g.buf, ',')
			g.buf = append(g.buf, shop.products[p].fields...)
			g.buf = append(g.buf, `,"dwell_ms":`...)
			g.buf = strconv.AppendInt(g.buf, gap.Milliseconds(), 10)
		default:
			typ = event.Search
			qs := shop.categories[s.cat].quotedQueries
			g.begin(s, typ, ts)
			g.buf = append(g.buf, `,"query":`...)
			g.buf = append(g.buf, qs[r.IntN(len(qs))]...)
		}
	case actCartAdd:
		typ, cause = event.CartAdd, true
		p := int(s.viewed)
		if p < 0 || r.Float64() < 0.3 {
			p = g.browseProduct(s)
		}
		q := 1
		if r.Float64() < 0.15 {
			q = 2 + r.IntN(2)
		}
		p, q = s.add(p, q)
		sku, qty = shop.products[p].sku, q
		g.begin(s, typ, ts)
		g.buf = append(g.buf, ',')
		g.productFields(p, q)
	case actCartRemove, actEmpty:
		if a == actCartRemove && s.nlines < 2 {
			// Keep the cart non-empty: look at a product instead.
			typ = event.PageView
			g.begin(s, typ, ts)
			break
		}
		typ = event.CartRemove
		l := s.remove(r.IntN(s.nlines))
		sku, qty = shop.products[l.prod].sku, int(l.qty)
		g.begin(s, typ, ts)
		g.buf = append(g.buf, ',')
		g.productFields(int(l.prod), int(l.qty))
		if a == actEmpty && s.nlines > 0 {
			s.pc-- // remove the next line on the next step
		}
	case actCheckout:
		typ = event.CheckoutStart
		g.begin(s, typ, ts)
	case actOrder:
		typ = event.Order
		g.begin(s, typ, ts)
		g.orders++
		g.buf = append(g.buf, `,"order_id":"`...)
		g.buf = append(g.buf, g.orderPrefix...)
		g.buf = strconv.AppendUint(g.buf, g.orders, 10)
		g.buf = append(g.buf, `","items":[`...)
		var total int64
		for i, l := range s.lines[:s.nlines] {
			if i > 0 {
				g.buf = append(g.buf, ',')
			}
			g.buf = append(g.buf, '{')
			g.productFields(int(l.prod), int(l.qty))
			g.buf = append(g.buf, '}')
			total += shop.products[l.prod].cents * int64(l.qty)
		}
		g.buf = append(g.buf, `],"total":`...)
		g.buf = appendCents(g.buf, total)
		g.buf = append(g.buf, `,"currency":"USD"`...)
		s.nlines = 0
	case actIdentify:
		typ = event.Identify
		s.loggedIn = true
		g.begin(s, typ, ts)
	case actFeedback:
		typ = event.Feedback
		var pool []text
		switch x := r.Float64(); {
		case x < 0.6:
			pool = shop.good
		case x < 0.8:
			pool = shop.meh
		default:
			pool = shop.bad
		}
		tx := pool[r.IntN(len(pool))]
		g.begin(s, typ, ts)
		g.buf = append(g.buf, `,"rating":`...)
		g.buf = strconv.AppendInt(g.buf, int64(tx.rating), 10)
		g.buf = append(g.buf, `,"text":`...)
		g.buf = append(g.buf, tx.quoted...)
	case actForget:
		typ = event.Forget
		s.anon = 0 // an erasure request names the customer only
		g.begin(s, typ, ts)
	default:
		panic("loadgen: unknown action " + strconv.Itoa(int(a)))
	}
	g.buf = append(g.buf, '}')

	if g.oracle != nil && s.loggedIn {
		var id string
		if cause {
			id = g.lastEventID()
		}
		g.oracle.observe(typ, s.custID, sku, qty, ts.UnixNano(), id)
	}
	topic := g.cfg.ClickstreamTopic
	if typ == event.Order {
		topic = g.cfg.OrdersTopic
	}
	g.key = g.key[:0]
	if s.loggedIn {
		g.key = append(g.key, s.custID...)
	} else {
		g.key = appendAnon(g.key, s.anon)
	}
	return g.record(topic, ts, false)
}

// browseProduct picks a product, mostly from the session's favourite
// category.
func (g *Generator) browseProduct(s *session) int {
	c := s.cat
	if g.rng.Float64() < 0.2 {
		c = g.rng.IntN(len(shop.categories))
	}
	cat := &shop.categories[c]
	return cat.firstProduct + g.rng.IntN(cat.nProds)
}

// bounce emits a one-page visit by a new anonymous visitor, the filler when
// no session can act at ts.
func (g *Generator) bounce(ts time.Time) Record {
	g.anons++
	s := session{anon: g.anons, channel: chWeb}
	g.begin(&s, event.PageView, ts)
	g.buf = append(g.buf, '}')
	g.key = appendAnon(g.key[:0], s.anon)
	return g.record(g.cfg.ClickstreamTopic, ts, false)
}

// record copies the key and value scratch into one fresh allocation.
func (g *Generator) record(topic string, ts time.Time, malformed bool) Record {
	b := make([]byte, len(g.key)+len(g.buf))
	k := copy(b, g.key)
	copy(b[k:], g.buf)
	return Record{Topic: topic, Key: b[:k:k], Value: b[k:], TS: ts, Malformed: malformed}
}
