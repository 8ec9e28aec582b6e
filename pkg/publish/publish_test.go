package publish

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spur-crm/spur/pkg/event"
)

// unreachable is a broker address nothing listens on: port 1 on loopback
// refuses at once. Tests that must not send use it, so a test that sent by
// mistake fails instead of hanging.
var unreachable = []string{"127.0.0.1:1"}

func newTestPublisher(t *testing.T, opts ...Option) *Publisher {
	t.Helper()
	p, err := New(unreachable, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func decoder(t *testing.T) *event.Decoder {
	t.Helper()
	d, err := event.NewDecoder()
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	return d
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewEventID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewEventID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("NewEventID() = %q, want a UUID v4", id)
		}
		if seen[id] {
			t.Fatalf("NewEventID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestConstructors(t *testing.T) {
	before := time.Now().Add(-time.Millisecond) // TS is truncated to ms
	items := []event.Item{
		{SKU: "sku-1", Category: "shoes", Price: 59.9, Quantity: 2},
		{SKU: "sku-2", Price: 0.1, Quantity: 3},
	}
	tests := []struct {
		name  string
		ev    event.Event
		want  event.Event // compared without EventID and TS
		topic string
	}{
		{"page_view", PageView("", "a-7"),
			event.Event{Type: event.PageView, AnonymousID: "a-7"}, DefaultClickstreamTopic},
		{"product_view", ProductView("c-1", "a-7", "sku-1", "shoes", 59.9, 1500*time.Millisecond),
			event.Event{Type: event.ProductView, CustomerID: "c-1", AnonymousID: "a-7", SKU: "sku-1", Category: "shoes", Price: 59.9, DwellMS: 1500}, DefaultClickstreamTopic},
		{"search", Search("c-1", "", "red shoes"),
			event.Event{Type: event.Search, CustomerID: "c-1", Query: "red shoes"}, DefaultClickstreamTopic},
		{"cart_add", CartAdd("c-1", "sku-1", "shoes", 59.9, 2),
			event.Event{Type: event.CartAdd, CustomerID: "c-1", SKU: "sku-1", Category: "shoes", Price: 59.9, Quantity: 2}, DefaultClickstreamTopic},
		{"cart_add free item", CartAdd("c-1", "sku-gift", "", 0, 1),
			event.Event{Type: event.CartAdd, CustomerID: "c-1", SKU: "sku-gift", Quantity: 1}, DefaultClickstreamTopic},
		{"cart_remove", CartRemove("c-1", "sku-1", 1),
			event.Event{Type: event.CartRemove, CustomerID: "c-1", SKU: "sku-1", Quantity: 1}, DefaultClickstreamTopic},
		{"checkout_start", CheckoutStart("c-1"),
			event.Event{Type: event.CheckoutStart, CustomerID: "c-1"}, DefaultClickstreamTopic},
		// 59.9*2 + 0.1*3 = 120.10000000000001 in float64: rounded to cents.
		{"order", Order("c-1", "o-1", items),
			event.Event{Type: event.Order, CustomerID: "c-1", OrderID: "o-1", Items: items, Total: 120.1}, DefaultOrdersTopic},
		{"identify", Identify("c-1", "a-7"),
			event.Event{Type: event.Identify, CustomerID: "c-1", AnonymousID: "a-7"}, DefaultClickstreamTopic},
		{"feedback", Feedback("c-1", 2, "late delivery"),
			event.Event{Type: event.Feedback, CustomerID: "c-1", Rating: 2, Text: "late delivery"}, DefaultClickstreamTopic},
		{"feedback rating only", Feedback("c-1", 5, ""),
			event.Event{Type: event.Feedback, CustomerID: "c-1", Rating: 5}, DefaultClickstreamTopic},
		{"forget", Forget("c-1"),
			event.Event{Type: event.Forget, CustomerID: "c-1"}, DefaultClickstreamTopic},
	}
	dec := decoder(t)
	p := newTestPublisher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			if !uuidV4.MatchString(ev.EventID) {
				t.Errorf("EventID = %q, want a UUID v4", ev.EventID)
			}
			if ev.TS.Location() != time.UTC || !ev.TS.Equal(ev.TS.Truncate(time.Millisecond)) {
				t.Errorf("TS = %v, want UTC with millisecond precision", ev.TS)
			}
			if ev.TS.Before(before) || ev.TS.After(time.Now()) {
				t.Errorf("TS = %v, want the time of the call", ev.TS)
			}
			got := ev
			got.EventID, got.TS = "", time.Time{}
			if !equalJSON(t, got, tt.want) {
				t.Errorf("event = %+v\nwant    %+v", got, tt.want)
			}
			if topic := p.Topic(ev.Type); topic != tt.topic {
				t.Errorf("Topic(%s) = %q, want %q", ev.Type, topic, tt.topic)
			}
			// What a constructor builds from valid arguments is valid.
			value, err := Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var back event.Event
			if err := dec.Decode(value, &back); err != nil {
				t.Fatalf("Decode(%s): %v", value, err)
			}
			if back.EventID != ev.EventID || !back.TS.Equal(ev.TS) || back.Subject() != ev.Subject() {
				t.Errorf("decoded %+v, want %+v", back, ev)
			}
		})
	}
}

