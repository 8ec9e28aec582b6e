package pipeline

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Env is what a pipeline's expressions see: the event being applied (zero
// when a timer fired), the customer's profile after the event was folded
// in, the pipeline's windowed counters and the moment of evaluation (the
// event's ts, or the timer's deadline).
//
//	when: profile.orders >= 2 && "unhappy" not in profile.tags
//	percent_off: 'profile.price_sensitivity >= 0.75 ? 20 : 10'
//	tag: {name: 'interested:${event.category}'}
type Env struct {
	Event    EventEnv           `expr:"event"`
	Profile  ProfileEnv         `expr:"profile"`
	Counters map[string]float64 `expr:"counters"`
	Now      time.Time          `expr:"now"`
}

// EventEnv is the event in expressions. Fields a type does not carry are
// zero ("" and 0).
type EventEnv struct {
	Type      string    `expr:"type"`
	EventID   string    `expr:"event_id"`
	TS        time.Time `expr:"ts"`
	Channel   string    `expr:"channel"`
	SKU       string    `expr:"sku"`
	Category  string    `expr:"category"`
	Brand     string    `expr:"brand"`
	Price     float64   `expr:"price"`
	Quantity  int       `expr:"quantity"`
	DwellMS   int       `expr:"dwell_ms"`
	Query     string    `expr:"query"`
	OrderID   string    `expr:"order_id"`
	Total     float64   `expr:"total"`
	Items     int       `expr:"items"`
	Rating    int       `expr:"rating"`
	Text      string    `expr:"text"`
	Kind      string    `expr:"kind"`
	Sentiment float64   `expr:"sentiment"`
}

// ProfileEnv is the customer's profile in expressions.
type ProfileEnv struct {
	CustomerID string `expr:"customer_id"`
	// RFM: days since the last order (-1 when none), number of orders,
	// total spend.
	RecencyDays   float64   `expr:"recency_days"`
	Frequency     int       `expr:"frequency"`
	Monetary      float64   `expr:"monetary"`
	Orders        int       `expr:"orders"`
	Spend         float64   `expr:"spend"`
	AvgOrderValue float64   `expr:"avg_order_value"`
	LastOrderAt   time.Time `expr:"last_order_at"`
	FirstSeen     time.Time `expr:"first_seen"`
	LastActivity  time.Time `expr:"last_activity"`
	// SilentDays is the days since the customer's last event.
	SilentDays     float64            `expr:"silent_days"`
	Events         int                `expr:"events"`
	CartValue      float64            `expr:"cart_value"`
	CartItems      int                `expr:"cart_items"`
	CartQuantity   int                `expr:"cart_quantity"`
	CartCategories []string           `expr:"cart_categories"`
	Tags           []string           `expr:"tags"`
	CategoryViews  map[string]float64 `expr:"category_views"`
	BrandViews     map[string]float64 `expr:"brand_views"`
	// PriceSensitivity is the share of recently viewed products not bought.
	PriceSensitivity float64 `expr:"price_sensitivity"`
	// Sentiment of the latest feedback text in [-1, 1]; LastRating 1–5.
	Sentiment  float64 `expr:"sentiment"`
	LastRating int     `expr:"last_rating"`
	// UTCOffsetMinutes of the customer's local time, when known.
	UTCOffsetMinutes int `expr:"utc_offset_minutes"`
}

// Expr is a compiled expression and where it was written.
type Expr struct {
	Src  string
	Line int
	prog *vm.Program
	// Whether it reads the profile or the counters, so that evaluation
	// builds only what an expression needs; ProfileParts says which of the
	// profile's costlier fields it reads.
	UsesProfile, UsesCounters bool
	ProfileParts              ProfileParts
}

// ProfileParts are the profile fields that cost allocations to build.
type ProfileParts uint8

// The costly profile fields.
const (
	PartTags ProfileParts = 1 << iota
	PartCategoryViews
	PartBrandViews
	PartCartCategories
	AllParts = PartTags | PartCategoryViews | PartBrandViews | PartCartCategories
)

var partOf = map[string]ProfileParts{
	"tags": PartTags, "category_views": PartCategoryViews, "brand_views": PartBrandViews, "cart_categories": PartCartCategories,
}

// Eval runs the expression.
func (x *Expr) Eval(env *Env) (any, error) {
	v, err := expr.Run(x.prog, env)
	if err != nil {
		return nil, fmt.Errorf("%s (line %d): %w", x.Src, x.Line, err)
	}
	return v, nil
}

// Bool evaluates a boolean expression.
func (x *Expr) Bool(env *Env) (bool, error) {
	v, err := x.Eval(env)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}

// Float evaluates a numeric expression.
func (x *Expr) Float(env *Env) (float64, error) {
	v, err := x.Eval(env)
	if err != nil {
		return 0, err
	}
	switch n := v.(type) {
	case int:
		return float64(n), nil
	case float64:
		return n, nil
	}
	return 0, fmt.Errorf("%s (line %d): got %T, want a number", x.Src, x.Line, v)
}

