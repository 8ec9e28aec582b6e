package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spur-crm/spur/pkg/event"
)

// valid is a complete pipeline; error cases below are edits of it, so the
// line numbers in them are easy to check by eye.
const valid = `name: x
description: d
trigger:
  after: [cart_add]
  unless: [order]
  wait: 30s
action:
  kind: coupon
  coupon:
    code_prefix: X
    percent_off: 15
    valid_for: 24h
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestShippedCartAbandonment(t *testing.T) {
	dir := filepath.Join("..", "..", "pipelines")
	ps, err := LoadDir(dir)
	if err != nil {
		t.Fatalf("shipped pipelines do not load: %v", err)
	}
	var p *Pipeline
	for _, q := range ps {
		if q.Name == "cart_abandonment" {
			p = q
		}
	}
	if p == nil {
		t.Fatalf("no cart_abandonment pipeline among %d loaded", len(ps))
	}
	wantTrigger := Trigger{
		After:               []event.Type{event.CartAdd},
		Unless:              []event.Type{event.Order},
		CancelWhenCartEmpty: true,
		Wait:                10 * time.Second,
	}
	cp := p.Action.Coupon
	if !reflect.DeepEqual(p.Trigger, wantTrigger) || p.Action.Kind != ActionCoupon || cp.ValidFor != 48*time.Hour || cp.CodePrefix != "CART" ||
		!reflect.DeepEqual(p.Guardrails.SuppressTags, []string{"unhappy"}) || cp.PercentOffExpr == nil || cp.FreeShippingExpr == nil {
		t.Fatalf("cart_abandonment = %+v", p)
	}
	// The personalisation: percent off by profile, free shipping instead
	// for a high-value cart.
	for _, tc := range []struct {
		name    string
		profile ProfileEnv
		percent float64
		free    bool
	}{
		{"new customer", ProfileEnv{CartValue: 40}, 10, false},
		{"loyal", ProfileEnv{CartValue: 40, Orders: 3, PriceSensitivity: 0.9}, 5, false},
		{"price sensitive", ProfileEnv{CartValue: 40, PriceSensitivity: 0.8}, 15, false},
		{"high-value cart", ProfileEnv{CartValue: 150, PriceSensitivity: 0.8}, 0, true},
	} {
		env := &Env{Profile: tc.profile}
		percent, err := cp.PercentOffExpr.Float(env)
		if err != nil {
			t.Fatal(err)
		}
		free, err := cp.FreeShippingExpr.Bool(env)
		if err != nil {
			t.Fatal(err)
		}
		if percent != tc.percent || free != tc.free {
			t.Errorf("%s: percent_off %v free_shipping %v, want %v %v", tc.name, percent, free, tc.percent, tc.free)
		}
	}
	if !p.Starts(event.CartAdd) || p.Starts(event.Order) || p.Starts(event.CartRemove) {
		t.Error("Starts disagrees with trigger.after")
	}
	if !p.Cancels(event.Order) || p.Cancels(event.CartAdd) {
		t.Error("Cancels disagrees with trigger.unless")
	}
}

func TestParseValidAndDefaults(t *testing.T) {
	p, errs := Parse("v.yaml", []byte(valid))
	if errs != nil {
		t.Fatal(errs)
	}
	if p.Trigger.Wait != 30*time.Second || p.Action.Coupon != (Coupon{PercentOff: 15, ValidFor: 24 * time.Hour, CodePrefix: "X"}) {
		t.Fatalf("parsed %+v", p)
	}
	minimal := `name: m
trigger:
  after: [cart_add, checkout_start]
action:
  kind: coupon
  coupon:
    percent_off: 100
