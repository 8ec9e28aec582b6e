package loadgen

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/spur-crm/spur/pkg/event"
)

// ev is a hand-built event: at is seconds after t0.
type ev struct {
	at   float64
	typ  event.Type
	cust string
	anon string
	sku  string
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
			[]ev{{0, event.CartAdd, c1, "", "s1"}}, 60,
			[]want{{c1, 10, 0}}},
		{"deadline after until is pending",
			[]ev{{0, event.CartAdd, c1, "", "s1"}}, 9.999,
			nil},
		{"deadline equal to until counts",
			[]ev{{0, event.CartAdd, c1, "", "s1"}}, 10,
			[]want{{c1, 10, 0}}},
		{"cart_add then order: none",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {5, event.Order, c1, "", ""}}, 60,
			nil},
		{"second cart_add resets the wait and the cause",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {4, event.CartAdd, c1, "", "s2"}}, 60,
			[]want{{c1, 14, 1}}},
		{"cart_remove to empty: none",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {1, event.CartAdd, c1, "", "s2"},
				{2, event.CartRemove, c1, "", "s1"}, {3, event.CartRemove, c1, "", "s2"}}, 60,
			nil},
		{"cart_remove leaving a line keeps the wait",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {1, event.CartAdd, c1, "", "s2"},
				{2, event.CartRemove, c1, "", "s1"}}, 60,
			[]want{{c1, 11, 1}}},
		{"cart_remove removes the whole line",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {1, event.CartAdd, c1, "", "s1"},
				{2, event.CartRemove, c1, "", "s1"}}, 60,
			nil},
		{"cart_remove of an sku not in the cart changes nothing",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {2, event.CartRemove, c1, "", "s9"}}, 60,
			[]want{{c1, 10, 0}}},
		{"checkout_start does not cancel",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {3, event.CheckoutStart, c1, "", ""}}, 60,
			[]want{{c1, 10, 0}}},
		{"anonymous cart: none, and not carried over by identify",
			[]ev{{0, event.CartAdd, "", "a-1", "s1"}, {2, event.Identify, c1, "a-1", ""},
				{3, event.PageView, c1, "a-1", ""}}, 60,
			nil},
		{"cart_add after identify counts",
			[]ev{{0, event.CartAdd, "", "a-1", "s1"}, {2, event.Identify, c1, "a-1", ""},
				{3, event.CartAdd, c1, "a-1", "s2"}}, 60,
			[]want{{c1, 13, 2}}},
		{"forget erases",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {3, event.Forget, c1, "", ""},
				{4, event.CartRemove, c1, "", "s2"}}, 60,
			nil},
		{"order after the deadline is too late",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {12, event.Order, c1, "", ""}}, 60,
			[]want{{c1, 10, 0}}},
		{"event at exactly the deadline: the timer wins",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {10, event.Order, c1, "", ""}}, 60,
			[]want{{c1, 10, 0}}},
		{"fires once, then a new cart_add fires again on the kept cart",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {20, event.PageView, c1, "", ""},
				{30, event.CartAdd, c1, "", "s2"}, {31, event.CartRemove, c1, "", "s2"}}, 60,
			[]want{{c1, 10, 0}, {c1, 40, 2}}},
		{"order empties the cart: a later remove cannot leave lines",
			[]ev{{0, event.CartAdd, c1, "", "s1"}, {1, event.Order, c1, "", ""},
				{2, event.CartAdd, c1, "", "s2"}, {3, event.CartRemove, c1, "", "s2"}}, 60,
			nil},
		{"customers are independent, sorted by customer then time",
			[]ev{{0, event.CartAdd, c2, "", "s1"}, {1, event.CartAdd, c1, "", "s1"},
				{2, event.Order, c2, "", ""}, {20, event.CartAdd, c2, "", "s3"}}, 60,
			[]want{{c1, 11, 1}, {c2, 30, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOracle(10 * time.Second)
			for i, e := range tc.events {
				o.Observe(&event.Event{
					EventID: "e-" + strconv.Itoa(i), Type: e.typ, TS: sec(e.at),
					CustomerID: e.cust, AnonymousID: e.anon, SKU: e.sku,
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
