package loadgen

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/state"
)

// ev is a hand-built event: at is seconds after t0.
type ev struct {
	at   float64
	typ  event.Type
	cust string
	anon string
	sku  string
	qty  int
}

// want is an expected coupon: deadline in seconds after t0 and the index of
// the causing event in the scenario.
type want struct {
	cust  string
	at    float64
	cause int
}

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestOracleScenarios(t *testing.T) {
	const c1, c2 = "c-1", "c-2"
	for _, tc := range []struct {
		name   string
		events []ev
		until  float64
		want   []want
	}{
		{"cart_add fires after wait",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}}, 60,
			[]want{{c1, 10, 0}}},
		{"deadline after until is pending",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}}, 9.999,
			nil},
		{"deadline equal to until counts",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}}, 10,
			[]want{{c1, 10, 0}}},
		{"cart_add then order: none",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {5, event.Order, c1, "", "", 0}}, 60,
			nil},
		{"second cart_add resets the wait and the cause",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {4, event.CartAdd, c1, "", "s2", 0}}, 60,
			[]want{{c1, 14, 1}}},
		{"cart_remove to empty: none",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {1, event.CartAdd, c1, "", "s2", 0},
				{2, event.CartRemove, c1, "", "s1", 0}, {3, event.CartRemove, c1, "", "s2", 0}}, 60,
			nil},
		{"cart_remove leaving a line keeps the wait",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {1, event.CartAdd, c1, "", "s2", 0},
				{2, event.CartRemove, c1, "", "s1", 0}}, 60,
			[]want{{c1, 11, 1}}},
		{"cart_remove without quantity removes the whole line",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {1, event.CartAdd, c1, "", "s1", 0},
				{2, event.CartRemove, c1, "", "s1", 0}}, 60,
			nil},
		{"cart_remove of part of a line keeps the wait",
			[]ev{{0, event.CartAdd, c1, "", "s1", 3}, {2, event.CartRemove, c1, "", "s1", 2}}, 60,
			[]want{{c1, 10, 0}}},
		{"cart_remove of the line's quantity or more empties it",
			[]ev{{0, event.CartAdd, c1, "", "s1", 2}, {1, event.CartAdd, c1, "", "s1", 1},
				{2, event.CartRemove, c1, "", "s1", 5}}, 60,
			nil},
		{"cart_remove of an sku not in the cart changes nothing",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {2, event.CartRemove, c1, "", "s9", 0}}, 60,
			[]want{{c1, 10, 0}}},
		{"checkout_start does not cancel",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {3, event.CheckoutStart, c1, "", "", 0}}, 60,
			[]want{{c1, 10, 0}}},
		{"anonymous cart: none, and not carried over by identify",
			[]ev{{0, event.CartAdd, "", "a-1", "s1", 0}, {2, event.Identify, c1, "a-1", "", 0},
				{3, event.PageView, c1, "a-1", "", 0}}, 60,
			nil},
		{"cart_add after identify counts",
			[]ev{{0, event.CartAdd, "", "a-1", "s1", 0}, {2, event.Identify, c1, "a-1", "", 0},
				{3, event.CartAdd, c1, "a-1", "s2", 0}}, 60,
			[]want{{c1, 13, 2}}},
		{"forget erases",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {3, event.Forget, c1, "", "", 0},
				{4, event.CartRemove, c1, "", "s2", 0}}, 60,
			nil},
		{"order after the deadline is too late",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {12, event.Order, c1, "", "", 0}}, 60,
			[]want{{c1, 10, 0}}},
		{"event at exactly the deadline is applied first",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {10, event.Order, c1, "", "", 0}}, 60,
			nil},
		{"event in the deadline's millisecond is applied first",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {10.0009, event.Order, c1, "", "", 0}}, 60,
			nil},
		{"event a millisecond after the deadline is too late",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {10.001, event.Order, c1, "", "", 0}}, 60,
			[]want{{c1, 10, 0}}},
		{"ts is truncated to the millisecond",
			[]ev{{0.0009, event.CartAdd, c1, "", "s1", 0}}, 10,
			[]want{{c1, 10, 0}}},
		{"fires once, then a new cart_add fires again on the kept cart",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {20, event.PageView, c1, "", "", 0},
				{30, event.CartAdd, c1, "", "s2", 0}, {31, event.CartRemove, c1, "", "s2", 0}}, 60,
			[]want{{c1, 10, 0}, {c1, 40, 2}}},
		{"order empties the cart: a later remove cannot leave lines",
			[]ev{{0, event.CartAdd, c1, "", "s1", 0}, {1, event.Order, c1, "", "", 0},
				{2, event.CartAdd, c1, "", "s2", 0}, {3, event.CartRemove, c1, "", "s2", 0}}, 60,
			nil},
		{"customers are independent, sorted by customer then time",
			[]ev{{0, event.CartAdd, c2, "", "s1", 0}, {1, event.CartAdd, c1, "", "s1", 0},
				{2, event.Order, c2, "", "", 0}, {20, event.CartAdd, c2, "", "s3", 0}}, 60,
			[]want{{c1, 11, 1}, {c2, 30, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOracle(10 * time.Second)
			for i, e := range tc.events {
				o.Observe(&event.Event{
					EventID: "e-" + strconv.Itoa(i), Type: e.typ, TS: sec(e.at),
					CustomerID: e.cust, AnonymousID: e.anon, SKU: e.sku, Quantity: e.qty,
				})
			}
			var exp []Expected
			for _, w := range tc.want {
				exp = append(exp, Expected{Rule: RuleCartAbandonment, CustomerID: w.cust,
					QualifiedAt: sec(w.at), CauseEventID: "e-" + strconv.Itoa(w.cause)})
			}
			if got := o.Expected(sec(tc.until)); !slices.Equal(got, exp) {
				t.Fatalf("got  %+v\nwant %+v", got, exp)
			}
		})
	}
}

