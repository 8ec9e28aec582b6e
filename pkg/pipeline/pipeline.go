package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spur-crm/spur/pkg/event"
)

// Action kinds.
const (
	ActionCoupon = "coupon"
	ActionTag    = "tag"
	ActionNotify = "notify"
)

// Tag operations.
const (
	TagAdd    = "add"
	TagRemove = "remove"
)

// DefaultTTLCeiling is the longest tag TTL a pipeline may set without
// raising its ceiling explicitly (action.tag.ttl_ceiling).
const DefaultTTLCeiling = 72 * time.Hour

// AnyEvent in trigger.after means every event type.
const AnyEvent = "*"

// Pipeline is one checked rule: a trigger, an optional condition, an action
// and its guardrails. A pipeline file holds one rule, or several under
// rules: (each named <file's name>.<rule's name>); the rules of a file
// share its counters.
type Pipeline struct {
	Name        string
	Group       string // the file's pipeline name
	Description string
	File        string
	Trigger     Trigger
	// When, if set, must hold for the customer to qualify: evaluated on
	// the event for an event trigger, at the deadline for a timer.
	When       *Expr
	Action     Action
	Guardrails Guardrails
	// Counters are the windowed counters of the rule's file.
	Counters []*Counter
	// NeedsProfile and NeedsCounters say whether the rule's expressions
	// read the profile or the counters (so evaluation builds only those).
	NeedsProfile, NeedsCounters bool
	// ProfileParts are the costly profile fields the rule reads.
	ProfileParts ProfileParts

	nameLine int // where the name is, for errors about it
}

// Counter is a windowed counter per customer, declared in a pipeline file:
// on each event of its types, By (the key, such as the category; none for
// one total) gains Sum (1 when unset) at the event's time; expressions read
// the sum over the last Window.
type Counter struct {
	Name   string // qualified: <pipeline>.<counter>
	Local  string // as expressions name it: counters.<local>
	On     []event.Type
	By     *Expr
	Sum    *Expr
	Window time.Duration
}

// Guardrails keep a pipeline from over-marketing a customer and let its
// lift be measured. They apply to coupon and notify actions.
type Guardrails struct {
	// Cooldown: a customer who got this pipeline's trigger within it is
	// not triggered again (the trigger is recorded as suppressed).
	Cooldown time.Duration
	// HoldoutPercent of customers, chosen by a stable hash of customer and
	// pipeline, get a record with variant "holdout" and no coupon.
	HoldoutPercent float64
	// AttributionWindow: an order this soon after a trigger (treatment or
	// holdout) emits a conversion record naming it; 0 turns it off.
	AttributionWindow time.Duration
	// SuppressUnhappy: a customer whose latest feedback within this long
	// before the qualifying moment was negative (rating 1–2, or text
	// scoring at most -0.3) is not triggered; 0 turns it off.
	SuppressUnhappy time.Duration
	// SuppressTags: a customer holding any of these tags is not triggered.
	SuppressTags []string
	// QuietHours, when set, delays (never drops) a trigger that qualifies
	// within them, in the customer's local time, to their end.
	QuietHours *QuietHours
}

// QuietHours is a daily span of local time, [Start, End) in minutes after
// midnight; it wraps midnight when End < Start.
type QuietHours struct {
	Start, End int
	// Zone is the time zone of a customer whose local offset is unknown.
	Zone *time.Location
}

// Trigger says when a rule evaluates: on each event of On, or (an absence
// timer) when Wait passes after any of After without any of Unless.
type Trigger struct {
	On                  []event.Type
	After               []event.Type
	AnyAfter            bool
	Unless              []event.Type
	CancelWhenCartEmpty bool
	Wait                time.Duration
}

// Absence reports whether the trigger is an absence timer.
func (t *Trigger) Absence() bool { return len(t.After) > 0 || t.AnyAfter }

// Action says what a qualifying customer gets.
type Action struct {
	Kind   string
	Coupon Coupon
	Tag    TagAction
	Notify Notify
}

