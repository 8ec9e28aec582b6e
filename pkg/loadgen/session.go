package loadgen

// action is one step of a session's plan.
type action uint8

const (
	actBrowse     action = iota // page_view, product_view or search
	actCartAdd                  // add the last viewed (or another) product
	actCartRemove               // remove a line, keeping at least one
	actEmpty                    // remove lines, one per step, until the cart is empty
	actCheckout                 // checkout_start
	actOrder                    // order the cart
	actIdentify                 // log in: link the anonymous id to the customer
	actFeedback                 // a review or service ticket
	actForget                   // erase the customer
)

// Channels a session comes from.
const (
	chWeb uint8 = iota
	chIOS
	chAndroid
)

var channelNames = [...]string{chWeb: "web", chIOS: "ios", chAndroid: "android"}

type line struct{ prod, qty int32 }

// session is one visit: a plan of actions executed one per step, in
// simulated time. Sessions live in Generator.slab and are recycled through Generator.free.
type session struct {
	ready int64  // unix ns before which the next action is not due
	seq   uint64 // ties on ready are broken by start order

	cust     int    // customer number; the customer is reserved while the session lives
	custID   string // "c-<cust>"
	anon     uint64 // anonymous id number, 0 if the visitor was logged in from the start
	loggedIn bool   // events carry custID (and are keyed by it)
	channel  uint8
	cat      int   // favourite category
	viewed   int32 // last viewed product, or -1

	plan  [maxPlan]action
	n, pc int

	lines  [maxLines]line
	nlines int
}

// add puts q of product p in the cart and returns the product and quantity
// actually added: a full cart adds to an existing line instead.
func (s *session) add(p, q int) (int, int) {
	for i := range s.lines[:s.nlines] {
		if int(s.lines[i].prod) == p {
			s.lines[i].qty += int32(q)
			return p, q
		}
	}
	if s.nlines == maxLines {
		l := &s.lines[p%maxLines]
		l.qty += int32(q)
		return int(l.prod), q
	}
	s.lines[s.nlines] = line{prod: int32(p), qty: int32(q)}
	s.nlines++
	return p, q
}

// remove deletes line i and returns it.
func (s *session) remove(i int) line {
	l := s.lines[i]
	copy(s.lines[i:s.nlines], s.lines[i+1:s.nlines])
	s.nlines--
	return l
}

// The due heap orders sessions by (ready, seq); so does the parked heap
// (see Generator.Next). Only a heap's top is ever rescheduled or removed,
// so neither needs a position index. An entry carries its session's ready
// and seq: comparing them in the slab instead missed the cache on nearly
// every comparison (5 % of the bench process's CPU at 75 %).
type slot struct {
	ready int64
	seq   uint64
	i     int32 // index in g.slab
}

func (x slot) less(y slot) bool {
	if x.ready != y.ready {
		return x.ready < y.ready
	}
	return x.seq < y.seq
}

// top returns the session due first, or nil. The pointer is valid until the
// slab grows (start).
func (g *Generator) top() *session {
	if len(g.due) == 0 {
		return nil
	}
	return &g.slab[g.due[0].i]
}

func (g *Generator) push(i int32) { g.heapPush(&g.due, i) }

// pop removes the top.
func (g *Generator) pop() { g.heapPop(&g.due) }

// down restores heap order below the top after its session became later.
func (g *Generator) down(i int) { g.heapDown(g.due, i) }

func (g *Generator) heapPush(h *[]slot, i int32) {
	*h = append(*h, slot{ready: g.slab[i].ready, seq: g.slab[i].seq, i: i})
	q := *h
	for j := len(q) - 1; j > 0; {
		p := (j - 1) / 2
		if !q[j].less(q[p]) {
			break
		}
		q[j], q[p] = q[p], q[j]
		j = p
	}
}

func (g *Generator) heapPop(h *[]slot) {
	q := *h
	n := len(q) - 1
	q[0] = q[n]
	*h = q[:n]
	g.heapDown(*h, 0)
}

// heapDown sifts q[i] down, first taking its session's ready time again
// (the caller may have moved it later).
func (g *Generator) heapDown(q []slot, i int) {
	n := len(q)
	if i >= n {
		return
	}
	q[i].ready = g.slab[q[i].i].ready
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && q[r].less(q[c]) {
			c = r
		}
		if !q[c].less(q[i]) {
			return
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
}
