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

// The due heap orders g.slab indices by (ready, seq); so does the parked
// heap (see Generator.Next). Only a heap's top is ever rescheduled or
// removed, so neither needs a position index.

func (g *Generator) less(a, b int32) bool {
	x, y := &g.slab[a], &g.slab[b]
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
	return &g.slab[g.due[0]]
}

func (g *Generator) push(i int32) { g.heapPush(&g.due, i) }

// pop removes the top.
func (g *Generator) pop() { g.heapPop(&g.due) }

// down restores heap order below i after g.slab[g.due[i]] became later.
func (g *Generator) down(i int) { g.heapDown(g.due, i) }

func (g *Generator) heapPush(h *[]int32, i int32) {
	*h = append(*h, i)
	q := *h
	for j := len(q) - 1; j > 0; {
		p := (j - 1) / 2
		if !g.less(q[j], q[p]) {
			break
		}
		q[j], q[p] = q[p], q[j]
		j = p
	}
}

func (g *Generator) heapPop(h *[]int32) {
	q := *h
	n := len(q) - 1
	q[0] = q[n]
	*h = q[:n]
	g.heapDown(*h, 0)
}

func (g *Generator) heapDown(q []int32, i int) {
	n := len(q)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && g.less(q[r], q[c]) {
			c = r
		}
		if !g.less(q[c], q[i]) {
			return
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
}