// Coupon parameters. PercentOff and FreeShipping are constants or, when the
// *Expr is set, evaluated on the profile.
type Coupon struct {
	PercentOff       int
	PercentOffExpr   *Expr
	FreeShipping     bool
	FreeShippingExpr *Expr
	ValidFor         time.Duration
	CodePrefix       string
}

// TagAction adds a tag for TTL (or refreshes it), or removes it.
type TagAction struct {
	Name *Template
	Op   string
	TTL  time.Duration
}

// Notify puts a custom message on the output topic.
type Notify struct {
	Message *Template
	Data    []NotifyField
}

// NotifyField is one templated key of a notify payload's data.
type NotifyField struct {
	Key   string
	Value *Template
}

// Starts reports whether t (re)starts the pipeline's wait.
func (p *Pipeline) Starts(t event.Type) bool {
	return p.Trigger.AnyAfter || slices.Contains(p.Trigger.After, t)
}

// Cancels reports whether t cancels the pipeline's wait.
func (p *Pipeline) Cancels(t event.Type) bool { return slices.Contains(p.Trigger.Unless, t) }

// On reports whether an event of type t triggers the rule's evaluation.
func (p *Pipeline) On(t event.Type) bool { return slices.Contains(p.Trigger.On, t) }

// UsesProfile reports whether any of the rule's expressions read the
// profile.
func (p *Pipeline) UsesProfile() bool {
	if p.When != nil && p.When.UsesProfile {
		return true
	}
	a := &p.Action
	for _, x := range []*Expr{a.Coupon.PercentOffExpr, a.Coupon.FreeShippingExpr} {
		if x != nil && x.UsesProfile {
			return true
		}
	}
	for _, t := range p.templates() {
		if t.UsesProfile() {
			return true
		}
	}
	return false
}

// UsesCounters reports whether any of the rule's expressions read counters.
func (p *Pipeline) UsesCounters() bool {
	if p.When != nil && p.When.UsesCounters {
		return true
	}
	a := &p.Action
	for _, x := range []*Expr{a.Coupon.PercentOffExpr, a.Coupon.FreeShippingExpr} {
		if x != nil && x.UsesCounters {
			return true
		}
	}
	for _, t := range p.templates() {
		if t.UsesCounters() {
			return true
		}
	}
	return false
}

func (p *Pipeline) templates() []*Template {
	var ts []*Template
	if p.Action.Tag.Name != nil {
		ts = append(ts, p.Action.Tag.Name)
	}
	if p.Action.Notify.Message != nil {
		ts = append(ts, p.Action.Notify.Message)
	}
	for _, f := range p.Action.Notify.Data {
		ts = append(ts, f.Value)
	}
	return ts
}

// Error is a load error at a place in a pipeline file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every error found in a load.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// The YAML form. Durations are strings so errors can point at them.
type file struct {
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	Counters    yaml.Node `yaml:"counters"`
	Trigger     yaml.Node `yaml:"trigger"`
	When        yaml.Node `yaml:"when"`
	Action      yaml.Node `yaml:"action"`
	Guardrails  yaml.Node `yaml:"guardrails"`
	Rules       yaml.Node `yaml:"rules"`
}

type ruleYAML struct {
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	Trigger     yaml.Node `yaml:"trigger"`
	When        yaml.Node `yaml:"when"`
	Action      yaml.Node `yaml:"action"`
	Guardrails  yaml.Node `yaml:"guardrails"`
}

type counterYAML struct {
	On     []string `yaml:"on"`
	By     string   `yaml:"by"`
	Sum    string   `yaml:"sum"`
	Window string   `yaml:"window"`
}

type guardrailsYAML struct {
	Cooldown          string    `yaml:"cooldown"`
	HoldoutPercent    float64   `yaml:"holdout_percent"`
	AttributionWindow string    `yaml:"attribution_window"`
	SuppressUnhappy   string    `yaml:"suppress_unhappy"`
	SuppressTags      []string  `yaml:"suppress_tags"`
	QuietHours        yaml.Node `yaml:"quiet_hours"`
}