`
	p, errs = Parse("m.yaml", []byte(minimal))
	if errs != nil {
		t.Fatal(errs)
	}
	if p.Trigger.Wait != DefaultWait {
		t.Errorf("default wait = %s, want %s", p.Trigger.Wait, DefaultWait)
	}
	if p.Action.Coupon != (Coupon{PercentOff: 100, ValidFor: 48 * time.Hour, CodePrefix: "SPUR"}) {
		t.Errorf("default coupon = %+v", p.Action.Coupon)
	}
	if p.Trigger.Unless != nil || p.Trigger.CancelWhenCartEmpty {
		t.Errorf("trigger defaults = %+v", p.Trigger)
	}
	if !reflect.DeepEqual(p.Trigger.After, []event.Type{event.CartAdd, event.CheckoutStart}) {
		t.Errorf("after = %v", p.Trigger.After)
	}
}

func TestLoadDirSkipsTestFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"x.yaml":      valid,
		"x_test.yaml": "this is: [not a pipeline\n",
		"notes.txt":   "ignored",
		"other.yml":   "not matched by *.yaml",
	})
	ps, err := LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	if len(ps) != 1 || ps[0].Name != "x" || ps[0].File != filepath.Join(dir, "x.yaml") {
		t.Fatalf("LoadDir = %+v, want only x.yaml", ps)
	}
}

func TestLoadDirNoPipelines(t *testing.T) {
	dir := writeFiles(t, map[string]string{"only_test.yaml": valid})
	ps, err := LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "no pipelines in "+dir) {
		t.Fatalf("LoadDir of a directory without pipelines = %v, %v", ps, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		msg  string
	}{
		{"unknown top-level field", strings.Replace(valid, "description: d", "descripton: d", 1),
			2, `unknown field "descripton"`},
		{"unknown trigger field", strings.Replace(valid, "  wait: 30s", "  wiat: 30s", 1),
			6, `unknown field "wiat"`},
		{"unknown action field", strings.Replace(valid, "  kind: coupon", "  kind: coupon\n  cupon: {}", 1),
			9, `unknown field "cupon"`},
		{"unknown coupon field", strings.Replace(valid, "    valid_for: 24h", "    vaild_for: 2h", 1),
			12, `unknown field "vaild_for"`},
		{"unknown event type in after (flow)", strings.Replace(valid, "after: [cart_add]", "after: [cart_add, cart_ad]", 1),
			4, `unknown event type "cart_ad"`},
		{"unknown event type in after (block)", strings.Replace(valid, "  after: [cart_add]", "  after:\n    - cart_add\n    - page_view\n    - crat_add", 1),
			7, `unknown event type "crat_add"`},
		{"unknown event type in unless", strings.Replace(valid, "  unless: [order]", "  unless:\n    - orders", 1),
			6, `unknown event type "orders"`},
		{"after empty", strings.Replace(valid, "after: [cart_add]", "after: []", 1),
			4, "trigger must name event types under on"},
		{"after not a list", strings.Replace(valid, "after: [cart_add]", "after: cart_add", 1),
			4, "cannot unmarshal"},
		{"wait without unit", strings.Replace(valid, "wait: 30s", "wait: 30", 1),
			6, `trigger.wait: time: missing unit in duration "30"`},
		{"wait not a duration", strings.Replace(valid, "wait: 30s", "wait: soon", 1),
			6, `trigger.wait: time: invalid duration "soon"`},
		{"negative wait", strings.Replace(valid, "wait: 30s", "wait: -5s", 1),
			6, "trigger.wait must be positive, got -5s"},
		{"zero wait", strings.Replace(valid, "wait: 30s", "wait: 0s", 1),
			6, "trigger.wait must be positive, got 0s"},
		{"percent_off zero", strings.Replace(valid, "percent_off: 15", "percent_off: 0", 1),
			11, "action.coupon.percent_off must be within 1..100, got 0"},
		{"percent_off above 100", strings.Replace(valid, "percent_off: 15", "percent_off: 101", 1),
			11, "action.coupon.percent_off must be within 1..100, got 101"},
		{"percent_off negative", strings.Replace(valid, "percent_off: 15", "percent_off: -10", 1),
			11, "action.coupon.percent_off must be within 1..100, got -10"},
		{"percent_off not a number", strings.Replace(valid, "percent_off: 15", "percent_off: ten", 1),
			11, "action.coupon.percent_off: expression \"ten\": unknown name ten"},
		{"coupon missing", strings.Replace(valid, "  coupon:\n    code_prefix: X\n    percent_off: 15\n    valid_for: 24h\n", "", 1),
			8, "action.coupon needs percent_off, free_shipping or both"},
		{"bad valid_for", strings.Replace(valid, "valid_for: 24h", "valid_for: -1h", 1),
			12, `action.coupon.valid_for must be a positive duration, got "-1h"`},
		{"unknown action kind", strings.Replace(valid, "kind: coupon", "kind: sms", 1),
			8, `action.kind "sms" is unknown (want coupon, tag or notify)`},
		{"action kind missing", strings.Replace(valid, "  kind: coupon\n", "", 1),
			8, "action.kind is required"},
		{"missing name", strings.Replace(valid, "name: x\n", "# a comment\n", 1),
			2, "name is required"},
		{"missing trigger", valid[:strings.Index(valid, "trigger:")] + valid[strings.Index(valid, "action:"):],
			1, "trigger is required"},
		{"missing action", valid[:strings.Index(valid, "action:")],
			1, "action is required"},
		{"name with upper case and dash", strings.Replace(valid, "name: x", "name: Cart-Abandonment", 1),
			1, `name "Cart-Abandonment" must be lower-case letters, digits and underscores`},
		{"name too long", strings.Replace(valid, "name: x", "name: a"+strings.Repeat("b", 64), 1),
			1, "(at most 64)"},
		{"name not a string", strings.Replace(valid, "name: x", "name: [x]", 1),
			1, "cannot unmarshal !!seq into string"},
		{"not a mapping", "- a\n- b\n",
			1, "cannot unmarshal !!seq into pipeline.file"},
		{"duplicate key", strings.Replace(valid, "description: d", "name: y", 1),
			2, `mapping key "name" already defined at line 1`},
		{"invalid YAML: tab", strings.Replace(valid, "  wait: 30s", "\twait: 30s", 1),
			6, "found character that cannot start any token"},
		{"invalid YAML: mapping in scalar", strings.Replace(valid, "description: d", "description: a: b", 1),
			2, "mapping values are not allowed in this context"},
		{"invalid YAML: unterminated quote", strings.Replace(valid, "description: d", `description: "d`, 1),
			2, "found unexpected end of stream"},
		{"second document", valid + "---\nname: y\n",
			14, "a pipeline file holds one pipeline; found a second YAML document"},
		{"empty file", "", 0, "empty pipeline"},
		{"only comments", "# nothing here\n\n# yet\n", 0, "empty pipeline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, errs := Parse("dir/f.yaml", []byte(tc.yaml))
			if p != nil || len(errs) == 0 {
				t.Fatalf("Parse accepted:\n%s", tc.yaml)
			}
			e := errs[0]
			if e.File != "dir/f.yaml" || e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("error = %q (line %d), want dir/f.yaml:%d: …%s…\nall: %v", e.Error(), e.Line, tc.line, tc.msg, errs)
			}
			want := "dir/f.yaml: "
			if tc.line > 0 {
				want = "dir/f.yaml:" + strconv.Itoa(tc.line) + ": "
			}
			if !strings.HasPrefix(e.Error(), want) {
				t.Fatalf("Error() = %q, want prefix %q", e.Error(), want)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	bad := `name: ""
trigger:
  after: [nope]
  wait: -1s
action:
  kind: coupon
  coupon:
    percent_off: 0
`
	_, errs := Parse("b.yaml", []byte(bad))
	want := []string{
		"b.yaml:1: name is required",
		`b.yaml:3: unknown event type "nope"`,
		"b.yaml:4: trigger.wait must be positive, got -1s",
		"b.yaml:8: action.coupon.percent_off must be within 1..100, got 0",
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if errs.Error() != strings.Join(want, "\n") {
		t.Fatalf("Errors.Error() = %q", errs.Error())
	}
}

func TestLoadDirDuplicateNames(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": valid,
		"b.yaml": "# the same name again\n" + valid,
		"c.yaml": strings.Replace(valid, "name: x", "name: z", 1),
	})
	ps, err := LoadDir(dir)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("LoadDir = %v, want one Errors entry", err)
	}
	e := errs[0]
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	if e.File != b || e.Line != 2 || e.Msg != `pipeline name "x" already used by `+a {
		t.Fatalf("error = %q, want %s:2: pipeline name \"x\" already used by %s", e.Error(), b, a)
	}
	// The pipelines that did load are still returned, for `spur check`.
	if len(ps) != 2 || ps[0].File != a || ps[1].Name != "z" {
		t.Fatalf("loaded %+v, want a.yaml's x and c.yaml's z", ps)
	}
}

func TestLoadDirCollectsErrorsAcrossFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b.yaml":  strings.Replace(valid, "wait: 30s", "wait: -1s", 1),
		"a.yaml":  strings.Replace(valid, "kind: coupon", "kind: sms", 1),
		"ok.yaml": strings.Replace(valid, "name: x", "name: ok", 1),
		"e.yaml":  "",
	})
	_, err := LoadDir(dir)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("LoadDir = %v, want Errors", err)
	}
	want := []string{
		filepath.Join(dir, "a.yaml") + `:8: action.kind "sms" is unknown (want coupon, tag or notify)`,
		filepath.Join(dir, "b.yaml") + ":6: trigger.wait must be positive, got -1s",
		filepath.Join(dir, "e.yaml") + ": empty pipeline",
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Fatalf("LoadDir error =\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

func TestYAMLKeys(t *testing.T) {
	if got := yamlKeys(&triggerYAML{}); !reflect.DeepEqual(got, []string{"on", "after", "unless", "cancel_when_cart_empty", "wait"}) {
		t.Fatalf("yamlKeys(triggerYAML) = %v", got)
	}
	if got := yamlKeys(3); got != nil {
		t.Fatalf("yamlKeys(int) = %v, want nil", got)
	}
}

func TestGuardrailsParse(t *testing.T) {
	base := "name: g\ntrigger: {after: [cart_add]}\naction: {kind: coupon, coupon: {percent_off: 5}}\n"
	p, errs := Parse("g.yaml", []byte(base+"guardrails:\n  cooldown: 24h\n  holdout_percent: 12.5\n  attribution_window: 72h\n  suppress_unhappy: 720h\n"))
	if errs != nil {
		t.Fatal(errs)
	}
	want := Guardrails{Cooldown: 24 * time.Hour, HoldoutPercent: 12.5, AttributionWindow: 72 * time.Hour, SuppressUnhappy: 720 * time.Hour}
	if !reflect.DeepEqual(p.Guardrails, want) {
		t.Errorf("guardrails %+v, want %+v", p.Guardrails, want)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"guardrails:\n  cooldown: soon\n", "g.yaml:5: guardrails.cooldown must be a duration"},
		{"guardrails:\n  attribution_window: -1h\n", "g.yaml:5: guardrails.attribution_window must be a duration"},
		{"guardrails:\n  holdout_percent: 101\n", "g.yaml:5: guardrails.holdout_percent must be within 0..100"},
		{"guardrails:\n  cooldwn: 1h\n", "unknown field \"cooldwn\""},
	} {
		_, errs := Parse("g.yaml", []byte(base+tc.yaml))
		if errs == nil || !strings.Contains(errs.Error(), tc.want) {
			t.Errorf("%q: errors %v, want %q", tc.yaml, errs, tc.want)
		}
	}
}
