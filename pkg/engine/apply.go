package engine

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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
	case ResultEmitted, ResultHoldout, ResultConverted, ResultHoldoutConverted, ResultDelayed:
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
		if (o.Result == ResultEmitted || o.Result == ResultConverted || o.Result == ResultDelayed) && at-o.At < window && at >= o.At {
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
	moved := map[string]bool{} // topics whose next offset moved
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
		rec, fetchedAt := w.input[topic][0].rec, w.input[topic][0].at
		// Drop the reference so an applied record is not kept alive by
		// the buffer's backing array.
		w.input[topic][0] = fetched{}
		w.input[topic] = w.input[topic][1:]
		if len(w.input[topic]) == 0 {
			w.input[topic] = nil
		}
		w.buffered--
		if n, ok := w.unapplied[topic]; ok {
			n.take(rec)
		}
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
			moved[topic] = true
			continue
		}
		if err := sc.applyRecord(topic, rec.Key, rec.Value, &ev, rec); err != nil {
			return err
		}
		w.e.m.RecordE2E.Observe(max(now.Sub(rec.Timestamp), 0).Seconds())
		if !fetchedAt.IsZero() {
			w.e.m.InputWait.Observe(max(now.Sub(fetchedAt), 0).Seconds())
		}
		w.next[topic] = rec.Offset + 1
		moved[topic] = true
	}
	// The offsets go with the step's changes, once per topic.
	for topic := range moved {
		if err := sc.st.SetOffset(topic, w.next[topic]); err != nil {
			return err
		}
	}
	return nil
}

// countConsumed counts an event of topic and type (or "invalid").
func (w *Worker) countConsumed(topic, typ string) {
	k := [2]string{topic, typ}
	c, ok := w.consumed[k]
	if !ok {
		c = w.e.m.EventsConsumed.WithLabelValues(topic, typ)
		w.consumed[k] = c
	}
	c.Inc()
}

func (sc *stepCtx) applyRecord(topic string, key, value []byte, ev *event.Event, r *kgo.Record) error {
	w := sc.w
	if err := w.e.dec.Decode(value, ev); err != nil {
		reason := event.ReasonOf(err)
		w.e.m.DeadLetters.WithLabelValues(string(reason)).Inc()
		w.countConsumed(topic, "invalid")
		w.log.Debug("dead letter", zap.String("topic", topic), zap.Int64("offset", r.Offset), zap.String("reason", string(reason)), zap.Error(err))
		detail := err.Error()
		return sc.addOut(emit.DeadLetter(w.e.cfg.DLQTopic, r, string(reason), detail))
	}
	w.countConsumed(topic, string(ev.Type))
	if w.partitions > 0 && len(key) > 0 && w.e.expectedPartition(key, w.partitions) != r.Partition {
		w.e.m.KeyMismatch.WithLabelValues(topic).Inc()
	}
	if ts := ev.TS; ts.After(w.watermark[topic]) {
		w.watermark[topic] = ts
	}
	return sc.applyEvent(ev)
}

// Timer kinds besides a rule's absence timer: a tag's expiry and a trigger
// held through quiet hours. Rule names cannot start with '~'.
const (
	tagTimer   = "~tag"
	quietTimer = "~quiet"
)