type quietYAML struct {
	Start    string `yaml:"start"`
	End      string `yaml:"end"`
	Timezone string `yaml:"timezone"`
}

type triggerYAML struct {
	On                  []string `yaml:"on"`
	After               []string `yaml:"after"`
	Unless              []string `yaml:"unless"`
	CancelWhenCartEmpty bool     `yaml:"cancel_when_cart_empty"`
	Wait                string   `yaml:"wait"`
}

type actionYAML struct {
	Kind   string    `yaml:"kind"`
	Coupon yaml.Node `yaml:"coupon"`
	Tag    yaml.Node `yaml:"tag"`
	Notify yaml.Node `yaml:"notify"`
}

type couponYAML struct {
	PercentOff   yaml.Node `yaml:"percent_off"`
	FreeShipping yaml.Node `yaml:"free_shipping"`
	ValidFor     string    `yaml:"valid_for"`
	CodePrefix   string    `yaml:"code_prefix"`
}

type tagYAML struct {
	Name       string `yaml:"name"`
	Op         string `yaml:"op"`
	TTL        string `yaml:"ttl"`
	TTLCeiling string `yaml:"ttl_ceiling"`
}

type notifyYAML struct {
	Message string    `yaml:"message"`
	Data    yaml.Node `yaml:"data"`
}

// nameRe is what a pipeline, rule or counter name may be: it appears in
// metrics labels, trigger ids and timer rows.
var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// DefaultWait applies when a trigger names no wait.
const DefaultWait = 10 * time.Second

// LoadDir loads every *.yaml pipeline in dir (files named *_test.yaml are
// pipeline tests, not pipelines). It returns Errors when any file fails.
func LoadDir(dir string) ([]*Pipeline, error) {
	return LoadFS(os.DirFS(dir), dir)
}

// LoadFS is LoadDir over an fs.FS; prefix is prepended to file names in
// errors.
func LoadFS(fsys fs.FS, prefix string) ([]*Pipeline, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var (
		out  []*Pipeline
		errs Errors
		seen = map[string]string{}
	)
	for _, n := range names {
		if strings.HasSuffix(n, "_test.yaml") {
			continue
		}
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		name := filepath.Join(prefix, n)
		ps, perrs := ParseFile(name, data)
		errs = append(errs, perrs...)
		for _, p := range ps {
			if other, dup := seen[p.Name]; dup {
				errs = append(errs, &Error{File: name, Line: p.nameLine, Msg: fmt.Sprintf("pipeline name %q already used by %s", p.Name, other)})
				continue
			}
			seen[p.Name] = name
			out = append(out, p)
		}
	}
	if len(errs) > 0 {
		return out, errs
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pipeline: no pipelines in %s", prefix)
	}
	return out, nil
}

// Parse checks a pipeline file that holds one rule.
func Parse(name string, data []byte) (*Pipeline, Errors) {
	ps, errs := ParseFile(name, data)
	if len(errs) > 0 {
		return nil, errs
	}
	if len(ps) != 1 {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("want one rule, the file holds %d", len(ps))}}
	}
	return ps[0], nil
}

