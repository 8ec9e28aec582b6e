//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/publish"
)

// tagTTL is the life of the interested tag in the tag test: the engine runs
// on the real clock, so the expiry is real time the test spends.
const tagTTL = 4 * time.Second

// tagPipelinesDir writes the repository's dynamic_tags pipeline, as shipped
// except that the interested rule's tag lives ttl instead of 72h, into a
// temporary directory of its own.
func tagPipelinesDir(t *testing.T, ttl time.Duration) string {
	t.Helper()
	src, err := os.ReadFile("../pipelines/dynamic_tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	const rule, from = "- name: interested\n", "ttl: 72h"
	start := strings.Index(s, rule)
	if start < 0 {
		t.Fatalf("../pipelines/dynamic_tags.yaml no longer has a rule %q; update the e2e suite", strings.TrimSpace(rule))
	}
	start += len(rule)
	end := len(s)
	if next := strings.Index(s[start:], "- name: "); next >= 0 {
		end = start + next
	}
	i := strings.Index(s[start:end], from)
	if i < 0 {
		t.Fatalf("the interested rule of ../pipelines/dynamic_tags.yaml no longer says %q; update the e2e suite", from)
	}
	i += start
	out := s[:i] + "ttl: " + ttl.String() + s[i+len(from):]
	dir := filepath.Join(t.TempDir(), "pipelines")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dynamic_tags.yaml"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunDynamicTags runs `spur run` on Apache Kafka with the shipped
// dynamic_tags pipeline (the interested tag living tagTTL) and checks
// spur.triggers exactly: a customer who views one category three times gets
// one tag_added interested:<category>, and when the tag runs out one
// tag_removed at its expiry, fired by the durable timer while nothing is
// published; a customer with two views gets nothing; a customer who rates
// us 1 gets tag_added unhappy.
func TestRunDynamicTags(t *testing.T) {
	bs := brokers(t)
	adm := admin(t)
	const parts = 3
	topics := newTopics(t, adm, parts)
	group := uniqueName(t, "e2e")
	spur := startRun(t, runConfig{Name: "spur", Group: group, Topics: topics, Partitions: parts,
		Pipelines: tagPipelinesDir(t, tagTTL)})
	spur.waitReady()
	triggers := tailTopic(t, bs, topics.Triggers)

	const (
		viewer  = "c-tags-viewer"  // three views of shoes (and one of hats)
		browser = "c-tags-browser" // two views of shoes
		unhappy = "c-tags-unhappy" // rates us 1
	)
	now := time.Now()
	at := func(ev event.Event, d time.Duration) event.Event { ev.TS = ms(now.Add(d)); return ev }
	view := func(c, sku, category string, d time.Duration) event.Event {
		return at(publish.ProductView(c, "", sku, category, 59.9, 2*time.Second), d)
	}
	qualifying := view(viewer, "sku-3", "shoes", 0)
	feedback := at(publish.Feedback(unhappy, 1, "the parcel came late and the box was crushed"), 0)
	evs := []event.Event{
		view(viewer, "sku-1", "shoes", -300*time.Millisecond),
		view(viewer, "sku-9", "hats", -250*time.Millisecond),
		view(viewer, "sku-2", "shoes", -200*time.Millisecond),
		qualifying,
		view(browser, "sku-1", "shoes", -200*time.Millisecond),
		view(browser, "sku-2", "shoes", 0),
		feedback,
	}
	interestedExpiry := qualifying.TS.Add(tagTTL)

	pub, err := publish.New(bs, publish.WithClickstreamTopic(topics.Clicks), publish.WithOrdersTopic(topics.Orders))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := pub.Publish(ctx, evs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
	inputEnds := map[string]map[int32]int64{
		topics.Clicks: endOffsets(t, adm, topics.Clicks), topics.Orders: endOffsets(t, adm, topics.Orders)}

	// kinds lists the (customer, kind, tag) of the triggers on the topic.
	kinds := func() []string {
		var out []string
		for _, tr := range quickTriggers(triggers.records()) {
			out = append(out, tr.CustomerID+" "+tr.Kind+" "+tr.Payload.Tag)
		}
		slices.Sort(out)
		return out
	}
	added := []string{unhappy + " tag_added unhappy", viewer + " tag_added interested:shoes"}
	waitUntil(t, "every input event applied and both tags added", func() (string, error) {
		if err := spur.checkAlive(); err != nil {
			return "", err
		}
		if n := spur.consumed(); n != float64(len(evs)) {
			return fmt.Sprintf("%v of %d events applied", n, len(evs)), nil
		}
		if got := kinds(); !slices.Equal(got, added) {
			return fmt.Sprintf("triggers %q", got), nil
		}
		return "", nil
	})
	applied := time.Now()
	if !applied.Before(interestedExpiry) {
		// The expiry would then fire as the events are applied, and the
		// test could not tell the timer from the input.
		t.Fatalf("the events were applied %s after publishing, past the tag's expiry at %s: the TTL of %s is too short for this machine",
			applied.Sub(now).Round(time.Millisecond), interestedExpiry.Format(time.RFC3339Nano), tagTTL)
	}
	t.Logf("events applied and tags added %s after publishing; the interested tag expires %s later",
		applied.Sub(now).Round(time.Millisecond), interestedExpiry.Sub(applied).Round(time.Millisecond))

	// Nothing more is published: the tag_removed can come only from the
	// timer. Done when it is on the topic and four timers are left: the
	// unhappy tag's (72h), and each customer's at_risk wait (720h after
	// their last event).
	removed := append(slices.Clone(added), viewer+" tag_removed interested:shoes")
	slices.Sort(removed)
	waitUntil(t, "the interested tag to expire with no further input", func() (string, error) {
		if err := spur.checkAlive(); err != nil {
			return "", err
		}
		if n := spur.consumed(); n > float64(len(evs)) {
			return "", fmt.Errorf("spur applied %v input records, and only %d were published", n, len(evs))
		}
		if got := kinds(); !slices.Equal(got, removed) {
			return fmt.Sprintf("triggers %q", got), nil
		}
		m, err := spur.scrape()
		if err != nil {
			return err.Error(), nil
		}
		if timers, outbox := m.sum("spur_timers_pending"), m.sum("spur_outbox_pending"); timers != 4 || outbox != 0 {
			return fmt.Sprintf("%v timers pending (want 4), %v outbox records unacknowledged", timers, outbox), nil
		}
		return "", nil
	})
	for topic, ends := range inputEnds {
		if got := endOffsets(t, adm, topic); !maps.Equal(got, ends) {
			t.Errorf("%s: end offsets %v, were %v after publishing: input was published during the expiry", topic, got, ends)
		}
	}

	// Every record, validated against schemas/trigger.json, exactly.
	trs := decodeTriggers(t, triggers.readToEnd(t, adm, topics.Triggers))
	per := map[string][]trigger{}
	for _, tr := range trs {
		per[tr.CustomerID] = append(per[tr.CustomerID], tr)
		if tr.Variant != emit.VariantTreatment || tr.SchemaVersion != emit.SchemaVersion {
			t.Errorf("%s: trigger %s: variant %q schema %d", tr.CustomerID, tr.TriggerID, tr.Variant, tr.SchemaVersion)
		}
		if tr.EmittedAt.Before(tr.QualifiedAt) {
			t.Errorf("%s: trigger %s emitted at %s, before it qualified at %s", tr.CustomerID, tr.TriggerID,
				tr.EmittedAt.Format(time.RFC3339Nano), tr.QualifiedAt.Format(time.RFC3339Nano))
		}
		if tr.Payload.Coupon != nil || tr.Payload.Cart != nil || tr.Payload.Notify != nil {
			t.Errorf("%s: trigger %s carries a coupon, cart or notify: %+v", tr.CustomerID, tr.TriggerID, tr.Payload)
		}
	}
	if ids := byID(trs); len(ids) != len(trs) {
		t.Errorf("%d trigger records, %d distinct trigger ids: a trigger was sent twice", len(trs), len(ids))
	}

	if got := per[viewer]; len(got) != 2 {
		t.Errorf("%s: %d triggers, want tag_added and tag_removed: %+v", viewer, len(got), got)
	} else {
		add, rm := got[0], got[1] // one key, one partition: in emission order
		checkTag(t, add, emit.KindTagAdded, "dynamic_tags.interested", "interested:shoes", qualifying.TS, []string{qualifying.EventID})
		if add.Payload.TagExpiresAt == nil || !add.Payload.TagExpiresAt.Equal(interestedExpiry) {
			t.Errorf("%s: tag_expires_at %v, want %s (the third view + %s)", viewer, add.Payload.TagExpiresAt, interestedExpiry.Format(time.RFC3339Nano), tagTTL)
		}
		checkTag(t, rm, emit.KindTagRemoved, "dynamic_tags.interested", "interested:shoes", interestedExpiry, []string{})
		if !rm.EmittedAt.After(applied) {
			t.Errorf("%s: tag_removed emitted at %s, before all input was applied (%s): not the timer's", viewer,
				rm.EmittedAt.Format(time.RFC3339Nano), applied.Format(time.RFC3339Nano))
		}
		t.Logf("%s: tag_removed emitted %s after the expiry", viewer, rm.EmittedAt.Sub(rm.QualifiedAt).Round(time.Millisecond))
	}
	if got := per[browser]; len(got) != 0 {
		t.Errorf("%s: %d triggers after two views, want none: %+v", browser, len(got), got)
	}
	if got := per[unhappy]; len(got) != 1 {
		t.Errorf("%s: %d triggers, want one tag_added unhappy: %+v", unhappy, len(got), got)
	} else {
		tr := got[0]
		checkTag(t, tr, emit.KindTagAdded, "dynamic_tags.unhappy", "unhappy", feedback.TS, []string{feedback.EventID})
		if want := feedback.TS.Add(72 * time.Hour); tr.Payload.TagExpiresAt == nil || !tr.Payload.TagExpiresAt.Equal(want) {
			t.Errorf("%s: tag_expires_at %v, want %s (the feedback + 72h)", unhappy, tr.Payload.TagExpiresAt, want.Format(time.RFC3339Nano))
		}
	}
	for c, got := range per {
		if c != viewer && c != browser && c != unhappy {
			t.Errorf("%s: unexpected triggers: %+v", c, got)
		}
	}

	m := spur.mustScrape()
	for _, w := range []struct {
		rule, op string
		n        float64
	}{
		{"dynamic_tags.interested", "added", 1}, {"dynamic_tags.interested", "expired", 1},
		{"dynamic_tags.interested", "refreshed", 0}, {"dynamic_tags.unhappy", "added", 1},
	} {
		if got := m.sum("spur_tags_total", "rule", w.rule, "op", w.op); got != w.n {
			t.Errorf("spur_tags_total{rule=%q,op=%q} = %v, want %v", w.rule, w.op, got, w.n)
		}
	}
	if got := m.sum("spur_rule_errors_total"); got != 0 {
		t.Errorf("spur_rule_errors_total = %v, want 0", got)
	}
	stopAndCheckCommits(t, adm, spur, group, topics)
}

// checkTag checks a tag trigger's kind, rule, tag, qualifying moment and
// cause.
func checkTag(t *testing.T, tr trigger, kind, rule, tag string, qualified time.Time, causes []string) {
	t.Helper()
	if tr.Kind != kind || tr.Rule != rule || tr.Payload.Tag != tag {
		t.Errorf("%s: trigger %s: kind %q rule %q tag %q, want %q %q %q", tr.CustomerID, tr.TriggerID, tr.Kind, tr.Rule, tr.Payload.Tag, kind, rule, tag)
	}
	if !tr.QualifiedAt.Equal(qualified) {
		t.Errorf("%s: %s %s qualified_at %s, want %s", tr.CustomerID, tr.Kind, tr.Payload.Tag,
			tr.QualifiedAt.Format(time.RFC3339Nano), qualified.Format(time.RFC3339Nano))
	}
	if !slices.Equal(tr.CauseEventIDs, causes) {
		t.Errorf("%s: %s %s cause_event_ids %v, want %v", tr.CustomerID, tr.Kind, tr.Payload.Tag, tr.CauseEventIDs, causes)
	}
}