// Results recorded in the trigger history besides those above.
const (
	// ResultCondition: a timer ran out but the rule's when did not hold.
	ResultCondition = "condition_false"
	// ResultConvertedFirst: the customer ordered after qualifying and
	// before a held trigger was released.
	ResultConvertedFirst = "converted_before_send"
	// ResultSuppressedTag: the customer holds a tag the rule suppresses.
	ResultSuppressedTag = "suppressed_tag"
	// ResultDelayed: held until the end of the customer's quiet hours.
	ResultDelayed = "delayed_quiet_hours"
)

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

	// Event time decides, not processing time: a wait, a tag's TTL or a
	// quiet-hours hold that had already run out before this event happened
	// ran out then, whatever this event is. Fire them first, in deadline
	// order, as the clock would have done had we been on time.
	if err := sc.fireOverdue(subject, c, tsMS); err != nil {
		return err
	}

	if ev.Type == event.Forget {
		for _, pend := range c.Pending {
			if err := sc.cancel(pend, subject); err != nil {
				return err
			}
		}
		for _, t := range c.Tags {
			if err := sc.cancelTag(t, subject); err != nil {
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
		// The customer's local offset, when the storefront stamps local
		// time (an offset of 0 tells nothing: Z is the common default).
		if off := ev.UTCOffsetMinutes; off != 0 {
			c.TZOffset, c.TZKnown = int32(off), true
		}
	}
	c.Events++
	c.AddRecent(state.Recent{EventID: ev.EventID, Type: string(ev.Type), TS: tsMS, SKU: ev.SKU})
	// A cart change stamped before the customer's last order, or in its
	// millisecond, reached us after it (the two topics are appended
	// independently): the order already settled that cart, so the change
	// neither edits the cart nor arms a wait. A tie goes to the order
	// whichever topic is read first: an order applied after a cart change
	// of its millisecond settles the cart too (below).
	superseded := (ev.Type == event.CartAdd || ev.Type == event.CartRemove) && c.Orders > 0 && tsMS <= c.LastOrderAt
	if superseded {
		sc.w.e.m.Superseded.Inc()
	}
	var sentimentScore float64
	switch {
	case superseded:
	case ev.Type == event.ProductView:
		c.ViewCategory(ev.Category)
		c.ViewBrand(ev.Brand)
		c.ViewProduct(ev.SKU)
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
		for _, it := range ev.Items {
			c.Bought(it.SKU)
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
		sentimentScore = sc.w.e.sentiment.Score(ev.Text).Score
		if tsMS >= c.LastFeedbackAt {
			c.LastRating = int32(ev.Rating)
			c.LastFeedbackAt = tsMS
			c.LastSentiment = sentimentScore
		}
	}
	ee := eventEnv(ev, sentimentScore)
	sc.count(subject, c, ev, &ee, tsMS)

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
	for _, p := range sc.ps.pipes {
		if !p.Trigger.Absence() {
			continue
		}
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
			if err := sc.schedule(next, subject, nil); err != nil {
				return err
			}
			c.SetPending(next)
		}
	}
	for _, p := range sc.ps.pipes {
		if !p.On(ev.Type) {
			continue
		}
		env := sc.env(p, subject, c, ev, &ee, tsMS)
		if p.When != nil {
			ok, err := p.When.Bool(env)
			if err != nil {
				sc.ruleError(p, subject, err)
				continue
			}
			if !ok {
				continue
			}
		}
		if err := sc.qualify(p, subject, c, tsMS, ev.EventID, env); err != nil {
			return err
		}
	}
	return nil
}

// fireOverdue fires the subject's timers whose deadline is before at (ms).
func (sc *stepCtx) fireOverdue(subject string, c *state.Customer, at int64) error {
	type due struct {
		deadline int64
		pend     *state.Pending
		tag      string
	}
	var list []due
	for i := range c.Pending {
		if c.Pending[i].Deadline < at {
			list = append(list, due{deadline: c.Pending[i].Deadline, pend: &state.Pending{}})
			*list[len(list)-1].pend = c.Pending[i]
		}
	}
	for _, t := range c.Tags {
		if t.ExpiresAt < at {
			list = append(list, due{deadline: t.ExpiresAt, tag: t.Name})
		}
	}
	if len(list) == 0 {
		return nil
	}
	slices.SortStableFunc(list, func(a, b due) int { return cmp.Compare(a.deadline, b.deadline) })
	for _, d := range list {
		if d.pend == nil {
			if i := c.TagIndex(d.tag); i >= 0 && c.Tags[i].ExpiresAt == d.deadline {
				if err := sc.expireTag(subject, c, i); err != nil {
					return err
				}
			}
			continue
		}
		pend, armed := c.PendingFor(d.pend.Rule)
		if !armed || pend.Deadline != d.deadline {
			continue
		}
		if err := sc.firePending(subject, c, pend); err != nil {
			return err
		}
	}
	return nil
}

// firePending fires an armed timer of the customer's (a rule's wait, or a
// held trigger).
func (sc *stepCtx) firePending(subject string, c *state.Customer, pend state.Pending) error {
	if rule, ok := strings.CutPrefix(pend.Rule, quietTimer+"\x00"); ok {
		return sc.release(subject, c, pend, rule)
	}
	p := sc.ps.byName[pend.Rule]
	if p == nil || !p.Trigger.Absence() {
		// The pipeline was removed or is no longer a timer: disarm quietly.
		if err := sc.cancel(pend, subject); err != nil {
			return err
		}
		c.ClearPending(pend.Rule)
		return nil
	}
	return sc.fire(p, subject, c, pend)
}

// count adds the event to the windowed counters that count its type.
func (sc *stepCtx) count(subject string, c *state.Customer, ev *event.Event, ee *pipeline.EventEnv, tsMS int64) {
	if len(c.Counters) > 0 {
		c.KeepCounters(func(name string) bool { return sc.ps.known[name] })
	}
	var env *pipeline.Env
	for _, ct := range sc.ps.counters {
		if !slices.Contains(ct.On, ev.Type) {
			continue
		}
		if env == nil {
			env = &pipeline.Env{Event: *ee, Now: ev.TS}
		}
		key := ""
		if ct.By != nil {
			k, err := ct.By.String(env)
			if err != nil {
				sc.counterError(ct, subject, err)
				continue
			}
			if k == "" {
				continue // nothing to count by, such as a view without a category
			}
			key = k
		}
		value := 1.0
		if ct.Sum != nil {
			v, err := ct.Sum.Float(env)
			if err != nil {
				sc.counterError(ct, subject, err)
				continue
			}
			value = v
		}
		c.AddToCounter(ct.Name, key, tsMS, value, ct.Window.Milliseconds())
	}
}

func (sc *stepCtx) counterError(ct *pipeline.Counter, subject string, err error) {
	sc.w.e.m.RuleErrors.WithLabelValues(ct.Name).Inc()
	sc.w.log.Debug("counter not updated", zap.String("counter", ct.Name), zap.String("customer", subject), zap.Error(err))
}

func (sc *stepCtx) ruleError(p *pipeline.Pipeline, subject string, err error) {
	sc.w.e.m.RuleErrors.WithLabelValues(p.Name).Inc()
	sc.w.log.Debug("rule not evaluated", zap.String("rule", p.Name), zap.String("customer", subject), zap.Error(err))
}

func eventEnv(ev *event.Event, sentiment float64) pipeline.EventEnv {
	return pipeline.EventEnv{
		Type: string(ev.Type), EventID: ev.EventID, TS: ev.TS, Channel: ev.Channel,
		SKU: ev.SKU, Category: ev.Category, Brand: ev.Brand, Price: ev.Price, Quantity: ev.Quantity,
		DwellMS: int(ev.DwellMS), Query: ev.Query, OrderID: ev.OrderID, Total: ev.Total, Items: len(ev.Items),
		Rating: ev.Rating, Text: ev.Text, Kind: ev.Kind, Sentiment: sentiment,
	}
}

// env builds what p's expressions read at the moment at (ms): the event
// (nil for a timer), and the profile and counters when p reads them.
func (sc *stepCtx) env(p *pipeline.Pipeline, subject string, c *state.Customer, ev *event.Event, ee *pipeline.EventEnv, at int64) *pipeline.Env {
	env := &pipeline.Env{Now: time.UnixMilli(at).UTC()}
	if ee != nil {
		env.Event = *ee
	}
	if p.NeedsProfile {
		// Rules evaluated on the same event read the same profile: build
		// it once (a tag change in between invalidates it).
		pc := &sc.prof
		if !pc.ok || pc.c != c || pc.at != at {
			*pc = profileCache{c: c, at: at, ok: true, p: profile(subject, c, at)}
		}
		if missing := p.ProfileParts &^ pc.parts; missing != 0 {
			addParts(&pc.p, c, at, missing)
			pc.parts |= missing
		}
		env.Profile = pc.p
	}
	if p.NeedsCounters {
		env.Counters = make(map[string]float64, len(p.Counters))
		for _, ct := range p.Counters {
			key, all := "", true
			if ct.By != nil && ev != nil {
				if k, err := ct.By.String(env); err == nil && k != "" {
					key, all = k, false
				}
			}
			env.Counters[ct.Local] = c.CounterSum(ct.Name, key, all, ct.Window.Milliseconds(), at)
		}
	}
	return env
}

// profile builds the profile's cheap fields; addParts the costly ones a
// rule reads.
func profile(subject string, c *state.Customer, at int64) pipeline.ProfileEnv {
	const day = float64(24 * time.Hour / time.Millisecond)
	pe := pipeline.ProfileEnv{
		CustomerID: subject, Frequency: int(c.Orders), Orders: int(c.Orders),
		Monetary: c.Spend, Spend: c.Spend, RecencyDays: -1,
		FirstSeen: time.UnixMilli(c.FirstSeen).UTC(), LastActivity: time.UnixMilli(c.LastActivity).UTC(),
		SilentDays: float64(at-c.LastActivity) / day, Events: int(c.Events),
		CartValue: c.CartValue(), CartItems: len(c.Cart), PriceSensitivity: c.PriceSensitivity(),
		Sentiment: c.LastSentiment, LastRating: int(c.LastRating),
	}
	if c.TZKnown {
		pe.UTCOffsetMinutes = int(c.TZOffset)
	}
	if c.Orders > 0 {
		pe.RecencyDays = float64(at-c.LastOrderAt) / day
		pe.AvgOrderValue = c.Spend / float64(c.Orders)
		pe.LastOrderAt = time.UnixMilli(c.LastOrderAt).UTC()
	}
	for _, it := range c.Cart {
		pe.CartQuantity += int(it.Qty)
	}
	return pe
}

func addParts(pe *pipeline.ProfileEnv, c *state.Customer, at int64, parts pipeline.ProfileParts) {
	if parts&pipeline.PartTags != 0 {
		pe.Tags = c.ActiveTags(at)
	}
	if parts&pipeline.PartCartCategories != 0 {
		pe.CartCategories = []string{}
		for _, it := range c.Cart {
			if it.Category != "" && !slices.Contains(pe.CartCategories, it.Category) {
				pe.CartCategories = append(pe.CartCategories, it.Category)
			}
		}
	}
	if parts&pipeline.PartCategoryViews != 0 {
		pe.CategoryViews = make(map[string]float64, len(c.CategoryViews))
		for _, v := range c.CategoryViews {
			pe.CategoryViews[v.Name] = float64(v.Count)
		}
	}
	if parts&pipeline.PartBrandViews != 0 {
		pe.BrandViews = make(map[string]float64, len(c.BrandViews))
		for _, v := range c.BrandViews {
			pe.BrandViews[v.Name] = float64(v.Count)
		}
	}
}

// timerID names a rule's timer for a subject. Rule names cannot hold NUL.
func timerID(rule, subject string) string { return rule + "\x00" + subject }

func parseTimerID(id string) (rule, subject string, ok bool) {
	return strings.Cut(id, "\x00")
}

func (sc *stepCtx) schedule(pend state.Pending, subject string, payload []byte) error {
	if payload == nil {
		payload = []byte(pend.Cause)
	}
	sc.w.pending++
	sc.w.armed(time.UnixMilli(pend.Deadline))
	return timer.Schedule(sc.st.Batch(), sc.w.part, timer.Timer{
		Deadline: time.UnixMilli(pend.Deadline), ID: timerID(pend.Rule, subject), Payload: payload,
	})
}

func (sc *stepCtx) cancel(pend state.Pending, subject string) error {
	sc.w.pending--
	return timer.Cancel(sc.st.Batch(), sc.w.part, time.UnixMilli(pend.Deadline), timerID(pend.Rule, subject))
}

func tagPending(t state.Tag) state.Pending {
	return state.Pending{Rule: tagTimer + "\x00" + t.Name, Deadline: t.ExpiresAt}
}

func (sc *stepCtx) cancelTag(t state.Tag, subject string) error {
	return sc.cancel(tagPending(t), subject)
}

// fireDue fires the timers whose deadline has passed, up to the step bound.
func (sc *stepCtx) fireDue(now time.Time) error {
	w := sc.w
	if w.pending <= 0 {
		return nil
	}
	h := w.horizon(now)
	var from time.Time
	if w.soonestKnown {
		if w.soonest.After(h) {
			return nil // nothing due: no need to read the timer rows
		}
		from = w.soonest
	}
	due, next, err := timer.Scan(w.e.store.DB(), w.part, from, h, w.e.cfg.MaxTimersPerStep)
	if err != nil {
		return err
	}
	// The due timers are deleted below; what remains starts at next, or
	// at a timer armed in this step (in the batch, unseen by the scan).
	// Timers armed while these fire lower it again (armed).
	w.soonest, w.soonestKnown = next, true
	if !w.stepArmed.IsZero() && w.stepArmed.Before(next) {
		w.soonest = w.stepArmed
	}
	for _, t := range due {
		rule, subject, ok := parseTimerID(t.ID)
		tag := ""
		if ok && (rule == tagTimer || rule == quietTimer) {
			var name string
			name, subject, ok = strings.Cut(subject, "\x00")
			if rule == tagTimer {
				tag = name
			} else {
				rule = quietTimer + "\x00" + name
			}
		}
		if !ok {
			w.log.Error("dropping malformed timer row", zap.String("id", t.ID))
			if err := timer.Cancel(sc.st.Batch(), w.part, t.Deadline, t.ID); err != nil {
				return err
			}
			continue
		}
		if sc.st.Deleted(subject) {
			// Forgotten earlier in this step, which deleted its timer
			// rows in the batch; the scan reads the committed ones.
			// Loading the customer would bring back an empty record.
			continue
		}
		c, err := sc.st.Customer(subject)
		if err != nil {
			return err
		}
		if rule == tagTimer {
			if i := c.TagIndex(tag); i >= 0 && c.Tags[i].ExpiresAt == t.Deadline.UnixMilli() {
				if err := sc.expireTag(subject, c, i); err != nil {
					return err
				}
			}
			// Otherwise refreshed or removed earlier in this step; the row
			// is already deleted in the batch.
			continue
		}
		pend, armed := c.PendingFor(rule)
		if !armed || pend.Deadline != t.Deadline.UnixMilli() {
			// Cancelled or re-armed earlier in this step; the row is
			// already deleted in the batch.
			continue
		}
		if err := sc.firePending(subject, c, pend); err != nil {
			return err
		}
	}
	return nil
}

// fire runs a rule whose wait ran out at its deadline, and disarms it.
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
	if p.Trigger.CancelWhenCartEmpty && len(c.Cart) == 0 {
		c.AddOutcome(state.Outcome{Rule: p.Name, TriggerID: sc.triggerID(p, subject, pend.Cause, qualified), At: pend.Deadline, Result: ResultCartEmpty})
		return nil
	}
	env := sc.env(p, subject, c, nil, nil, pend.Deadline)
	if p.When != nil {
		ok, err := p.When.Bool(env)
		if err != nil {
			sc.ruleError(p, subject, err)
			return nil
		}
		if !ok {
			c.AddOutcome(state.Outcome{Rule: p.Name, TriggerID: sc.triggerID(p, subject, pend.Cause, qualified), At: pend.Deadline, Result: ResultCondition})
			return nil
		}
	}
	return sc.qualify(p, subject, c, pend.Deadline, pend.Cause, env)
}