func TestOrderCopiesItems(t *testing.T) {
	items := []event.Item{{SKU: "sku-1", Price: 10, Quantity: 1}}
	ev := Order("c-1", "o-1", items)
	items[0].SKU = "changed"
	if ev.Items[0].SKU != "sku-1" {
		t.Fatalf("Order kept a reference to the caller's items")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// TestMarshalKeepsRequiredZeroFields checks the fields that event.Event would
// omit when zero but that a type's schema requires.
func TestMarshalKeepsRequiredZeroFields(t *testing.T) {
	dec := decoder(t)
	for _, tt := range []struct {
		ev   event.Event
		want string
	}{
		{Feedback("c-1", 4, ""), `"text":""`},
		{CartAdd("c-1", "sku-gift", "", 0, 1), `"price":0`},
		{Order("c-1", "o-1", []event.Item{{SKU: "sku-gift", Price: 0, Quantity: 1}}), `"total":0`},
	} {
		value, err := Marshal(tt.ev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(value), tt.want) {
			t.Errorf("Marshal(%s) = %s, want it to contain %s", tt.ev.Type, value, tt.want)
		}
		if n := strings.Count(string(value), strings.SplitN(tt.want, ":", 2)[0]+":"); n != 1 {
			t.Errorf("Marshal(%s) = %s: field appears %d times", tt.ev.Type, value, n)
		}
		var back event.Event
		if err := dec.Decode(value, &back); err != nil {
			t.Errorf("Decode(%s): %v", value, err)
		}
	}
}

func TestPublishRejectsInvalidEvents(t *testing.T) {
	now := time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(now)
	p := newTestPublisher(t, WithClock(clock), WithOrdersTopic("orders-x"))

	noID := PageView("", "")
	badQty := CartAdd("c-1", "sku-1", "shoes", 10, 0)
	noItems := Order("c-1", "o-1", nil)
	badRating := Feedback("c-1", 6, "great")
	future := CheckoutStart("c-1")
	future.TS = now.Add(time.Hour)
	forgetAnon := Forget("")
	forgetAnon.AnonymousID = "a-1"
	unknown := PageView("c-1", "")
	unknown.Type = "page_leave"

	tests := []struct {
		name   string
		ev     event.Event
		reason event.Reason
		topic  string
	}{
		{"no customer or anonymous id", noID, event.ReasonMissingID, DefaultClickstreamTopic},
		{"quantity 0", badQty, event.ReasonInvalidField, DefaultClickstreamTopic},
		{"order without items", noItems, event.ReasonInvalidField, "orders-x"},
		{"rating 6", badRating, event.ReasonInvalidField, DefaultClickstreamTopic},
		{"ts an hour ahead of the clock", future, event.ReasonClockSkew, DefaultClickstreamTopic},
		{"forget without customer id", forgetAnon, event.ReasonMissingID, DefaultClickstreamTopic},
		{"unknown type", unknown, event.ReasonUnknownType, DefaultClickstreamTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid event in the same call: nothing is sent when any
			// event is invalid, and only the invalid one is reported.
			ok := PageView("c-1", "")
			ok.TS = now
			err := p.Publish(context.Background(), ok, tt.ev)
			if err == nil {
				t.Fatal("Publish accepted an invalid event")
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Publish error %v (%T), want a *publish.Error", err, err)
			}
			if !perr.Invalid || perr.EventID != tt.ev.EventID || perr.Topic != tt.topic || perr.Type != tt.ev.Type {
				t.Errorf("error = %+v, want invalid event %q for topic %q", perr, tt.ev.EventID, tt.topic)
			}
			if got := event.ReasonOf(err); got != tt.reason {
				t.Errorf("ReasonOf(%v) = %q, want %q", err, got, tt.reason)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.ev.EventID) || !strings.Contains(msg, tt.topic) {
				t.Errorf("error %q does not name the event id and topic", msg)
			}
			if strings.Contains(msg, ok.EventID) {
				t.Errorf("error %q names the valid event too", msg)
			}
		})
	}

	t.Run("every invalid event is reported", func(t *testing.T) {
		err := p.Publish(context.Background(), noID, badQty, badRating)
		for _, ev := range []event.Event{noID, badQty, badRating} {
			if err == nil || !strings.Contains(err.Error(), ev.EventID) {
				t.Errorf("error %v does not report %s %q", err, ev.Type, ev.EventID)
			}
		}
	})
}

func TestMessages(t *testing.T) {
	now := time.Date(2026, 11, 23, 5, 0, 0, 123456789, time.UTC)
	p := newTestPublisher(t, WithClock(clockwork.NewFakeClockAt(now)),
		WithClickstreamTopic("clicks"), WithOrdersTopic("orders"))

	bare := event.Event{Type: event.PageView, AnonymousID: "a-7"} // no id, no ts
	order := Order("c-1", "o-1", []event.Item{{SKU: "s", Price: 5, Quantity: 2}})
	order.TS = now.Add(-time.Minute)
	order.AnonymousID = "a-7"
	evs := []event.Event{bare, order}

	msgs, metas, err := p.messages(evs)
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].EventID != "" || !evs[0].TS.IsZero() {
		t.Errorf("messages modified the caller's event: %+v", evs[0])
	}
	dec := decoder(t)
	for i, want := range []struct{ topic, key string }{{"clicks", "a-7"}, {"orders", "c-1"}} {
		m := msgs[i]
		if m.Topic != want.topic || string(m.Key) != want.key {
			t.Errorf("message %d: topic %q key %q, want %q %q", i, m.Topic, m.Key, want.topic, want.key)
		}
		if !m.Time.Equal(now) {
			t.Errorf("message %d: record time %v, want the clock's %v", i, m.Time, now)
		}
		var ev event.Event
		if err := dec.Decode(m.Value, &ev); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if ev.EventID != metas[i].id || ev.Type != metas[i].typ {
			t.Errorf("message %d: meta %+v, value %+v", i, metas[i], ev)
		}
	}
	var first event.Event
	if err := dec.Decode(msgs[0].Value, &first); err != nil {
		t.Fatal(err)
	}
	if !uuidV4.MatchString(first.EventID) {
		t.Errorf("empty event_id filled with %q, want a UUID v4", first.EventID)
	}
	if want := now.Truncate(time.Millisecond); !first.TS.Equal(want) {
		t.Errorf("zero ts filled with %v, want the clock's %v", first.TS, want)
	}
	if want := `"ts":"2026-11-23T05:00:00.123Z"`; !strings.Contains(string(msgs[0].Value), want) {
		t.Errorf("value %s, want %s", msgs[0].Value, want)
	}
}

