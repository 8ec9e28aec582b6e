package engine

import (
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
	"github.com/spur-crm/spur/pkg/timer"
)

// Outcome results recorded in a customer's trigger history.
const (
	ResultEmitted = "emitted"
	ResultHoldout = "holdout"
	// A trigger whose customer then ordered within the attribution window.
	ResultConverted        = "converted"
	ResultHoldoutConverted = "holdout_converted"
	ResultStale            = "stale"
	ResultCartEmpty        = "cart_empty"
	ResultCooldown         = "cooldown"
	ResultCapped           = "capped"
	ResultUnhappy          = "unhappy"
)

// UnhappySentiment is the feedback score at or below which a customer
// counts as unhappy.
const UnhappySentiment = -0.3

// unhappy reports whether the customer's latest feedback, within the
// pipeline's suppress_unhappy window before at (ms), was negative.
func unhappy(p *pipeline.Pipeline, c *state.Customer, at int64) bool {
	win := p.Guardrails.SuppressUnhappy.Milliseconds()
	if win <= 0 || c.LastFeedbackAt == 0 || at-c.LastFeedbackAt > win || c.LastFeedbackAt > at {
		return false
	}
	return (c.LastRating >= 1 && c.LastRating <= 2) || c.LastSentiment <= UnhappySentiment
}

// triggered reports whether an outcome is a trigger the customer was given
// (or, in a holdout, recorded as given).
func triggered(result string) bool {
	switch result {
	case ResultEmitted, ResultHoldout, ResultConverted, ResultHoldoutConverted:
		return true
	}
	return false
}

// coolingDown reports whether the customer got this pipeline's trigger
// (treatment or holdout) within its cooldown before the moment at (ms).
func (sc *stepCtx) coolingDown(p *pipeline.Pipeline, c *state.Customer, at int64) bool {
	cd := p.Guardrails.Cooldown.Milliseconds()
	if cd <= 0 {
		return false
	}
	for _, o := range c.Outcomes {
		if o.Rule == p.Name && triggered(o.Result) && at-o.At < cd && at >= o.At {
			return true
		}
	}
	return false
}

// capped reports whether the customer already got the global cap of
// triggers, across pipelines, within the cap window before at (ms).
func (sc *stepCtx) capped(c *state.Customer, at int64) bool {
	cfg := sc.w.e.cfg
	if cfg.MaxTriggersPerCustomer <= 0 {
		return false
	}
	window := cfg.CapWindow.Milliseconds()
	n := 0
	for _, o := range c.Outcomes {
		if (o.Result == ResultEmitted || o.Result == ResultConverted) && at-o.At < window && at >= o.At {
			n++
		}
	}
	return n >= cfg.MaxTriggersPerCustomer
}

// applyBuffered applies buffered records across the task's topics in
// record-timestamp order, as Kafka Streams does: a customer's order on
// shop.orders must meet the cart_add it followed on shop.clickstream in the
// order they happened, whichever topic was fetched first. A record is held
// back while another topic of the task is known to have unread records
// (its high watermark is past what we applied) and has nothing buffered,
// for at most MaxTaskIdle.
func (sc *stepCtx) applyBuffered(now time.Time) error {
	w := sc.w
	var ev event.Event
	touched := map[string]bool{}
	defer func() {
		for topic := range touched {
			w.reportLag(topic)
		}
	}()
	for {
		topic := w.nextTopic()
		if topic == "" {
			break
		}
		if w.mustWait(topic, now) {
			break
		}
		rec := w.input[topic][0].rec
		// Drop the reference so an applied record is not kept alive by
		// the buffer's backing array.
		w.input[topic][0] = fetched{}
		w.input[topic] = w.input[topic][1:]
		if len(w.input[topic]) == 0 {
			w.input[topic] = nil
		}
		w.buffered--
		touched[topic] = true
		if next, ok := w.next[topic]; ok && rec.Offset < next {
			// Already applied before a restart or rebalance: the consumer
			// may resume from an older group commit than our own offset.
			w.e.m.SkippedReplayed.Inc()
			continue
		}
		if rec.Attrs.IsControl() {
			// A transaction marker: nothing to apply, but it occupies an
			// offset, and the topic is caught up only past it.
			w.next[topic] = rec.Offset + 1
			if err := sc.st.SetOffset(topic, w.next[topic]); err != nil {
				return err
			}
			continue
		}
		if err := sc.applyRecord(topic, rec.Key, rec.Value, &ev, rec); err != nil {
			return err
		}
		w.next[topic] = rec.Offset + 1
		if err := sc.st.SetOffset(topic, w.next[topic]); err != nil {
			return err
		}
	}
	return nil
}