func (sc *stepCtx) triggerID(p *pipeline.Pipeline, subject, cause string, qualified time.Time) string {
	return emit.TriggerID(p.Name, subject, cause+"@"+qualified.Format(time.RFC3339Nano))
}

// qualify runs p's action for a customer who qualified at the moment at
// (ms), caused by the event cause: a tag changes at once; a coupon or
// notification passes the guardrails first.
func (sc *stepCtx) qualify(p *pipeline.Pipeline, subject string, c *state.Customer, at int64, cause string, env *pipeline.Env) error {
	if p.Action.Kind == pipeline.ActionTag {
		return sc.tag(p, subject, c, at, cause, env)
	}
	w := sc.w
	now := w.e.clock.Now()
	qualified := time.UnixMilli(at).UTC()
	id := sc.triggerID(p, subject, cause, qualified)
	outcome := state.Outcome{Rule: p.Name, TriggerID: id, At: at}
	suppress := func(reason string) {
		outcome.Result = reason
		w.e.m.Suppressed.WithLabelValues(p.Name, reason).Inc()
	}
	switch {
	case now.Sub(qualified) > w.e.cfg.Staleness:
		outcome.Result = ResultStale
		w.e.m.TriggersStale.WithLabelValues(p.Name).Inc()
		w.log.Debug("stale trigger not emitted", zap.String("rule", p.Name), zap.String("customer", subject), zap.Time("qualified_at", qualified))
	case unhappy(p, c, at):
		suppress(ResultUnhappy)
	case sc.suppressedByTag(p, c, at):
		suppress(ResultSuppressedTag)
	case sc.coolingDown(p, c, at):
		suppress(ResultCooldown)
	case sc.capped(c, at):
		suppress(ResultCapped)
	default:
		tr, err := sc.build(p, subject, c, id, cause, qualified, now, env)
		if err != nil {
			sc.ruleError(p, subject, err)
			return nil
		}
		outcome.Result = ResultEmitted
		if p.InHoldout(subject) {
			// Recorded for measuring lift; the customer gets nothing.
			outcome.Result = ResultHoldout
			tr.Variant = emit.VariantHoldout
			tr.Payload.Coupon = nil
		}
		if qh := p.Guardrails.QuietHours; qh != nil {
			local := qualified.In(localZone(c, qh))
			if release := qh.Release(local); release.After(local) {
				// Held, not dropped: the record waits in the customer's
				// state and a timer sends it when the quiet hours end.
				v, err := json.Marshal(tr)
				if err != nil {
					return err
				}
				pend := state.Pending{Rule: quietTimer + "\x00" + p.Name, Deadline: release.UnixMilli(), Cause: string(v)}
				if old, ok := c.PendingFor(pend.Rule); ok {
					// One held trigger per rule: the newer replaces it.
					if err := sc.cancel(old, subject); err != nil {
						return err
					}
				}
				if err := sc.schedule(pend, subject, []byte{}); err != nil {
					return err
				}
				c.SetPending(pend)
				w.e.m.Delayed.WithLabelValues(p.Name).Inc()
				outcome.Result = ResultDelayed
				c.AddOutcome(outcome)
				return nil
			}
		}
		if err := sc.send(p.Name, subject, tr); err != nil {
			return err
		}
	}
	c.AddOutcome(outcome)
	return nil
}

