package event

import (
	"time"
)

// Type is the kind of a storefront event, as named in the v1 contract.
type Type string

// The event types of the v1 contract. schemas/<type>.json is the source of
// truth for each one's fields.
const (
	PageView      Type = "page_view"
	ProductView   Type = "product_view"
	Search        Type = "search"
	CartAdd       Type = "cart_add"
	CartRemove    Type = "cart_remove"
	CheckoutStart Type = "checkout_start"
	Order         Type = "order"
	Identify      Type = "identify"
	Feedback      Type = "feedback"
	Forget        Type = "forget"
)

// Types lists every known event type, in contract order.
var Types = []Type{PageView, ProductView, Search, CartAdd, CartRemove, CheckoutStart, Order, Identify, Feedback, Forget}

// Item is one line of an order.
type Item struct {
	SKU      string  `json:"sku"`
	Category string  `json:"category,omitempty"`
	Brand    string  `json:"brand,omitempty"`
	Price    float64 `json:"price"`
	Quantity int     `json:"quantity"`
}

// Event is the canonical, validated form of one input record. Fields that a
// type does not carry are zero.
type Event struct {
	EventID string    `json:"event_id"`
	Type    Type      `json:"type"`
	TS      time.Time `json:"ts"` // in UTC
	// UTCOffsetMinutes is the offset ts was written with: the producer's
	// local time when it is not 0.
	UTCOffsetMinutes int    `json:"-"`
	CustomerID       string `json:"customer_id,omitempty"`
	AnonymousID      string `json:"anonymous_id,omitempty"`
	Channel          string `json:"channel,omitempty"`

	// Product fields: product_view, cart_add, cart_remove.
	SKU      string  `json:"sku,omitempty"`
	Category string  `json:"category,omitempty"`
	Brand    string  `json:"brand,omitempty"`
	Price    float64 `json:"price,omitempty"`
	Quantity int     `json:"quantity,omitempty"`
	DwellMS  int64   `json:"dwell_ms,omitempty"`

	// search
	Query string `json:"query,omitempty"`

	// order
	OrderID  string  `json:"order_id,omitempty"`
	Items    []Item  `json:"items,omitempty"`
	Total    float64 `json:"total,omitempty"`
	Currency string  `json:"currency,omitempty"`

	// feedback
	Rating int    `json:"rating,omitempty"`
	Text   string `json:"text,omitempty"`
	Kind   string `json:"kind,omitempty"` // "review", "ticket" or empty
}

// Subject returns the id that owns this event's state: the customer id when
// known, otherwise the anonymous id. It is also the expected record key.
func (e *Event) Subject() string {
	if e.CustomerID != "" {
		return e.CustomerID
	}
	return e.AnonymousID
}
