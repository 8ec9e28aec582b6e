package publish

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"time"

	"github.com/spur-crm/spur/pkg/event"
)

// The constructors below build events of each v1 type. Each sets Type, a
// random EventID and TS = now (UTC, millisecond precision); set Channel,
// Brand, Currency and the like on the result. Where a constructor takes both
// ids, either may be empty (the schemas want at least one); where it takes
// only a customer id and the visitor has not logged in yet, pass "" and set
// AnonymousID on the result. They do not validate: Publish does.

// NewEventID returns a random id (a UUID version 4) for event_id, the
// producer's idempotency key.
func NewEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // since Go 1.24 it never returns an error
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

func newEvent(t event.Type, customerID, anonymousID string) event.Event {
	return event.Event{
		EventID:     NewEventID(),
		Type:        t,
		TS:          time.Now().UTC().Truncate(time.Millisecond),
		CustomerID:  customerID,
		AnonymousID: anonymousID,
	}
}

// PageView is a page_view: a visitor saw a page. The v1 contract carries no
// URL; send it as an extra field of your own if you need it downstream.
func PageView(customerID, anonymousID string) event.Event {
	return newEvent(event.PageView, customerID, anonymousID)
}

// ProductView is a product_view of sku; dwell is the time spent on the page
// (zero when unknown).
func ProductView(customerID, anonymousID, sku, category string, price float64, dwell time.Duration) event.Event {
	ev := newEvent(event.ProductView, customerID, anonymousID)
	ev.SKU, ev.Category, ev.Price, ev.DwellMS = sku, category, price, dwell.Milliseconds()
	return ev
}

// Search is a search for query.
func Search(customerID, anonymousID, query string) event.Event {
	ev := newEvent(event.Search, customerID, anonymousID)
	ev.Query = query
	return ev
}

// CartAdd is a cart_add of qty units of sku at price each.
func CartAdd(customerID, sku, category string, price float64, qty int) event.Event {
	ev := newEvent(event.CartAdd, customerID, "")
	ev.SKU, ev.Category, ev.Price, ev.Quantity = sku, category, price, qty
	return ev
}

// CartRemove is a cart_remove of qty units of sku (qty 0: the whole line).
func CartRemove(customerID, sku string, qty int) event.Event {
	ev := newEvent(event.CartRemove, customerID, "")
	ev.SKU, ev.Quantity = sku, qty
	return ev
}

// CheckoutStart is a checkout_start.
func CheckoutStart(customerID string) event.Event {
	return newEvent(event.CheckoutStart, customerID, "")
}

// Order is an order of items; Total is their sum of price × quantity,
// rounded to cents. Set Total yourself after discounts or shipping, and
// Currency when the shop has several. items is copied.
func Order(customerID, orderID string, items []event.Item) event.Event {
	ev := newEvent(event.Order, customerID, "")
	ev.OrderID = orderID
	ev.Items = append([]event.Item(nil), items...)
	var total float64
	for _, it := range items {
		total += it.Price * float64(it.Quantity)
	}
	ev.Total = math.Round(total*100) / 100
	return ev
}

// Identify links anonymousID to customerID, typically at login.
func Identify(customerID, anonymousID string) event.Event {
	return newEvent(event.Identify, customerID, anonymousID)
}

// Feedback is a review or service ticket; rating is 1 to 5, or 0 for none,
// and text may be empty. Set Kind to "review" or "ticket" when known.
func Feedback(customerID string, rating int, text string) event.Event {
	ev := newEvent(event.Feedback, customerID, "")
	ev.Rating, ev.Text = rating, text
	return ev
}

// Forget asks spur to erase everything it holds about customerID.
func Forget(customerID string) event.Event {
	return newEvent(event.Forget, customerID, "")
}
