package emit

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Trigger kinds.
const (
	KindCoupon     = "coupon"
	KindTagAdded   = "tag_added"
	KindTagRemoved = "tag_removed"
	KindConversion = "conversion"
	KindNotify     = "notify"
)

// Variants.
const (
	VariantTreatment = "treatment"
	VariantHoldout   = "holdout"
)

// SchemaVersion is the version of the trigger record contract.
const SchemaVersion = 1

// Trigger is the v1 output record (schemas/trigger.json).
type Trigger struct {
	SchemaVersion int       `json:"schema_version"`
	TriggerID     string    `json:"trigger_id"`
	Kind          string    `json:"kind"`
	Rule          string    `json:"rule"`
	CustomerID    string    `json:"customer_id"`
	Variant       string    `json:"variant"`
	QualifiedAt   time.Time `json:"qualified_at"`
	EmittedAt     time.Time `json:"emitted_at"`
	CauseEventIDs []string  `json:"cause_event_ids"`
	Payload       Payload   `json:"payload"`
}

// Payload carries what the marketing system needs to act.
type Payload struct {
	Coupon       *Coupon    `json:"coupon,omitempty"`
	Cart         *Cart      `json:"cart,omitempty"`
	Tag          string     `json:"tag,omitempty"`
	TagExpiresAt *time.Time `json:"tag_expires_at,omitempty"`
	// Conversion: the trigger the order is attributed to, and the order.
	AttributedTriggerID string `json:"attributed_trigger_id,omitempty"`
	Order               *Order `json:"order,omitempty"`
	// Notify: the message a pipeline asks the marketing system to send.
	Notify *Notify `json:"notify,omitempty"`
}

// Notify is a pipeline's custom message: its name and templated data.
type Notify struct {
	Message string            `json:"message"`
	Data    map[string]string `json:"data,omitempty"`
}

// Order is the order of a conversion.
type Order struct {
	OrderID string  `json:"order_id"`
	Total   float64 `json:"total"`
}

// Coupon is a personalised coupon.
type Coupon struct {
	Code         string    `json:"code"`
	PercentOff   int       `json:"percent_off,omitempty"` // 0 with free shipping instead
	ExpiresAt    time.Time `json:"expires_at"`
	FreeShipping bool      `json:"free_shipping,omitempty"`
}

// Cart is the cart a coupon refers to.
type Cart struct {
	Items []CartItem `json:"items"`
	Value float64    `json:"value"`
}

// CartItem is one cart line.
type CartItem struct {
	SKU      string  `json:"sku"`
	Category string  `json:"category,omitempty"`
	Price    float64 `json:"price"`
	Quantity int32   `json:"quantity"`
}

// TriggerID derives the deterministic id of a trigger from its rule, its
// customer and what qualified it (an event id, or a timer's id and deadline).
func TriggerID(rule, customer, cause string) string {
	// Each part is length-prefixed, so no choice of ids (the contract
	// allows any character, NUL included) makes two triples hash alike.
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, part := range []string{rule, customer, cause} {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
		h.Write([]byte(part))
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

var codeEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

// CouponCode derives a coupon code from a trigger id: unique per trigger and
// stable across re-sends.
func CouponCode(prefix, triggerID string) string {
	sum := sha256.Sum256([]byte("coupon\x00" + triggerID))
	return prefix + "-" + codeEnc.EncodeToString(sum[:8])
}

// Marshal encodes the trigger as its JSON contract. The contract's arrays
// are never null: a nil CauseEventIDs (a trigger no input event caused) or a
// nil cart is written as [].
//
// The bytes are exactly encoding/json's for the same value (a test holds
// them to that); they are written by hand (json.go) because a trigger is
// marshalled on the hot path, and a trigger with a value encoding/json
// rejects or writes its own way (a time outside years 0–9999, a NaN) is
// left to encoding/json.
func (t *Trigger) Marshal() ([]byte, error) {
	if t.plain() {
		return t.appendJSON(make([]byte, 0, 512)), nil
	}
	return t.marshalStd()
}

// marshalStd is Marshal by encoding/json.
func (t *Trigger) marshalStd() ([]byte, error) {
	v := *t
	if v.CauseEventIDs == nil {
		v.CauseEventIDs = []string{}
	}
	if v.Payload.Cart != nil && v.Payload.Cart.Items == nil {
		cart := *v.Payload.Cart
		cart.Items = []CartItem{}
		v.Payload.Cart = &cart
	}
	return json.Marshal(&v)
}