// TestOracleEvictsLikeTheEngine checks the cart bound: the 101st line evicts
// the oldest, so removing the other 100 empties the cart.
func TestOracleEvictsLikeTheEngine(t *testing.T) {
	if maxCartLines != state.MaxCartItems {
		t.Fatalf("maxCartLines %d, state.MaxCartItems %d", maxCartLines, state.MaxCartItems)
	}
	o := NewOracle(10 * time.Second)
	for i := range maxCartLines + 1 {
		o.Observe(&event.Event{EventID: "e-" + strconv.Itoa(i), Type: event.CartAdd, CustomerID: "c-1",
			SKU: "s" + strconv.Itoa(i), TS: sec(0)})
	}
	for i := 1; i <= maxCartLines; i++ {
		o.Observe(&event.Event{Type: event.CartRemove, CustomerID: "c-1", SKU: "s" + strconv.Itoa(i), TS: sec(1)})
	}
	if got := o.Expected(sec(60)); len(got) != 0 {
		t.Fatalf("got %+v", got)
	}
}

func TestOracleDeadLetters(t *testing.T) {
	o := NewOracle(time.Second)
	o.ObserveMalformed()
	o.ObserveMalformed()
	if o.DeadLetters() != 2 {
		t.Fatal(o.DeadLetters())
	}
}

// TestOracleKeepsOnlyLiveCarts checks that the oracle's memory follows
// non-empty carts, not every customer ever seen.
func TestOracleKeepsOnlyLiveCarts(t *testing.T) {
	o := NewOracle(time.Second)
	for i := range 1000 {
		c := "c-" + strconv.Itoa(i)
		o.Observe(&event.Event{Type: event.PageView, CustomerID: c, TS: sec(float64(i))})
		o.Observe(&event.Event{Type: event.CartAdd, CustomerID: c, SKU: "s", TS: sec(float64(i))})
		o.Observe(&event.Event{Type: event.Order, CustomerID: c, TS: sec(float64(i))})
	}
	if len(o.customers) != 0 {
		t.Fatalf("%d customers kept", len(o.customers))
	}
}
