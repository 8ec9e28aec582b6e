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
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spur-crm/spur/pkg/event"
)

// Action kinds.
const (
	ActionCoupon = "coupon"
)

// Pipeline is one checked pipeline.
type Pipeline struct {
	Name        string
	Description string
	File        string
	Trigger     Trigger
	Action      Action
	Guardrails  Guardrails

	nameLine int // where the name is, for errors about it
}

// Guardrails keep a pipeline from over-marketing a customer and let its
// lift be measured.
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
}

// Trigger is an absence timer: after any of After, unless any of Unless
// arrives within Wait.
type Trigger struct {
	After               []event.Type
	Unless              []event.Type
	CancelWhenCartEmpty bool
	Wait                time.Duration
}

// Action says what a qualifying customer gets.
type Action struct {
	Kind   string
	Coupon Coupon
}

// Coupon parameters.
type Coupon struct {
	PercentOff int
	ValidFor   time.Duration
	CodePrefix string
}

// Starts reports whether t (re)starts the pipeline's wait.
func (p *Pipeline) Starts(t event.Type) bool { return slices.Contains(p.Trigger.After, t) }

// Cancels reports whether t cancels the pipeline's wait.
func (p *Pipeline) Cancels(t event.Type) bool { return slices.Contains(p.Trigger.Unless, t) }

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
	Trigger     yaml.Node `yaml:"trigger"`
	Action      yaml.Node `yaml:"action"`
	Guardrails  yaml.Node `yaml:"guardrails"`
}

type guardrailsYAML struct {
	Cooldown          string  `yaml:"cooldown"`
	HoldoutPercent    float64 `yaml:"holdout_percent"`
	AttributionWindow string  `yaml:"attribution_window"`
	SuppressUnhappy   string  `yaml:"suppress_unhappy"`
}

type triggerYAML struct {
	After               []string `yaml:"after"`
	Unless              []string `yaml:"unless"`
	CancelWhenCartEmpty bool     `yaml:"cancel_when_cart_empty"`
	Wait                string   `yaml:"wait"`
}

type actionYAML struct {
	Kind   string `yaml:"kind"`
	Coupon struct {
		PercentOff int    `yaml:"percent_off"`
		ValidFor   string `yaml:"valid_for"`
		CodePrefix string `yaml:"code_prefix"`
	} `yaml:"coupon"`
}

// nameRe is what a pipeline name may be: it appears in metrics labels,
// trigger ids and timer rows.
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
		p, perrs := Parse(name, data)
		errs = append(errs, perrs...)
		if p == nil {
			continue
		}
		if other, dup := seen[p.Name]; dup {
			errs = append(errs, &Error{File: name, Line: p.nameLine, Msg: fmt.Sprintf("pipeline name %q already used by %s", p.Name, other)})
			continue
		}
		seen[p.Name] = name
		out = append(out, p)
	}
	if len(errs) > 0 {
		return out, errs
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pipeline: no pipelines in %s", prefix)
	}
	return out, nil
}

// Parse checks one pipeline file.
func Parse(name string, data []byte) (*Pipeline, Errors) {
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
	var f file
	if err := decodeStrict(doc.Content[0], &f); err != nil {
		return nil, Errors{yamlError(name, err)}
	}
	p := &Pipeline{Name: f.Name, Description: f.Description, File: name, nameLine: field(doc.Content[0], "name").Line}
	if f.Name == "" {
		at(doc.Content[0], "name is required")
	} else if !nameRe.MatchString(f.Name) {
		at(field(doc.Content[0], "name"), "name %q must be lower-case letters, digits and underscores, starting with a letter (at most 64)", f.Name)
	}

	var tr triggerYAML
	if f.Trigger.Kind == 0 {
		at(doc.Content[0], "trigger is required")
	} else if err := decodeStrict(&f.Trigger, &tr); err != nil {
		errs = append(errs, yamlError(name, err))
	} else {
		p.Trigger.After = types(tr.After, field(&f.Trigger, "after"), at)
		p.Trigger.Unless = types(tr.Unless, field(&f.Trigger, "unless"), at)
		p.Trigger.CancelWhenCartEmpty = tr.CancelWhenCartEmpty
		if len(p.Trigger.After) == 0 {
			at(&f.Trigger, "trigger.after must name at least one event type")
		}
		p.Trigger.Wait = DefaultWait
		if tr.Wait != "" {
			d, err := time.ParseDuration(tr.Wait)
			switch {
			case err != nil:
				at(field(&f.Trigger, "wait"), "trigger.wait: %v", err)
			case d <= 0:
				at(field(&f.Trigger, "wait"), "trigger.wait must be positive, got %s", d)
			default:
				p.Trigger.Wait = d
			}
		}
	}

	var ac actionYAML
	if f.Action.Kind == 0 {
		at(doc.Content[0], "action is required")
	} else if err := decodeStrict(&f.Action, &ac); err != nil {
		errs = append(errs, yamlError(name, err))
	} else {
		p.Action.Kind = ac.Kind
		switch ac.Kind {
		case ActionCoupon:
			c := field(&f.Action, "coupon")
			if c != &f.Action {
				// decodeStrict checks only the action's own keys; a
				// misspelt coupon key would otherwise fall back to a default.
				if err := checkKnown(c, &ac.Coupon); err != nil {
					errs = append(errs, yamlError(name, err))
				}
			}
			p.Action.Coupon = Coupon{PercentOff: ac.Coupon.PercentOff, CodePrefix: ac.Coupon.CodePrefix, ValidFor: 48 * time.Hour}
			if ac.Coupon.PercentOff < 1 || ac.Coupon.PercentOff > 100 {
				at(field(c, "percent_off"), "action.coupon.percent_off must be within 1..100, got %d", ac.Coupon.PercentOff)
			}
			if ac.Coupon.ValidFor != "" {
				d, err := time.ParseDuration(ac.Coupon.ValidFor)
				if err != nil || d <= 0 {
					at(field(c, "valid_for"), "action.coupon.valid_for must be a positive duration, got %q", ac.Coupon.ValidFor)
				} else {
					p.Action.Coupon.ValidFor = d
				}
			}
			if p.Action.Coupon.CodePrefix == "" {
				p.Action.Coupon.CodePrefix = "SPUR"
			}
		case "":
			at(&f.Action, "action.kind is required")
		default:
			at(field(&f.Action, "kind"), "action.kind %q is unknown (want %s)", ac.Kind, ActionCoupon)
		}
	}
	if f.Guardrails.Kind != 0 {
		var g guardrailsYAML
		if err := decodeStrict(&f.Guardrails, &g); err != nil {
			errs = append(errs, yamlError(name, err))
		} else {
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
					at(field(&f.Guardrails, d.key), "guardrails.%s must be a duration, got %q", d.key, d.val)
				}
				*d.dst = v
			}
			if g.HoldoutPercent < 0 || g.HoldoutPercent > 100 {
				at(field(&f.Guardrails, "holdout_percent"), "guardrails.holdout_percent must be within 0..100, got %v", g.HoldoutPercent)
			}
			p.Guardrails.HoldoutPercent = g.HoldoutPercent
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
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

func types(names []string, n *yaml.Node, at func(*yaml.Node, string, ...any)) []event.Type {
	var out []event.Type
	for i, s := range names {
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