func (sc *stepCtx) applyRecord(topic string, key, value []byte, ev *event.Event, r *kgo.Record) error {
	w := sc.w
	if err := w.e.dec.Decode(value, ev); err != nil {
		reason := event.ReasonOf(err)
		w.e.m.DeadLetters.WithLabelValues(string(reason)).Inc()
		w.e.m.EventsConsumed.WithLabelValues(topic, "invalid").Inc()
		w.log.Debug("dead letter", zap.String("topic", topic), zap.Int64("offset", r.Offset), zap.String("reason", string(reason)), zap.Error(err))
		detail := err.Error()
		return sc.addOut(emit.DeadLetter(w.e.cfg.DLQTopic, r, string(reason), detail))
	}
	w.e.m.EventsConsumed.WithLabelValues(topic, string(ev.Type)).Inc()
	if w.partitions > 0 && len(key) > 0 && w.e.expectedPartition(key, w.partitions) != r.Partition {
		w.e.m.KeyMismatch.WithLabelValues(topic).Inc()
	}
	if ts := ev.TS; ts.After(w.watermark[topic]) {
		w.watermark[topic] = ts
	}
	return sc.applyEvent(ev)
}

// applyEvent folds one valid event into its subject's state and runs the
// pipelines on it.
func (sc *stepCtx) applyEvent(ev *event.Event) error {
	subject := ev.Subject()
	c, err := sc.st.Customer(subject)
	if err != nil {
		return err
	}
	if ev.EventID != "" && c.SeenEvent(ev.EventID) {
		sc.w.e.m.Duplicates.Inc()
		return nil
	}
	tsMS := ev.TS.UnixMilli()

	// Event time decides, not processing time: a wait that had already run
	// out before this event happened qualified the customer then, whatever
	// this event is. Fire it first, as the clock would have done had we
	// been on time.
	for _, p := range sc.w.e.pipes {
		if pend, ok := c.PendingFor(p.Name); ok && pend.Deadline < tsMS {
			if err := sc.fire(p, subject, c, pend); err != nil {
				return err
			}
		}
	}

	if ev.Type == event.Forget {
		for _, pend := range c.Pending {
			if err := sc.cancel(pend, subject); err != nil {
				return err
			}
		}
		sc.st.DeleteCustomer(subject)
		return nil
	}

	if c.FirstSeen == 0 || tsMS < c.FirstSeen {
		c.FirstSeen = tsMS
	}
	if tsMS > c.LastActivity {
		c.LastActivity = tsMS
	}
	c.Events++
	c.AddRecent(state.Recent{EventID: ev.EventID, Type: string(ev.Type), TS: tsMS, SKU: ev.SKU})
	// A cart change stamped before the customer's last order reached us
	// after it (the two topics are appended independently): the order
	// already settled that cart, so the change neither edits the cart nor
	// arms a wait.
	superseded := (ev.Type == event.CartAdd || ev.Type == event.CartRemove) && tsMS < c.LastOrderAt
	if superseded {
		sc.w.e.m.Superseded.Inc()
	}
	switch {
	case superseded:
	case ev.Type == event.ProductView:
		c.ViewCategory(ev.Category)
	case ev.Type == event.CartAdd:
		qty := ev.Quantity
		if qty <= 0 {
			qty = 1
		}
		c.AddToCart(state.CartItem{SKU: ev.SKU, Category: ev.Category, Price: ev.Price, Qty: int32(qty)})
		c.CartUpdatedAt = tsMS
	case ev.Type == event.CartRemove:
		c.RemoveFromCart(ev.SKU, int32(ev.Quantity))
		c.CartUpdatedAt = tsMS
	case ev.Type == event.Order:
		c.Orders++
		c.Spend += ev.Total
		if tsMS > c.LastOrderAt {
			c.LastOrderAt = tsMS
		}
		if tsMS >= c.CartUpdatedAt {
			c.Cart = nil
			c.CartUpdatedAt = tsMS
		} else {
			// The cart changed after this order was placed (its record
			// arrived late): only the ordered lines leave the cart.
			for _, it := range ev.Items {
				c.RemoveFromCart(it.SKU, 0)
			}
		}
	case ev.Type == event.Identify:
		c.AddAlias(ev.AnonymousID)
	case ev.Type == event.Feedback:
		c.LastRating = int32(ev.Rating)
		c.LastFeedbackAt = tsMS
		c.LastSentiment = sc.w.e.sentiment.Score(ev.Text).Score
	}

	if ev.Type == event.Order && ev.CustomerID != "" {
		if err := sc.attribute(ev, subject, c, tsMS); err != nil {
			return err
		}
	}

	// Only known customers can be addressed by a trigger; an anonymous
	// visitor's state is kept, but arms nothing.
	if ev.CustomerID == "" || superseded {
		return nil
	}
	for _, p := range sc.w.e.pipes {
		pend, armed := c.PendingFor(p.Name)
		switch {
		case p.Cancels(ev.Type) && !(armed && tsMS < pend.Deadline-p.Trigger.Wait.Milliseconds()),
			p.Trigger.CancelWhenCartEmpty && len(c.Cart) == 0 && armed:
			// A cancelling event stamped before the wait began (it arrived
			// late) belongs to an earlier cart and leaves the wait armed.
			if armed {
				if err := sc.cancel(pend, subject); err != nil {
					return err
				}
				c.ClearPending(p.Name)
			}
		case p.Starts(ev.Type):
			if armed {
				if err := sc.cancel(pend, subject); err != nil {
					return err
				}
			}
			next := state.Pending{Rule: p.Name, Deadline: ev.TS.Add(p.Trigger.Wait).UnixMilli(), Cause: ev.EventID}
			if err := timer.Schedule(sc.st.Batch(), sc.w.part, timer.Timer{
				Deadline: time.UnixMilli(next.Deadline), ID: timerID(p.Name, subject), Payload: []byte(next.Cause),
			}); err != nil {
				return err
			}
			sc.w.pending++
			c.SetPending(next)
		}
	}
	return nil
}

