package loadgen

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/spur-crm/spur/pkg/event"
)

// RuleCartAbandonment is the rule name of the default pipeline's coupon.
const RuleCartAbandonment = "cart_abandonment"

// Expected is one trigger the default pipeline must emit.
type Expected struct {
	Rule         string
	CustomerID   string
	QualifiedAt  time.Time
	CauseEventID string
}

// Oracle models the default cart_abandonment pipeline over exactly the
// records a Generator emitted, and so knows which coupons the engine must
// produce. It can also be fed by hand (NewOracle, Observe) to state the
// expectation of a hand-built scenario.
//
// The model, per customer id (events without one are ignored), follows
// pkg/engine and pkg/state:
//   - cart_add adds quantity (at least 1) of the sku to the cart and
//     (re)starts the wait: deadline = event ts + Wait, cause = this event's id;
//   - cart_remove takes quantity off the sku's line, or the whole line when
//     quantity is 0 or at least the line's (the Generator always removes
//     whole lines); an emptied cart cancels the wait;
//   - order empties the cart and cancels the wait; forget erases the customer;
//     a cart event stamped in an order's millisecond is before it whichever
//     topic the engine reads first (the engine gives ties to the order), so
//     the Generator never publishes one after an order in its millisecond;
//   - any other type changes nothing (checkout_start does not cancel; identify
//     does not carry an anonymous cart over);
//   - a cart holds at most maxCartLines lines; adding one more evicts the
//     oldest, as state.Customer.AddToCart does;
//   - a pending deadline qualifies one coupon, qualified_at = deadline. It is
//     resolved before the customer's next event when that event's ts is after
//     the deadline, and otherwise reported by Expected once `until` reaches
//     it. An event at exactly the deadline is applied first (so an order then
//     still cancels), as the engine's event path does; its timer path may
//     fire first instead, which is why the Generator never emits such a tie.
//
// Times are kept at millisecond precision, as the engine keeps them: ts is
// truncated to the millisecond and so is ts + Wait.
//
// Not modelled, because generated traffic never needs it: duplicate
// event_ids (the engine applies an event once; the Generator never repeats an
// id) and the engine's staleness bound (it records, but does not emit, a
// trigger that qualified longer ago than config Staleness, default 1h).
//
// Events must be observed in each customer's publish order, and the engine
// must apply them in that order too: see the package documentation about the
// orders topic. An Oracle is safe for concurrent use, so a test may read it
// while Generator.Run feeds it.
type Oracle struct {
	wait time.Duration

	mu        sync.Mutex
	customers map[string]*cartState
	fired     []coupon
	malformed int
}

// maxCartLines mirrors state.MaxCartItems (a test checks that they agree).
const maxCartLines = 100

type coupon struct {
	customer string
	deadline int64 // unix milliseconds
	cause    string
}

// cartState is one customer's cart. A customer whose cart empties is
// deleted, so the map holds only non-empty carts (a pending wait implies a
// non-empty cart).
type cartState struct {
	lines    []cartLine
	pending  bool
	deadline int64 // unix milliseconds
	cause    string
}

type cartLine struct {
	sku string
	qty int
}

// NewOracle returns an empty Oracle for a pipeline that waits wait after the
// last cart_add.
func NewOracle(wait time.Duration) *Oracle {
	return &Oracle{wait: wait, customers: make(map[string]*cartState)}
}

// Observe applies one valid event, as the engine would.
func (o *Oracle) Observe(e *event.Event) {
	o.observe(e.Type, e.CustomerID, e.SKU, e.Quantity, e.TS.UnixNano(), e.EventID)
}

// ObserveMalformed counts one record the engine must dead-letter.
func (o *Oracle) ObserveMalformed() {
	o.mu.Lock()
	o.malformed++
	o.mu.Unlock()
}

// observe is Observe without building an event.Event: the Generator passes
// the fields it already has. ts is in unix nanoseconds; eventID is needed
// only for cart_add.
func (o *Oracle) observe(typ event.Type, customer, sku string, qty int, ts int64, eventID string) {
	if customer == "" {
		return
	}
	tsMS := floorMS(ts)
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.customers[customer]
	if st != nil && st.pending && st.deadline < tsMS {
		o.fired = append(o.fired, coupon{customer: customer, deadline: st.deadline, cause: st.cause})
		st.pending, st.cause = false, ""
	}
	switch typ {
	case event.CartAdd:
		if st == nil {
			st = &cartState{}
			o.customers[customer] = st
		}
		qty = max(qty, 1)
		if i := st.line(sku); i >= 0 {
			st.lines[i].qty += qty
		} else {
			if len(st.lines) >= maxCartLines {
				st.lines = slices.Delete(st.lines, 0, 1)
			}
			st.lines = append(st.lines, cartLine{sku: sku, qty: qty})
		}
		st.pending, st.deadline, st.cause = true, floorMS(ts+int64(o.wait)), eventID
	case event.CartRemove:
		if st == nil {
			return
		}
		if i := st.line(sku); i >= 0 {
			if qty > 0 && st.lines[i].qty > qty {
				st.lines[i].qty -= qty
			} else {
				st.lines = slices.Delete(st.lines, i, i+1)
			}
		}
		if len(st.lines) == 0 {
			delete(o.customers, customer)
		}
	case event.Order, event.Forget:
		if st != nil {
			delete(o.customers, customer)
		}
	}
}

func (st *cartState) line(sku string) int {
	return slices.IndexFunc(st.lines, func(l cartLine) bool { return l.sku == sku })
}

// floorMS converts unix nanoseconds to unix milliseconds as
// time.Time.UnixMilli does (rounding down).
func floorMS(ns int64) int64 {
	ms := ns / 1e6
	if ns%1e6 < 0 {
		ms--
	}
	return ms
}

// pendingDeadline returns customer's pending deadline in unix milliseconds,
// if any.
func (o *Oracle) pendingDeadline(customer string) (int64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if st := o.customers[customer]; st != nil && st.pending {
		return st.deadline, true
	}
	return 0, false
}

// Expected returns the coupons whose deadline is at or before until, sorted
// by customer id, then qualified_at, then cause. Deadlines after until are
// still pending and left out: a later call with a later until includes them
// unless the customer's later events cancel them first. A nil Oracle (see
// Config.NoOracle) returns nil.
func (o *Oracle) Expected(until time.Time) []Expected {
	if o == nil {
		return nil
	}
	u := until.UnixNano()
	o.mu.Lock()
	var out []Expected
	add := func(customer string, deadline int64, cause string) {
		if deadline*1e6 <= u {
			out = append(out, Expected{
				Rule:         RuleCartAbandonment,
				CustomerID:   customer,
				QualifiedAt:  time.UnixMilli(deadline).UTC(),
				CauseEventID: cause,
			})
		}
	}
	for _, c := range o.fired {
		add(c.customer, c.deadline, c.cause)
	}
	for id, st := range o.customers {
		if st.pending {
			add(id, st.deadline, st.cause)
		}
	}
	o.mu.Unlock()
	slices.SortFunc(out, func(a, b Expected) int {
		return cmp.Or(
			cmp.Compare(a.CustomerID, b.CustomerID),
			a.QualifiedAt.Compare(b.QualifiedAt),
			cmp.Compare(a.CauseEventID, b.CauseEventID),
		)
	})
	return out
}

// DeadLetters returns the number of malformed records emitted so far: the
// records the engine must send to the dead-letter topic. A nil Oracle
// returns 0.
func (o *Oracle) DeadLetters() int {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.malformed
}
