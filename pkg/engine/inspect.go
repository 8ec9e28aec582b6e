package engine

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/spur-crm/spur/pkg/emit"
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
	Tags          []TagView        `json:"tags"`
	BrandViews    []state.Count    `json:"brand_views"`
	// PriceSensitivity is the share of recently viewed products not bought.
	PriceSensitivity float64       `json:"price_sensitivity"`
	Counters         []CounterView `json:"counters"`
	UTCOffsetMinutes *int          `json:"utc_offset_minutes,omitempty"`
}

// TagView is an active tag.
type TagView struct {
	Name      string    `json:"name"`
	Rule      string    `json:"rule"`
	AddedAt   time.Time `json:"added_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CounterView is one key of a windowed counter: its entries' sum and span
// (the pipeline's window decides what an expression sees).
type CounterView struct {
	Name    string    `json:"name"`
	Key     string    `json:"key,omitempty"`
	Sum     float64   `json:"sum"`
	Entries int       `json:"entries"`
	Oldest  time.Time `json:"oldest"`
	Newest  time.Time `json:"newest"`
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
	// Held is the trigger_id of a trigger held through quiet hours, which
	// the timer releases.
	Held string `json:"held_trigger_id,omitempty"`
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
	for _, r := range c.RecentEvents() {
		v.Recent = append(v.Recent, RecentView{EventID: r.EventID, Type: r.Type, TS: time.UnixMilli(r.TS).UTC(), SKU: r.SKU})
	}
	for _, p := range c.Pending {
		pv := PendingView{Rule: p.Rule, Deadline: time.UnixMilli(p.Deadline).UTC(), Cause: p.Cause}
		if rule, ok := strings.CutPrefix(p.Rule, quietTimer+"\x00"); ok {
			// A trigger held through quiet hours: its cause is the record.
			var tr emit.Trigger
			_ = json.Unmarshal([]byte(p.Cause), &tr)
			pv.Rule, pv.Cause, pv.Held = rule, strings.Join(tr.CauseEventIDs, ","), tr.TriggerID
		}
		v.Pending = append(v.Pending, pv)
	}
	v.Tags = []TagView{}
	for _, t := range c.Tags {
		v.Tags = append(v.Tags, TagView{Name: t.Name, Rule: t.Rule, AddedAt: time.UnixMilli(t.AddedAt).UTC(), ExpiresAt: time.UnixMilli(t.ExpiresAt).UTC()})
	}
	v.BrandViews, v.PriceSensitivity = c.BrandViews, c.PriceSensitivity()
	v.Counters = []CounterView{}
	for _, ct := range c.Counters {
		cv := CounterView{Name: ct.Name, Key: ct.Key, Entries: len(ct.Entries)}
		for _, e := range ct.Entries {
			cv.Sum += e.Value
		}
		if n := len(ct.Entries); n > 0 {
			cv.Oldest, cv.Newest = time.UnixMilli(ct.Entries[0].TS).UTC(), time.UnixMilli(ct.Entries[n-1].TS).UTC()
		}
		v.Counters = append(v.Counters, cv)
	}
	if c.TZKnown {
		off := int(c.TZOffset)
		v.UTCOffsetMinutes = &off
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
