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
// simulated time. Sessions are recycled through Generator.free.
type session struct {
	ready int64  // unix ns before which the next action is not due
	seq   uint64 // ties on ready are broken by start order
	idx   int    // index in the ready heap

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

// sessionHeap orders sessions by due time; it implements heap.Interface.
type sessionHeap []*session

func (h sessionHeap) Len() int { return len(h) }

func (h sessionHeap) Less(i, j int) bool {
	if h[i].ready != h[j].ready {
		return h[i].ready < h[j].ready
	}
	return h[i].seq < h[j].seq
}

func (h sessionHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h *sessionHeap) Push(x any) {
	s := x.(*session)
	s.idx = len(*h)
	*h = append(*h, s)
}

func (h *sessionHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.idx = -1
	return s
}

func (h sessionHeap) peek() *session {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}