// timerID names a rule's timer for a subject. Rule names cannot hold NUL.
func timerID(rule, subject string) string { return rule + "\x00" + subject }

func parseTimerID(id string) (rule, subject string, ok bool) {
	return strings.Cut(id, "\x00")
}

func (sc *stepCtx) cancel(pend state.Pending, subject string) error {
	sc.w.pending--
	return timer.Cancel(sc.st.Batch(), sc.w.part, time.UnixMilli(pend.Deadline), timerID(pend.Rule, subject))
}

// fireDue fires the timers whose deadline has passed, up to the step bound.
func (sc *stepCtx) fireDue(now time.Time) error {
	w := sc.w
	if w.pending <= 0 {
		return nil
	}
	due, err := timer.Due(w.e.store.DB(), w.part, w.horizon(now), w.e.cfg.MaxTimersPerStep)
	if err != nil {
		return err
	}
	for _, t := range due {
		rule, subject, ok := parseTimerID(t.ID)
		if !ok {
			w.log.Error("dropping malformed timer row", zap.String("id", t.ID))
			if err := timer.Cancel(sc.st.Batch(), w.part, t.Deadline, t.ID); err != nil {
				return err
			}
			continue
		}
		c, err := sc.st.Customer(subject)
		if err != nil {
			return err
		}
		pend, armed := c.PendingFor(rule)
		if !armed || pend.Deadline != t.Deadline.UnixMilli() {
			// Cancelled or re-armed earlier in this step; the row is
			// already deleted in the batch.
			continue
		}
		p := w.e.pipeline(rule)
		if p == nil {
			// The pipeline was removed: disarm quietly.
			if err := sc.cancel(pend, subject); err != nil {
				return err
			}
			c.ClearPending(rule)
			continue
		}
		if err := sc.fire(p, subject, c, pend); err != nil {
			return err
		}
	}
	return nil
}

// fire runs a pipeline's action for an armed timer that ran out at its
// deadline, and disarms it.
func (sc *stepCtx) fire(p *pipeline.Pipeline, subject string, c *state.Customer, pend state.Pending) error {
	w := sc.w
	if err := sc.cancel(pend, subject); err != nil {
		return err
	}
	c.ClearPending(p.Name)
	now := w.e.clock.Now()
	qualified := time.UnixMilli(pend.Deadline).UTC()
	w.e.m.TimersFired.Inc()
	if late := now.Sub(qualified); late > 0 {
		w.e.m.TimerLateness.Observe(late.Seconds())
	}
	id := emit.TriggerID(p.Name, subject, pend.Cause+"@"+qualified.Format(time.RFC3339Nano))
	outcome := state.Outcome{Rule: p.Name, TriggerID: id, At: pend.Deadline}
	switch {
	case len(c.Cart) == 0:
		outcome.Result = ResultCartEmpty
	case now.Sub(qualified) > w.e.cfg.Staleness:
		outcome.Result = ResultStale
		w.e.m.TriggersStale.WithLabelValues(p.Name).Inc()
		w.log.Debug("stale trigger not emitted", zap.String("rule", p.Name), zap.String("customer", subject), zap.Time("qualified_at", qualified))
	case unhappy(p, c, pend.Deadline):
		outcome.Result = ResultUnhappy
		w.e.m.Suppressed.WithLabelValues(p.Name, ResultUnhappy).Inc()
	case sc.coolingDown(p, c, pend.Deadline):
		outcome.Result = ResultCooldown
		w.e.m.Suppressed.WithLabelValues(p.Name, ResultCooldown).Inc()
	case sc.capped(c, pend.Deadline):
		outcome.Result = ResultCapped
		w.e.m.Suppressed.WithLabelValues(p.Name, ResultCapped).Inc()
	default:
		outcome.Result = ResultEmitted
		tr := sc.coupon(p, subject, c, id, pend, qualified, now)
		if p.InHoldout(subject) {
			// Recorded for measuring lift; the customer gets nothing.
			outcome.Result = ResultHoldout
			tr.Variant = emit.VariantHoldout
			tr.Payload.Coupon = nil
		}
		w.e.m.Emitted.WithLabelValues(p.Name, tr.Variant).Inc()
		v, err := tr.Marshal()
		if err != nil {
			return err
		}
		if err := sc.addOut(&emit.Out{
			Kind: emit.OutTrigger, Topic: w.e.cfg.TriggersTopic, Key: []byte(subject), Value: v,
			Rule: p.Name, TriggerKind: tr.Kind, QualifiedAt: qualified,
		}); err != nil {
			return err
		}
	}
	c.AddOutcome(outcome)
	return nil
}