// localZone is the customer's time zone for quiet hours: the offset of
// their latest event when it carried one, else the pipeline's zone.
func localZone(c *state.Customer, qh *pipeline.QuietHours) *time.Location {
	if c.TZKnown {
		return time.FixedZone("", int(c.TZOffset)*60)
	}
	return qh.Zone
}

// release sends a trigger held through quiet hours, unless the customer
// converted (ordered) since it qualified.
func (sc *stepCtx) release(subject string, c *state.Customer, pend state.Pending, rule string) error {
	w := sc.w
	if err := sc.cancel(pend, subject); err != nil {
		return err
	}
	c.ClearPending(pend.Rule)
	w.e.m.TimersFired.Inc()
	var tr emit.Trigger
	if err := json.Unmarshal([]byte(pend.Cause), &tr); err != nil {
		w.log.Error("dropping unreadable held trigger", zap.String("rule", rule), zap.String("customer", subject), zap.Error(err))
		return nil
	}
	result := ResultEmitted
	if tr.Variant == emit.VariantHoldout {
		result = ResultHoldout
	}
	now := w.e.clock.Now()
	releasedAt := time.UnixMilli(pend.Deadline)
	switch {
	case c.LastOrderAt > tr.QualifiedAt.UnixMilli():
		result = ResultConvertedFirst
		w.e.m.Suppressed.WithLabelValues(rule, result).Inc()
	case now.Sub(releasedAt) > w.e.cfg.Staleness:
		result = ResultStale
		w.e.m.TriggersStale.WithLabelValues(rule).Inc()
	default:
		if cp := tr.Payload.Coupon; cp != nil {
			cp.ExpiresAt = now.Add(cp.ExpiresAt.Sub(tr.EmittedAt)).UTC().Truncate(time.Second)
		}
		tr.EmittedAt = now.UTC()
		if err := sc.send(rule, subject, &tr); err != nil {
			return err
		}
	}
	for i := range c.Outcomes {
		if c.Outcomes[i].TriggerID == tr.TriggerID && c.Outcomes[i].Result == ResultDelayed {
			c.Outcomes[i].Result = result
		}
	}
	return nil
}