// String evaluates an expression to its text.
func (x *Expr) String(env *Env) (string, error) {
	v, err := x.Eval(env)
	if err != nil {
		return "", err
	}
	return text(v), nil
}

func text(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// kinds of result an expression may be compiled for.
type want int

const (
	wantBool want = iota
	wantNumber
	wantString
	wantAny
)

// compile checks src against Env's types at load. counters are the names
// the pipeline declares: a reference to another is an error here rather
// than a silent zero at run time.
func compile(src string, line int, w want, counters map[string]bool) (*Expr, error) {
	opts := []expr.Option{expr.Env(Env{})}
	switch w {
	case wantBool:
		opts = append(opts, expr.AsBool())
	case wantNumber:
		opts = append(opts, expr.AsFloat64())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %s", src, explain(oneLine(err.Error())))
	}
	x := &Expr{Src: src, Line: line, prog: prog}
	v := &refs{counters: counters}
	node := prog.Node()
	ast.Walk(&node, v)
	if v.err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, v.err)
	}
	x.UsesProfile, x.UsesCounters, x.ProfileParts = v.profile, v.counter, v.parts
	if v.profile && (v.profileWhole || v.members < 0) {
		x.ProfileParts = AllParts
	}
	if w == wantString {
		if k := node.Type(); k != nil && k.Kind() != reflect.String && k.Kind() != reflect.Interface {
			return nil, fmt.Errorf("expression %q is a %s, want a string", src, k)
		}
	}
	return x, nil
}

// explain names the environment's parts as pipelines write them, and lists
// the fields of the one an unknown field was asked of.
func explain(msg string) string {
	for _, part := range []struct {
		goName, name string
		typ          reflect.Type
	}{
		{"pipeline.ProfileEnv", "profile", reflect.TypeFor[ProfileEnv]()},
		{"pipeline.EventEnv", "event", reflect.TypeFor[EventEnv]()},
	} {
		if !strings.Contains(msg, part.goName) {
			continue
		}
		msg = strings.ReplaceAll(strings.ReplaceAll(msg, "type "+part.goName, part.name), part.goName, part.name)
		if strings.Contains(msg, "has no field") {
			names := make([]string, part.typ.NumField())
			for i := range names {
				names[i] = part.typ.Field(i).Tag.Get("expr")
			}
			msg += " (" + part.name + " has: " + strings.Join(names, ", ") + ")"
		}
	}
	return msg
}

// oneLine keeps expr's message but not its source excerpt with a caret.
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

type refs struct {
	counters         map[string]bool
	profile, counter bool
	parts            ProfileParts
	// profileWhole: profile is used other than through a named member.
	profileWhole bool
	members      int
	err          error
}

func (r *refs) Visit(n *ast.Node) {
	switch n := (*n).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "profile":
			r.profile = true
			r.members--
		case "counters":
			r.counter = true
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if ok && id.Value == "profile" {
			if s, ok := n.Property.(*ast.StringNode); ok {
				r.parts |= partOf[s.Value]
				r.members++
			} else {
				r.profileWhole = true
			}
			return
		}
		if !ok || id.Value != "counters" {
			return
		}
		if s, ok := n.Property.(*ast.StringNode); ok && !r.counters[s.Value] && r.err == nil {
			r.err = fmt.Errorf("unknown counter %q (declare it under counters:)", s.Value)
		}
	}
}

// Template is text with ${expression} parts, such as
// "interested:${event.category}".
type Template struct {
	Src   string
	parts []templatePart
}

type templatePart struct {
	lit string
	x   *Expr
}

// UsesProfile reports whether any part reads the profile.
func (t *Template) UsesProfile() bool {
	for _, p := range t.parts {
		if p.x != nil && p.x.UsesProfile {
			return true
		}
	}
	return false
}

// ProfileParts are the costly profile fields the parts read.
func (t *Template) ProfileParts() ProfileParts {
	var pp ProfileParts
	for _, p := range t.parts {
		if p.x != nil {
			pp |= p.x.ProfileParts
		}
	}
	return pp
}

// UsesCounters reports whether any part reads the counters.
func (t *Template) UsesCounters() bool {
	for _, p := range t.parts {
		if p.x != nil && p.x.UsesCounters {
			return true
		}
	}
	return false
}

func compileTemplate(src string, line int, counters map[string]bool) (*Template, error) {
	t := &Template{Src: src}
	rest := src
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, templatePart{lit: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("template %q: ${ without a closing }", src)
		}
		x, err := compile(rest[i+2:i+j], line, wantAny, counters)
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", src, err)
		}
		t.parts = append(t.parts, templatePart{x: x})
		rest = rest[i+j+1:]
	}
}

// Render evaluates the template.
func (t *Template) Render(env *Env) (string, error) {
	if len(t.parts) == 1 && t.parts[0].x == nil {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.x == nil {
			b.WriteString(p.lit)
			continue
		}
		s, err := p.x.String(env)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}
