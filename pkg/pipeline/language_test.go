package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/spur-crm/spur/pkg/event"
)

// rules is a file with counters and a list of rules, for the error cases
// below (each an edit of it).
const rules = `name: tags
counters:
  views: {on: [product_view], by: event.category, window: 24h}
  spend: {on: [order], sum: event.total, window: 2160h}
rules:
  - name: interested
    trigger: {on: [product_view]}
    when: counters.views >= 3
    action: {kind: tag, tag: {name: 'interested:${event.category}', ttl: 72h}}
  - name: silent
    trigger: {after: ["*"], wait: 720h}
    when: '"loyal" in profile.tags && counters.spend > 100'
    action: {kind: notify, notify: {message: winback, data: {spend: '${counters.spend}'}}}
    guardrails: {cooldown: 720h, quiet_hours: {start: "21:00", end: "08:00", timezone: Europe/Berlin}}
`

func TestParseRulesFile(t *testing.T) {
	ps, errs := ParseFile("tags.yaml", []byte(rules))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(ps) != 2 || ps[0].Name != "tags.interested" || ps[1].Name != "tags.silent" || ps[0].Group != "tags" {
		t.Fatalf("rules = %v", ps)
	}
	in, silent := ps[0], ps[1]
	if !in.On(event.ProductView) || in.Trigger.Absence() || in.Action.Tag.TTL != 72*time.Hour || in.Action.Tag.Op != TagAdd {
		t.Fatalf("interested = %+v", in)
	}
	if !silent.Trigger.Absence() || !silent.Starts(event.Search) || silent.Trigger.Wait != 720*time.Hour {
		t.Fatalf("silent trigger = %+v", silent.Trigger)
	}
	if !in.NeedsCounters || in.NeedsProfile || !silent.NeedsProfile || !silent.NeedsCounters {
		t.Fatalf("needs: interested %v/%v, silent %v/%v", in.NeedsProfile, in.NeedsCounters, silent.NeedsProfile, silent.NeedsCounters)
	}
	if silent.ProfileParts != PartTags || in.ProfileParts != 0 {
		t.Fatalf("profile parts: silent %b, interested %b; want tags only, none", silent.ProfileParts, in.ProfileParts)
	}
	if len(in.Counters) != 2 || in.Counters[0].Name != "tags.views" || in.Counters[0].Local != "views" {
		t.Fatalf("counters = %+v", in.Counters)
	}
	// The expressions run on an environment.
	env := &Env{Event: EventEnv{Category: "shoes"}, Counters: map[string]float64{"views": 3, "spend": 150}, Profile: ProfileEnv{Tags: []string{"loyal"}}}
	if ok, err := in.When.Bool(env); err != nil || !ok {
		t.Fatalf("interested when = %v, %v", ok, err)
	}
	if name, err := in.Action.Tag.Name.Render(env); err != nil || name != "interested:shoes" {
		t.Fatalf("tag name = %q, %v", name, err)
	}
	if ok, _ := silent.When.Bool(env); !ok {
		t.Fatal("silent when false")
	}
	if s, _ := silent.Action.Notify.Data[0].Value.Render(env); s != "150" {
		t.Fatalf("notify data spend = %q", s)
	}
	if q := silent.Guardrails.QuietHours; q == nil || q.Start != 21*60 || q.End != 8*60 || q.Zone.String() != "Europe/Berlin" {
		t.Fatalf("quiet hours = %+v", q)
	}
}

func TestParseLanguageErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		msg  string
	}{
		{"unknown profile field", strings.Replace(rules, "\"loyal\" in profile.tags", "profile.tagz", 1),
			12, `profile has no field tagz (1:9) (profile has: customer_id, recency_days`},
		{"when not boolean", strings.Replace(rules, "when: counters.views >= 3", "when: counters.views + 1", 1),
			8, "expected bool"},
		{"undeclared counter", strings.Replace(rules, "counters.views >= 3", "counters.veiws >= 3", 1),
			8, `unknown counter "veiws"`},
		{"type error", strings.Replace(rules, "counters.views >= 3", `counters.views >= "3"`, 1),
			8, `invalid operation: >= (mismatched types float64 and string)`},
		{"ttl over the ceiling", strings.Replace(rules, "ttl: 72h", "ttl: 96h", 1),
			9, "action.tag.ttl 96h0m0s is over the ceiling of 72h0m0s; set ttl_ceiling to raise it"},
		{"tag without ttl", strings.Replace(rules, ", ttl: 72h", "", 1),
			9, "action.tag.ttl is required"},
		{"unknown tag op", strings.Replace(rules, "ttl: 72h", "op: toggle", 1),
			9, `action.tag.op "toggle" is unknown`},
		{"template with bad expression", strings.Replace(rules, "${event.category}", "${event.categry}", 1),
			9, "event has no field categry (1:7) (event has: type, event_id"},
		{"counter by reads the profile", strings.Replace(rules, "by: event.category", "by: profile.customer_id", 1),
			3, "by may read the event only"},
		{"counter without window", strings.Replace(rules, ", window: 24h", "", 1),
			3, "window is required"},
		{"guardrails on a tag", strings.Replace(rules, "ttl: 72h}}", "ttl: 72h}}\n    guardrails: {cooldown: 1h}", 1),
			10, "guardrails apply to coupon and notify actions"},
		{"both on and after", strings.Replace(rules, "{on: [product_view]}", "{on: [product_view], after: [cart_add]}", 1),
			7, "trigger has both on"},
		{"wait on an event trigger", strings.Replace(rules, "{on: [product_view]}", "{on: [product_view], wait: 1m}", 1),
			7, "wait, unless and cancel_when_cart_empty belong to absence timers"},
		{"bad quiet hours", strings.Replace(rules, `end: "08:00"`, `end: "8 am"`, 1),
			14, "quiet_hours.end must be a time of day"},
		{"unknown time zone", strings.Replace(rules, "Europe/Berlin", "Mars/Olympus", 1),
			14, "unknown time zone"},
		{"duplicate rule name", strings.Replace(rules, "name: silent", "name: interested", 1),
			10, `rule name "interested" is used twice`},
		{"top-level trigger with rules", strings.Replace(rules, "rules:", "trigger: {on: [order]}\nrules:", 1),
			5, "trigger belongs to a rule"},
		{"unknown notify key", strings.Replace(rules, "message: winback", "mesage: winback", 1),
			13, `unknown field "mesage"`},
		{"percent_off expression of the wrong type", strings.Replace(valid, "percent_off: 15", `percent_off: 'profile.customer_id'`, 1),
			11, "percent_off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := ParseFile("dir/f.yaml", []byte(tc.yaml))
			if len(errs) == 0 {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			e := errs[0]
			if e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("error = %q (line %d), want line %d: …%s…\nall: %v", e.Error(), e.Line, tc.line, tc.msg, errs)
			}
		})
	}
}

func TestTTLCeilingRaised(t *testing.T) {
	y := strings.Replace(rules, "ttl: 72h", "ttl: 720h, ttl_ceiling: 720h", 1)
	ps, errs := ParseFile("f.yaml", []byte(y))
	if len(errs) > 0 || ps[0].Action.Tag.TTL != 720*time.Hour {
		t.Fatalf("raised ceiling: %v", errs)
	}
}

func TestQuietHoursRelease(t *testing.T) {
	q := &QuietHours{Start: 21 * 60, End: 8 * 60, Zone: time.UTC}
	at := func(h, m int) time.Time { return time.Date(2026, 11, 23, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct{ in, want time.Time }{
		{at(12, 0), at(12, 0)},                  // outside: at once
		{at(21, 0), at(8, 0).AddDate(0, 0, 1)},  // start is inside
		{at(23, 30), at(8, 0).AddDate(0, 0, 1)}, // before midnight: next morning
		{at(3, 0), at(8, 0)},                    // after midnight: this morning
		{at(8, 0), at(8, 0)},                    // end is outside
	} {
		if got := q.Release(tc.in); !got.Equal(tc.want) {
			t.Errorf("Release(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	day := &QuietHours{Start: 12 * 60, End: 14 * 60, Zone: time.UTC}
	if got := day.Release(at(13, 0)); !got.Equal(at(14, 0)) {
		t.Errorf("a span within the day: Release(13:00) = %s", got)
	}
}
