package engine

import (
	"time"

	"github.com/spur-crm/spur/pkg/state"
)

// CustomerView is a customer's committed state in readable form: what
// `spur inspect customer` prints to explain why a customer did or did not
// get a trigger.
type CustomerView struct {
	ID            string           `json:"id"`
	Partition     int32            `json:"partition"`
	Found         bool             `json:"found"`
	FirstSeen     *time.Time       `json:"first_seen,omitempty"`
	LastActivity  *time.Time       `json:"last_activity,omitempty"`
	Events        uint64           `json:"events"`
	Cart          []state.CartItem `json:"cart"`
	CartValue     float64          `json:"cart_value"`
	Orders        uint32           `json:"orders"`
	Spend         float64          `json:"spend"`
	LastOrderAt   *time.Time       `json:"last_order_at,omitempty"`
	LastRating    int32            `json:"last_rating,omitempty"`
	LastSentiment float64          `json:"last_sentiment"`
	CategoryViews []state.Count    `json:"category_views"`
	Aliases       []string         `json:"anonymous_ids"`
	Recent        []RecentView     `json:"recent"`
	Pending       []PendingView    `json:"pending_timers"`
	Outcomes      []OutcomeView    `json:"trigger_history"`
}

// RecentView is one event of the trajectory.
type RecentView struct {
	EventID string    `json:"event_id"`
	Type    string    `json:"type"`
	TS      time.Time `json:"ts"`
	SKU     string    `json:"sku,omitempty"`
}

// PendingView is an armed timer.
type PendingView struct {
	Rule     string    `json:"rule"`
	Deadline time.Time `json:"deadline"`
	Cause    string    `json:"cause_event_id"`
}

// OutcomeView is one entry of the trigger history.
type OutcomeView struct {
	Rule        string    `json:"rule"`
	TriggerID   string    `json:"trigger_id"`
	QualifiedAt time.Time `json:"qualified_at"`
	Result      string    `json:"result"`
}

// Inspect reads a customer's committed state. It is safe to call while the
// workers run: it sees the last committed step.
func (e *Engine) Inspect(id string) (*CustomerView, error) {
	part := int32(0)
	if e.cfg.Partitions > 0 {
		part = e.expectedPartition([]byte(id), e.cfg.Partitions)
	}
	var c state.Customer
	found, err := e.store.Customer(part, id, &c)
	if err != nil {
		return nil, err
	}
	v := &CustomerView{
		ID: id, Partition: part, Found: found, Events: c.Events, Cart: c.Cart, CartValue: c.CartValue(),
		Orders: c.Orders, Spend: c.Spend, LastRating: c.LastRating, LastSentiment: c.LastSentiment, CategoryViews: c.CategoryViews, Aliases: c.Aliases,
		FirstSeen: msTime(c.FirstSeen), LastActivity: msTime(c.LastActivity), LastOrderAt: msTime(c.LastOrderAt),
		Recent: []RecentView{}, Pending: []PendingView{}, Outcomes: []OutcomeView{},
	}
	for _, r := range c.Recent {
		v.Recent = append(v.Recent, RecentView{EventID: r.EventID, Type: r.Type, TS: time.UnixMilli(r.TS).UTC(), SKU: r.SKU})
	}
	for _, p := range c.Pending {
		v.Pending = append(v.Pending, PendingView{Rule: p.Rule, Deadline: time.UnixMilli(p.Deadline).UTC(), Cause: p.Cause})
	}
	for _, o := range c.Outcomes {
		v.Outcomes = append(v.Outcomes, OutcomeView{Rule: o.Rule, TriggerID: o.TriggerID, QualifiedAt: time.UnixMilli(o.At).UTC(), Result: o.Result})
	}
	return v, nil
}

func msTime(ms int64) *time.Time {
	if ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}