// ParseFile checks one pipeline file and returns its rules.
func ParseFile(name string, data []byte) ([]*Pipeline, Errors) {
	var errs Errors
	at := func(n *yaml.Node, format string, args ...any) {
		line := 0
		if n != nil {
			line = n.Line
		}
		errs = append(errs, &Error{File: name, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, Errors{yamlError(name, err)}
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{File: name, Msg: "empty pipeline"}}
	}
	// A second document would otherwise be ignored without a word.
	var extra yaml.Node
	if err := dec.Decode(&extra); err != nil && !errors.Is(err, io.EOF) {
		return nil, Errors{yamlError(name, err)}
	} else if err == nil && len(extra.Content) > 0 {
		return nil, Errors{{File: name, Line: extra.Content[0].Line, Msg: "a pipeline file holds one pipeline; found a second YAML document"}}
	}
	root := doc.Content[0]
	var f file
	if err := decodeStrict(root, &f); err != nil {
		return nil, Errors{yamlError(name, err)}
	}
	if f.Name == "" {
		at(root, "name is required")
	} else if !nameRe.MatchString(f.Name) {
		at(field(root, "name"), "name %q must be lower-case letters, digits and underscores, starting with a letter (at most 64)", f.Name)
	}
	counters, names := parseCounters(f.Name, &f.Counters, name, at, &errs)

	var out []*Pipeline
	if f.Rules.Kind == 0 {
		for _, k := range []string{"trigger", "action"} {
			if field(root, k) == root {
				at(root, "%s is required (or rules:, a list of rules)", k)
			}
		}
		p := &Pipeline{Name: f.Name, Group: f.Name, Description: f.Description, File: name, nameLine: field(root, "name").Line, Counters: counters}
		parseRule(p, &f.Trigger, &f.When, &f.Action, &f.Guardrails, names, name, at, &errs)
		out = append(out, p)
	} else {
		for _, k := range []string{"trigger", "when", "action", "guardrails"} {
			if n := field(root, k); n != root {
				at(n, "%s belongs to a rule: a file with rules: holds them under each rule", k)
			}
		}
		if f.Rules.Kind != yaml.SequenceNode || len(f.Rules.Content) == 0 {
			at(&f.Rules, "rules must be a list of at least one rule")
		}
		seen := map[string]bool{}
		for _, rn := range f.Rules.Content {
			var r ruleYAML
			if err := decodeStrict(rn, &r); err != nil {
				errs = append(errs, yamlError(name, err))
				continue
			}
			switch {
			case r.Name == "":
				at(rn, "rule name is required")
				continue
			case !nameRe.MatchString(r.Name):
				at(field(rn, "name"), "rule name %q must be lower-case letters, digits and underscores, starting with a letter", r.Name)
				continue
			case seen[r.Name]:
				at(field(rn, "name"), "rule name %q is used twice", r.Name)
				continue
			}
			seen[r.Name] = true
			for _, k := range []string{"trigger", "action"} {
				if field(rn, k) == rn {
					at(rn, "rule %s: %s is required", r.Name, k)
				}
			}
			p := &Pipeline{Name: f.Name + "." + r.Name, Group: f.Name, Description: r.Description, File: name, nameLine: field(rn, "name").Line, Counters: counters}
			if p.Description == "" {
				p.Description = f.Description
			}
			parseRule(p, &r.Trigger, &r.When, &r.Action, &r.Guardrails, names, name, at, &errs)
			out = append(out, p)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func parseCounters(group string, n *yaml.Node, file string, at func(*yaml.Node, string, ...any), errs *Errors) ([]*Counter, map[string]bool) {
	names := map[string]bool{}
	if n.Kind == 0 {
		return nil, names
	}
	if n.Kind != yaml.MappingNode {
		at(n, "counters must map counter names to {on, by, sum, window}")
		return nil, names
	}
	var out []*Counter
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !nameRe.MatchString(k.Value) {
			at(k, "counter name %q must be lower-case letters, digits and underscores", k.Value)
			continue
		}
		names[k.Value] = true
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !names[k.Value] {
			continue
		}
		var cy counterYAML
		if err := decodeStrict(v, &cy); err != nil {
			*errs = append(*errs, yamlError(file, err))
			continue
		}
		c := &Counter{Name: group + "." + k.Value, Local: k.Value}
		c.On = types(cy.On, field(v, "on"), at, false)
		if len(cy.On) == 0 {
			at(v, "counter %s: on must name at least one event type", k.Value)
		}
		d, err := time.ParseDuration(cy.Window)
		switch {
		case cy.Window == "":
			at(v, "counter %s: window is required (e.g. 24h)", k.Value)
		case err != nil || d <= 0:
			at(field(v, "window"), "counter %s: window must be a positive duration, got %q", k.Value, cy.Window)
		default:
			c.Window = d
		}
		// A counter's key and amount read the event only: counters are
		// updated before the profile is.
		if cy.By != "" {
			x, err := compile(cy.By, field(v, "by").Line, wantString, names)
			if err != nil {
				at(field(v, "by"), "counter %s: by: %v", k.Value, err)
			} else if x.UsesProfile || x.UsesCounters {
				at(field(v, "by"), "counter %s: by may read the event only", k.Value)
			} else {
				c.By = x
			}
		}
		if cy.Sum != "" {
			x, err := compile(cy.Sum, field(v, "sum").Line, wantNumber, names)
			if err != nil {
				at(field(v, "sum"), "counter %s: sum: %v", k.Value, err)
			} else if x.UsesProfile || x.UsesCounters {
				at(field(v, "sum"), "counter %s: sum may read the event only", k.Value)
			} else {
				c.Sum = x
			}
		}
		out = append(out, c)
	}
	return out, names
}

func parseRule(p *Pipeline, trigger, when, action, guardrails *yaml.Node, counters map[string]bool, name string, at func(*yaml.Node, string, ...any), errs *Errors) {
	var tr triggerYAML
	if trigger.Kind != 0 {
		if err := decodeStrict(trigger, &tr); err != nil {
			*errs = append(*errs, yamlError(name, err))
		} else {
			p.Trigger.On = types(tr.On, field(trigger, "on"), at, false)
			p.Trigger.After = types(tr.After, field(trigger, "after"), at, true)
			p.Trigger.AnyAfter = slices.Contains(tr.After, AnyEvent)
			p.Trigger.Unless = types(tr.Unless, field(trigger, "unless"), at, false)
			p.Trigger.CancelWhenCartEmpty = tr.CancelWhenCartEmpty
			absence := len(tr.After) > 0
			switch {
			case len(tr.On) > 0 && absence:
				at(trigger, "trigger has both on (an event trigger) and after (an absence timer); use one")
			case len(tr.On) == 0 && !absence:
				at(trigger, "trigger must name event types under on (evaluate on each such event) or after (an absence timer)")
			case len(tr.On) > 0 && (tr.Wait != "" || len(tr.Unless) > 0 || tr.CancelWhenCartEmpty):
				at(trigger, "wait, unless and cancel_when_cart_empty belong to absence timers (after:), not to on:")
			}
			if absence {
				p.Trigger.Wait = DefaultWait
			}
			if tr.Wait != "" {
				d, err := time.ParseDuration(tr.Wait)
				switch {
				case err != nil:
					at(field(trigger, "wait"), "trigger.wait: %v", err)
				case d <= 0:
					at(field(trigger, "wait"), "trigger.wait must be positive, got %s", d)
				default:
					p.Trigger.Wait = d
				}
			}
		}
	}
	if when.Kind != 0 {
		if when.Kind != yaml.ScalarNode || when.Value == "" {
			at(when, "when must be an expression, such as profile.orders >= 2")
		} else if x, err := compile(when.Value, when.Line, wantBool, counters); err != nil {
			at(when, "when: %v", err)
		} else {
			p.When = x
		}
	}

	var ac actionYAML
	if action.Kind != 0 {
		if err := decodeStrict(action, &ac); err != nil {
			*errs = append(*errs, yamlError(name, err))
		} else {
			parseAction(p, &ac, action, counters, name, at, errs)
		}
	}
	p.NeedsProfile, p.NeedsCounters = p.UsesProfile(), p.UsesCounters()
	if p.When != nil {
		p.ProfileParts |= p.When.ProfileParts
	}
	for _, x := range []*Expr{p.Action.Coupon.PercentOffExpr, p.Action.Coupon.FreeShippingExpr} {
		if x != nil {
			p.ProfileParts |= x.ProfileParts
		}
	}
	for _, t := range p.templates() {
		p.ProfileParts |= t.ProfileParts()
	}
	if guardrails.Kind != 0 {
		if p.Action.Kind == ActionTag {
			at(guardrails, "guardrails apply to coupon and notify actions; a tag is not a message to the customer")
		}
		parseGuardrails(p, guardrails, name, at, errs)
	}
}

func parseAction(p *Pipeline, ac *actionYAML, action *yaml.Node, counters map[string]bool, name string, at func(*yaml.Node, string, ...any), errs *Errors) {
	p.Action.Kind = ac.Kind
	for _, k := range []struct {
		key  string
		node *yaml.Node
	}{{ActionCoupon, &ac.Coupon}, {ActionTag, &ac.Tag}, {ActionNotify, &ac.Notify}} {
		known := ac.Kind == ActionCoupon || ac.Kind == ActionTag || ac.Kind == ActionNotify
		if k.node.Kind != 0 && k.key != ac.Kind && known {
			at(k.node, "action.%s given but action.kind is %q", k.key, ac.Kind)
		}
	}
	switch ac.Kind {
	case ActionCoupon:
		c := &ac.Coupon
		var cy couponYAML
		if c.Kind != 0 {
			if err := decodeStrict(c, &cy); err != nil {
				*errs = append(*errs, yamlError(name, err))
				return
			}
		}
		cp := &p.Action.Coupon
		*cp = Coupon{CodePrefix: cy.CodePrefix, ValidFor: 48 * time.Hour}
		switch n := &cy.PercentOff; {
		case n.Kind == 0:
		case n.Tag == "!!int":
			v, err := strconv.Atoi(n.Value)
			if err != nil || v < 1 || v > 100 {
				at(n, "action.coupon.percent_off must be within 1..100, got %s", n.Value)
			}
			cp.PercentOff = v
		case n.Tag == "!!str":
			x, err := compile(n.Value, n.Line, wantNumber, counters)
			if err != nil {
				at(n, "action.coupon.percent_off: %v", err)
			}
			cp.PercentOffExpr = x
		default:
			at(n, "action.coupon.percent_off must be a whole number or an expression, got %q", n.Value)
		}
		switch n := &cy.FreeShipping; {
		case n.Kind == 0:
		case n.Tag == "!!bool":
			cp.FreeShipping = n.Value == "true"
		case n.Tag == "!!str":
			x, err := compile(n.Value, n.Line, wantBool, counters)
			if err != nil {
				at(n, "action.coupon.free_shipping: %v", err)
			}
			cp.FreeShippingExpr = x
		default:
			at(n, "action.coupon.free_shipping must be true, false or an expression, got %q", n.Value)
		}
		if cy.PercentOff.Kind == 0 && cy.FreeShipping.Kind == 0 {
			at(action, "action.coupon needs percent_off, free_shipping or both")
		}
		if cy.ValidFor != "" {
			d, err := time.ParseDuration(cy.ValidFor)
			if err != nil || d <= 0 {
				at(field(c, "valid_for"), "action.coupon.valid_for must be a positive duration, got %q", cy.ValidFor)
			} else {
				cp.ValidFor = d
			}
		}
		if cp.CodePrefix == "" {
			cp.CodePrefix = "SPUR"
		}
	case ActionTag:
		t := &ac.Tag
		var ty tagYAML
		if t.Kind == 0 {
			at(action, "action.tag is required for kind tag")
			return
		}
		if err := decodeStrict(t, &ty); err != nil {
			*errs = append(*errs, yamlError(name, err))
			return
		}
		ta := &p.Action.Tag
		if ty.Name == "" {
			at(t, "action.tag.name is required")
		} else if tpl, err := compileTemplate(ty.Name, field(t, "name").Line, counters); err != nil {
			at(field(t, "name"), "action.tag.name: %v", err)
		} else {
			ta.Name = tpl
		}
		ta.Op = ty.Op
		if ta.Op == "" {
			ta.Op = TagAdd
		}
		ceiling := DefaultTTLCeiling
		if ty.TTLCeiling != "" {
			d, err := time.ParseDuration(ty.TTLCeiling)
			if err != nil || d <= 0 {
				at(field(t, "ttl_ceiling"), "action.tag.ttl_ceiling must be a positive duration, got %q", ty.TTLCeiling)
			} else {
				ceiling = d
			}
		}
		switch ta.Op {
		case TagAdd:
			d, err := time.ParseDuration(ty.TTL)
			switch {
			case ty.TTL == "":
				at(t, "action.tag.ttl is required: every tag expires (at most %s unless ttl_ceiling raises it)", ceiling)
			case err != nil || d <= 0:
				at(field(t, "ttl"), "action.tag.ttl must be a positive duration, got %q", ty.TTL)
			case d > ceiling:
				at(field(t, "ttl"), "action.tag.ttl %s is over the ceiling of %s; set ttl_ceiling to raise it", d, ceiling)
			default:
				ta.TTL = d
			}
		case TagRemove:
			if ty.TTL != "" {
				at(field(t, "ttl"), "action.tag.ttl applies to op add, not remove")
			}
		default:
			at(field(t, "op"), "action.tag.op %q is unknown (want add or remove)", ta.Op)
		}
	case ActionNotify:
		n := &ac.Notify
		var ny notifyYAML
		if n.Kind == 0 {
			at(action, "action.notify is required for kind notify")
			return
		}
		if err := decodeStrict(n, &ny); err != nil {
			*errs = append(*errs, yamlError(name, err))
			return
		}
		if ny.Message == "" {
			at(n, "action.notify.message is required (the name of what to send, e.g. browse_reminder)")
		} else if tpl, err := compileTemplate(ny.Message, field(n, "message").Line, counters); err != nil {
			at(field(n, "message"), "action.notify.message: %v", err)
		} else {
			p.Action.Notify.Message = tpl
		}
		if d := &ny.Data; d.Kind != 0 {
			if d.Kind != yaml.MappingNode {
				at(d, "action.notify.data must map keys to text templates")
				return
			}
			for i := 0; i+1 < len(d.Content); i += 2 {
				k, v := d.Content[i], d.Content[i+1]
				if v.Kind != yaml.ScalarNode {
					at(v, "action.notify.data.%s must be text (with ${expression} parts)", k.Value)
					continue
				}
				tpl, err := compileTemplate(v.Value, v.Line, counters)
				if err != nil {
					at(v, "action.notify.data.%s: %v", k.Value, err)
					continue
				}
				p.Action.Notify.Data = append(p.Action.Notify.Data, NotifyField{Key: k.Value, Value: tpl})
			}
		}
	case "":
		at(action, "action.kind is required")
	default:
		at(field(action, "kind"), "action.kind %q is unknown (want coupon, tag or notify)", ac.Kind)
	}
}

func parseGuardrails(p *Pipeline, n *yaml.Node, name string, at func(*yaml.Node, string, ...any), errs *Errors) {
	var g guardrailsYAML
	if err := decodeStrict(n, &g); err != nil {
		*errs = append(*errs, yamlError(name, err))
		return
	}
	// Each is a non-negative duration; empty means off.
	for _, d := range []struct {
		key string
		val string
		dst *time.Duration
	}{
		{"cooldown", g.Cooldown, &p.Guardrails.Cooldown},
		{"attribution_window", g.AttributionWindow, &p.Guardrails.AttributionWindow},
		{"suppress_unhappy", g.SuppressUnhappy, &p.Guardrails.SuppressUnhappy},
	} {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v < 0 {
			at(field(n, d.key), "guardrails.%s must be a duration, got %q", d.key, d.val)
		}
		*d.dst = v
	}
	if g.HoldoutPercent < 0 || g.HoldoutPercent > 100 {
		at(field(n, "holdout_percent"), "guardrails.holdout_percent must be within 0..100, got %v", g.HoldoutPercent)
	}
	p.Guardrails.HoldoutPercent = g.HoldoutPercent
	p.Guardrails.SuppressTags = g.SuppressTags
	if q := &g.QuietHours; q.Kind != 0 {
		var qy quietYAML
		if err := decodeStrict(q, &qy); err != nil {
			*errs = append(*errs, yamlError(name, err))
			return
		}
		qh := &QuietHours{Zone: time.UTC}
		var ok bool
		if qh.Start, ok = clockMinutes(qy.Start); !ok {
			at(field(q, "start"), "guardrails.quiet_hours.start must be a time of day such as 21:00, got %q", qy.Start)
		}
		if qh.End, ok = clockMinutes(qy.End); !ok {
			at(field(q, "end"), "guardrails.quiet_hours.end must be a time of day such as 08:00, got %q", qy.End)
		}
		if qy.Timezone != "" {
			loc, err := time.LoadLocation(qy.Timezone)
			if err != nil {
				at(field(q, "timezone"), "guardrails.quiet_hours.timezone: %v", err)
			} else {
				qh.Zone = loc
			}
		}
		if qh.Start == qh.End {
			at(q, "guardrails.quiet_hours: start and end are the same time")
		}
		p.Guardrails.QuietHours = qh
	}
}

func clockMinutes(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// Release returns when a trigger qualifying at t (the customer's local
// time) may be sent: t itself outside quiet hours, else their end.
func (q *QuietHours) Release(t time.Time) time.Time {
	if q == nil {
		return t
	}
	m := t.Hour()*60 + t.Minute()
	inside := false
	if q.Start < q.End {
		inside = m >= q.Start && m < q.End
	} else {
		inside = m >= q.Start || m < q.End
	}
	if !inside {
		return t
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	end := day.Add(time.Duration(q.End) * time.Minute)
	if !end.After(t) {
		end = end.AddDate(0, 0, 1)
	}
	return end
}

// InHoldout reports whether a customer is in this pipeline's holdout: a
// stable hash of customer and pipeline, so the same customer stays in (or
// out of) the same pipeline's holdout across restarts and instances.
func (p *Pipeline) InHoldout(customer string) bool {
	if p.Guardrails.HoldoutPercent <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(p.Name))
	h.Write([]byte{0})
	h.Write([]byte(customer))
	return float64(h.Sum64()%10000) < p.Guardrails.HoldoutPercent*100
}

func types(names []string, n *yaml.Node, at func(*yaml.Node, string, ...any), anyOK bool) []event.Type {
	var out []event.Type
	for i, s := range names {
		if anyOK && s == AnyEvent {
			continue
		}
		t := event.Type(s)
		if !slices.Contains(event.Types, t) {
			var item *yaml.Node
			if n != nil && i < len(n.Content) {
				item = n.Content[i]
			}
			at(item, "unknown event type %q", s)
			continue
		}
		out = append(out, t)
	}
	return out
}

// field returns the value node of key in a mapping node, or the mapping.
func field(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return m
}

func decodeStrict(n *yaml.Node, v any) error {
	// yaml.v3 reports unknown fields only through a Decoder; re-encoding the
	// node keeps line numbers because we decode the node itself below.
	if err := checkKnown(n, v); err != nil {
		return err
	}
	return n.Decode(v)
}

// checkKnown rejects keys the target struct does not declare, with the line.
func checkKnown(n *yaml.Node, v any) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	known := yamlKeys(v)
	if known == nil {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: unknown field %q (known: %s)", k.Line, k.Value, strings.Join(known, ", "))}}
		}
	}
	return nil
}

var lineRe = "line "

func yamlError(name string, err error) *Error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if strings.HasPrefix(msg, lineRe) {
		rest := msg[len(lineRe):]
		if i := strings.Index(rest, ":"); i > 0 {
			fmt.Sscanf(rest[:i], "%d", &line)
			msg = strings.TrimSpace(rest[i+1:])
		}
	}
	return &Error{File: name, Line: line, Msg: msg}
}