// suppressedByTag reports whether the customer holds a tag p suppresses.
func (sc *stepCtx) suppressedByTag(p *pipeline.Pipeline, c *state.Customer, at int64) bool {
	for _, name := range p.Guardrails.SuppressTags {
		if i := c.TagIndex(name); i >= 0 && c.Tags[i].ExpiresAt > at && c.Tags[i].AddedAt <= at {
			return true
		}
	}
	return false
}

// build makes the coupon or notify record of a customer who qualified.
func (sc *stepCtx) build(p *pipeline.Pipeline, subject string, c *state.Customer, id, cause string, qualified, now time.Time, env *pipeline.Env) (*emit.Trigger, error) {
	tr := &emit.Trigger{
		SchemaVersion: emit.SchemaVersion,
		TriggerID:     id,
		Rule:          p.Name,
		CustomerID:    subject,
		Variant:       emit.VariantTreatment,
		QualifiedAt:   qualified,
		EmittedAt:     now.UTC(),
		CauseEventIDs: []string{cause},
	}
	if cause == "" {
		tr.CauseEventIDs = []string{}
	}
	if len(c.Cart) > 0 {
		items := make([]emit.CartItem, len(c.Cart))
		for i, it := range c.Cart {
			items[i] = emit.CartItem{SKU: it.SKU, Category: it.Category, Price: it.Price, Quantity: it.Qty}
		}
		tr.Payload.Cart = &emit.Cart{Items: items, Value: c.CartValue()}
	}
	switch p.Action.Kind {
	case pipeline.ActionCoupon:
		cp := p.Action.Coupon
		percent, free := cp.PercentOff, cp.FreeShipping
		if cp.PercentOffExpr != nil {
			v, err := cp.PercentOffExpr.Float(env)
			if err != nil {
				return nil, err
			}
			percent = int(math.Round(v))
		}
		if cp.FreeShippingExpr != nil {
			v, err := cp.FreeShippingExpr.Bool(env)
			if err != nil {
				return nil, err
			}
			free = v
		}
		percent = min(max(percent, 0), 100)
		if percent == 0 && !free {
			return nil, fmt.Errorf("coupon with neither percent_off nor free_shipping")
		}
		tr.Kind = emit.KindCoupon
		tr.Payload.Coupon = &emit.Coupon{Code: emit.CouponCode(cp.CodePrefix, id), PercentOff: percent, FreeShipping: free, ExpiresAt: now.Add(cp.ValidFor).UTC().Truncate(time.Second)}
	case pipeline.ActionNotify:
		msg, err := p.Action.Notify.Message.Render(env)
		if err != nil {
			return nil, err
		}
		if msg == "" {
			return nil, fmt.Errorf("notify message is empty")
		}
		n := &emit.Notify{Message: msg}
		for _, f := range p.Action.Notify.Data {
			v, err := f.Value.Render(env)
			if err != nil {
				return nil, err
			}
			if n.Data == nil {
				n.Data = map[string]string{}
			}
			n.Data[f.Key] = v
		}
		tr.Kind = emit.KindNotify
		tr.Payload.Notify = n
	default:
		return nil, fmt.Errorf("action %q cannot be sent", p.Action.Kind)
	}
	return tr, nil
}