func TestPublishReportsWriteFailure(t *testing.T) {
	p := newTestPublisher(t, WithMaxAttempts(2))
	ev := CartAdd("c-1", "sku-1", "shoes", 10, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := p.Publish(ctx, ev)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("Publish to an unreachable broker: %v (%T), want a *publish.Error", err, err)
	}
	if perr.Invalid || perr.EventID != ev.EventID || perr.Topic != DefaultClickstreamTopic || perr.Err == nil {
		t.Errorf("error = %+v", perr)
	}
	if msg := err.Error(); !strings.Contains(msg, ev.EventID) || !strings.Contains(msg, DefaultClickstreamTopic) {
		t.Errorf("error %q does not name the event id and topic", msg)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tt := range []struct {
		name    string
		brokers []string
		opts    []Option
	}{
		{"no brokers", nil, nil},
		{"blank broker", []string{" "}, nil},
		{"broker without port", []string{"localhost"}, nil},
		{"empty topic", unreachable, []Option{WithOrdersTopic("")}},
		{"nil clock", unreachable, []Option{WithClock(nil)}},
		{"zero batch timeout", unreachable, []Option{WithBatchTimeout(0)}},
		{"zero attempts", unreachable, []Option{WithMaxAttempts(0)}},
	} {
		if p, err := New(tt.brokers, tt.opts...); err == nil {
			_ = p.Close()
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
}

func TestClose(t *testing.T) {
	p, err := New(unreachable)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Publish(context.Background(), PageView("c-1", "")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := p.Publish(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("empty Publish after Close: %v, want ErrClosed", err)
	}
}

func TestPublishNothing(t *testing.T) {
	if err := newTestPublisher(t).Publish(context.Background()); err != nil {
		t.Fatalf("Publish(): %v", err)
	}
}