func (sc *stepCtx) coupon(p *pipeline.Pipeline, subject string, c *state.Customer, id string, pend state.Pending, qualified, now time.Time) *emit.Trigger {
	items := make([]emit.CartItem, len(c.Cart))
	for i, it := range c.Cart {
		items[i] = emit.CartItem{SKU: it.SKU, Category: it.Category, Price: it.Price, Quantity: it.Qty}
	}
	cp := p.Action.Coupon
	return &emit.Trigger{
		SchemaVersion: emit.SchemaVersion,
		TriggerID:     id,
		Kind:          emit.KindCoupon,
		Rule:          p.Name,
		CustomerID:    subject,
		Variant:       emit.VariantTreatment,
		QualifiedAt:   qualified,
		EmittedAt:     now.UTC(),
		CauseEventIDs: []string{pend.Cause},
		Payload: emit.Payload{
			Coupon: &emit.Coupon{Code: emit.CouponCode(cp.CodePrefix, id), PercentOff: cp.PercentOff, ExpiresAt: now.Add(cp.ValidFor).UTC().Truncate(time.Second)},
			Cart:   &emit.Cart{Items: items, Value: c.CartValue()},
		},
	}
}

func (sc *stepCtx) addOut(o *emit.Out) error {
	sc.w.buf = o.AppendBinary(sc.w.buf[:0])
	seq, err := sc.st.AddOutbox(sc.w.buf)
	if err != nil {
		return err
	}
	sc.outs = append(sc.outs, outRow{seq: seq, out: o})
	return nil
}

func (e *Engine) pipeline(name string) *pipeline.Pipeline {
	for _, p := range e.pipes {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// attribute emits a conversion for the latest trigger of each pipeline with
// an attribution window that this order follows within the window, and
// marks that trigger converted in the customer's history (once only).
func (sc *stepCtx) attribute(ev *event.Event, subject string, c *state.Customer, tsMS int64) error {
	w := sc.w
	for _, p := range w.e.pipes {
		win := p.Guardrails.AttributionWindow.Milliseconds()
		if win <= 0 {
			continue
		}
		latest := -1
		for i, o := range c.Outcomes {
			if o.Rule == p.Name && (o.Result == ResultEmitted || o.Result == ResultHoldout) && tsMS > o.At && tsMS-o.At <= win {
				latest = i
			}
		}
		if latest < 0 {
			continue
		}
		o := &c.Outcomes[latest]
		variant := emit.VariantTreatment
		if o.Result == ResultHoldout {
			variant = emit.VariantHoldout
			o.Result = ResultHoldoutConverted
		} else {
			o.Result = ResultConverted
		}
		tr := &emit.Trigger{
			SchemaVersion: emit.SchemaVersion,
			TriggerID:     emit.TriggerID(p.Name, subject, "conversion@"+ev.EventID+"@"+o.TriggerID),
			Kind:          emit.KindConversion,
			Rule:          p.Name,
			CustomerID:    subject,
			Variant:       variant,
			QualifiedAt:   ev.TS.UTC(),
			EmittedAt:     w.e.clock.Now().UTC(),
			CauseEventIDs: []string{ev.EventID},
			Payload:       emit.Payload{AttributedTriggerID: o.TriggerID, Order: &emit.Order{OrderID: ev.OrderID, Total: ev.Total}},
		}
		v, err := tr.Marshal()
		if err != nil {
			return err
		}
		w.e.m.Conversions.WithLabelValues(p.Name, variant).Inc()
		if err := sc.addOut(&emit.Out{
			Kind: emit.OutTrigger, Topic: w.e.cfg.TriggersTopic, Key: []byte(subject), Value: v,
			Rule: p.Name, TriggerKind: tr.Kind, QualifiedAt: tr.QualifiedAt,
		}); err != nil {
			return err
		}
	}
	return nil
}