// send writes a trigger to the outbox.
func (sc *stepCtx) send(rule, subject string, tr *emit.Trigger) error {
	v, err := tr.Marshal()
	if err != nil {
		return err
	}
	sc.w.e.m.Emitted.WithLabelValues(rule, tr.Variant).Inc()
	return sc.addOut(&emit.Out{
		Kind: emit.OutTrigger, Topic: sc.w.e.cfg.TriggersTopic, Key: []byte(subject), Value: v,
		Rule: rule, TriggerKind: tr.Kind, QualifiedAt: tr.QualifiedAt,
	})
}

// profileCache is the profile last built in a step, for one customer at
// one moment.
type profileCache struct {
	c     *state.Customer
	at    int64
	ok    bool
	p     pipeline.ProfileEnv
	parts pipeline.ProfileParts // the costly fields built so far
}

// tag adds (or refreshes) or removes a dynamic tag.
func (sc *stepCtx) tag(p *pipeline.Pipeline, subject string, c *state.Customer, at int64, cause string, env *pipeline.Env) error {
	w := sc.w
	sc.prof.ok = false // the tags change
	name, err := p.Action.Tag.Name.Render(env)
	if err == nil && (name == "" || len(name) > state.MaxTagLength || strings.IndexByte(name, 0) >= 0 || !utf8.ValidString(name)) {
		err = fmt.Errorf("tag name %q is empty, longer than %d bytes or not text", name, state.MaxTagLength)
	}
	if err != nil {
		sc.ruleError(p, subject, err)
		return nil
	}
	i := c.TagIndex(name)
	if i >= 0 && c.Tags[i].ExpiresAt <= at {
		// Expired at or before this moment: its removal comes first.
		if err := sc.expireTag(subject, c, i); err != nil {
			return err
		}
		i = -1
	}
	qualified := time.UnixMilli(at).UTC()
	switch p.Action.Tag.Op {
	case pipeline.TagAdd:
		expires := at + p.Action.Tag.TTL.Milliseconds()
		if i >= 0 {
			// Active: refreshing moves the expiry on, without a trigger.
			t := &c.Tags[i]
			if expires > t.ExpiresAt {
				if err := sc.cancelTag(*t, subject); err != nil {
					return err
				}
				t.ExpiresAt, t.Rule = expires, p.Name
				if err := sc.schedule(tagPending(*t), subject, []byte{}); err != nil {
					return err
				}
				w.e.m.Tags.WithLabelValues(p.Name, "refreshed").Inc()
			}
			return nil
		}
		if len(c.Tags) >= state.MaxTags {
			w.e.m.Tags.WithLabelValues(p.Name, "dropped").Inc()
			return nil
		}
		t := state.Tag{Name: name, Rule: p.Name, AddedAt: at, ExpiresAt: expires}
		if err := sc.schedule(tagPending(t), subject, []byte{}); err != nil {
			return err
		}
		c.Tags = append(c.Tags, t)
		w.e.m.Tags.WithLabelValues(p.Name, "added").Inc()
		exp := time.UnixMilli(expires).UTC()
		return sc.send(p.Name, subject, &emit.Trigger{
			SchemaVersion: emit.SchemaVersion,
			TriggerID:     emit.TriggerID(p.Name, subject, "tag_added:"+name+"@"+cause+"@"+qualified.Format(time.RFC3339Nano)),
			Kind:          emit.KindTagAdded, Rule: p.Name, CustomerID: subject, Variant: emit.VariantTreatment,
			QualifiedAt: qualified, EmittedAt: w.e.clock.Now().UTC(), CauseEventIDs: causes(cause),
			Payload: emit.Payload{Tag: name, TagExpiresAt: &exp},
		})
	default: // remove
		if i < 0 {
			return nil
		}
		t := c.Tags[i]
		if err := sc.cancelTag(t, subject); err != nil {
			return err
		}
		c.Tags = slices.Delete(c.Tags, i, i+1)
		w.e.m.Tags.WithLabelValues(p.Name, "removed").Inc()
		return sc.send(p.Name, subject, tagRemoved(p.Name, subject, name,
			"tag_removed:"+name+"@"+cause+"@"+qualified.Format(time.RFC3339Nano), cause, qualified, w.e.clock.Now().UTC()))
	}
}

