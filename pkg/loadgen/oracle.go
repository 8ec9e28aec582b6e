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
// The model, per customer id (events without one are ignored):
//   - cart_add puts the sku in the cart and (re)starts the wait: deadline =
//     event ts + Wait, cause = this event's id;
//   - cart_remove removes the sku's line; an emptied cart cancels the wait;
//   - order empties the cart and cancels the wait; forget erases the customer;
//   - any other type changes nothing (checkout_start does not cancel; identify
//     does not carry an anonymous cart over);
//   - a pending deadline qualifies one coupon, qualified_at = deadline. It is
//     resolved before the customer's next event when that event's ts is at or
//     after the deadline (the timer wins a tie; the Generator never emits
//     one), and otherwise reported by Expected once `until` reaches it.
//
// Events must be observed in each customer's publish order. An Oracle is safe
// for concurrent use, so a test may read it while Generator.Run feeds it.
type Oracle struct {
	wait time.Duration

	mu        sync.Mutex
	customers map[string]*cartState
	fired     []coupon
	malformed int
}

type coupon struct {
	customer string
	deadline int64 // unix nanoseconds
	cause    string
}

// cartState is one customer's cart. A customer whose cart empties is
// deleted, so the map holds only non-empty carts (a pending wait implies a
// non-empty cart).
type cartState struct {
	skus     []string // one entry per cart line
	pending  bool
	deadline int64
	cause    string
}

// NewOracle returns an empty Oracle for a pipeline that waits wait after the
// last cart_add.
func NewOracle(wait time.Duration) *Oracle {
	return &Oracle{wait: wait, customers: make(map[string]*cartState)}
}

// Observe applies one valid event, as the engine would.
func (o *Oracle) Observe(e *event.Event) {
	o.observe(e.Type, e.CustomerID, e.SKU, e.TS.UnixNano(), e.EventID)
}

// ObserveMalformed counts one record the engine must dead-letter.
func (o *Oracle) ObserveMalformed() {
	o.mu.Lock()
	o.malformed++
	o.mu.Unlock()
}

// observe is Observe without building an event.Event: the Generator passes
// the fields it already has. cause is needed only for cart_add.
func (o *Oracle) observe(typ event.Type, customer, sku string, ts int64, eventID string) {
	if customer == "" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.customers[customer]
	if st != nil && st.pending && st.deadline <= ts {
		o.fired = append(o.fired, coupon{customer: customer, deadline: st.deadline, cause: st.cause})
		st.pending, st.cause = false, ""
	}
	switch typ {
	case event.CartAdd:
		if st == nil {
			st = &cartState{}
			o.customers[customer] = st
		}
		if !slices.Contains(st.skus, sku) {
			st.skus = append(st.skus, sku)
		}
		st.pending, st.deadline, st.cause = true, ts+int64(o.wait), eventID
	case event.CartRemove:
		if st == nil {
			return
		}
		if i := slices.Index(st.skus, sku); i >= 0 {
			st.skus = slices.Delete(st.skus, i, i+1)
		}
		if len(st.skus) == 0 {
			delete(o.customers, customer)
		}
	case event.Order, event.Forget:
		if st != nil {
			delete(o.customers, customer)
		}
	}
}

// pendingDeadline returns customer's pending deadline, if any.
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
		if deadline <= u {
			out = append(out, Expected{
				Rule:         RuleCartAbandonment,
				CustomerID:   customer,
				QualifiedAt:  time.Unix(0, deadline).UTC(),
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