// tagRemoved builds the tag_removed trigger of tag name under rule, for a
// remove action (cause is the event that ran it) and for an expiry (no
// cause) alike. qualifiedBy names what qualified the removal, which the
// trigger id is derived from; the two cases name it differently.
func tagRemoved(rule, subject, name, qualifiedBy, cause string, qualified, emitted time.Time) *emit.Trigger {
	return &emit.Trigger{
		SchemaVersion: emit.SchemaVersion,
		TriggerID:     emit.TriggerID(rule, subject, qualifiedBy),
		Kind:          emit.KindTagRemoved, Rule: rule, CustomerID: subject, Variant: emit.VariantTreatment,
		QualifiedAt: qualified, EmittedAt: emitted, CauseEventIDs: causes(cause),
		Payload: emit.Payload{Tag: name},
	}
}

func causes(cause string) []string {
	if cause == "" {
		return []string{}
	}
	return []string{cause}
}

// expireTag removes a tag whose TTL ran out and emits tag_removed, stamped
// with the expiry, under the rule that last set it.
func (sc *stepCtx) expireTag(subject string, c *state.Customer, i int) error {
	w := sc.w
	t := c.Tags[i]
	if err := sc.cancelTag(t, subject); err != nil {
		return err
	}
	c.Tags = slices.Delete(c.Tags, i, i+1)
	now := w.e.clock.Now()
	qualified := time.UnixMilli(t.ExpiresAt).UTC()
	w.e.m.TimersFired.Inc()
	if late := now.Sub(qualified); late > 0 {
		w.e.m.TimerLateness.Observe(late.Seconds())
	}
	w.e.m.Tags.WithLabelValues(t.Rule, "expired").Inc()
	return sc.send(t.Rule, subject, tagRemoved(t.Rule, subject, t.Name,
		"tag_expired:"+t.Name+"@"+qualified.Format(time.RFC3339Nano), "", qualified, now.UTC()))
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

// attribute emits a conversion for the latest trigger of each pipeline with
// an attribution window that this order follows within the window, and
// marks that trigger converted in the customer's history (once only).
func (sc *stepCtx) attribute(ev *event.Event, subject string, c *state.Customer, tsMS int64) error {
	w := sc.w
	for _, p := range sc.ps.pipes {
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
