package pipetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

// DefaultStart is the simulated clock's start when a file names none.
var DefaultStart = time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)

// File is a pipeline test file.
type File struct {
	Start *time.Time `yaml:"start"`
	// Cap sets the engine's global cap for the file's tests (spur run's
	// --cap-triggers and --cap-window).
	Cap   *Cap   `yaml:"cap"`
	Tests []Test `yaml:"tests"`
}

// Cap is the global cap across pipelines.
type Cap struct {
	Triggers int      `yaml:"triggers"`
	Window   Duration `yaml:"window"`
}

// Test is one scenario.
type Test struct {
	Name     string     `yaml:"name"`
	Events   []Event    `yaml:"events"`
	RunUntil Duration   `yaml:"run_until"`
	Expect   []Expected `yaml:"expect"`
	// ExpectHistory lists entries the customers' trigger histories must
	// hold (what `spur inspect customer` shows): why a customer did or did
	// not get a trigger.
	ExpectHistory []History `yaml:"expect_history"`
	// ExpectTags lists customers' active tags at the end of the run.
	ExpectTags map[string][]string `yaml:"expect_tags"`
}

// History is an expected trigger-history entry.
type History struct {
	CustomerID  string   `yaml:"customer_id"`
	Rule        string   `yaml:"rule"`
	Result      string   `yaml:"result"`
	QualifiedAt Duration `yaml:"qualified_at"`
}

// Event is an input event published at start+At.
type Event struct {
	At    Duration       `yaml:"at"`
	Event map[string]any `yaml:"event"`
}

// Expected is a trigger the test expects. Empty fields are not compared.
type Expected struct {
	Rule          string   `yaml:"rule"`
	Kind          string   `yaml:"kind"`
	Variant       string   `yaml:"variant"`
	CustomerID    string   `yaml:"customer_id"`
	QualifiedAt   Duration `yaml:"qualified_at"`
	CauseEventIDs []string `yaml:"cause_event_ids"`
	PercentOff    int      `yaml:"percent_off"`
	CartValue     float64  `yaml:"cart_value"`
	CartItems     int      `yaml:"cart_items"`
	FreeShipping  *bool    `yaml:"free_shipping"`
	Tag           string   `yaml:"tag"`
	// TagExpiresAt is the tag_added record's expiry, after start.
	TagExpiresAt Duration          `yaml:"tag_expires_at"`
	Message      string            `yaml:"message"`
	Data         map[string]string `yaml:"data"`
	// EmittedAt is when the record was written, after start (a trigger
	// held through quiet hours is emitted after it qualified).
	EmittedAt Duration `yaml:"emitted_at"`
}

// Duration is a time.Duration written as "10s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: duration %q: %w", n.Line, n.Value, err)
	}
	*d = Duration(v)
	return nil
}

// Result is the outcome of one test.
type Result struct {
	File     string
	Name     string
	Failures []string
}

// Passed reports whether the test passed.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// RunDir runs every *_test.yaml in dir against the pipelines in dir.
func RunDir(ctx context.Context, dir string) ([]Result, error) {
	pipes, err := pipeline.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(os.DirFS(dir), "*_test.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var results []Result
	for _, f := range files {
		path := filepath.Join(dir, f)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		rs, err := RunFile(ctx, path, data, pipes)
		if err != nil {
			return nil, err
		}
		results = append(results, rs...)
	}
	return results, nil
}

// RunFile runs the tests of one file.
func RunFile(ctx context.Context, name string, data []byte, pipes []*pipeline.Pipeline) ([]Result, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(f.Tests) == 0 {
		return nil, fmt.Errorf("%s: no tests", name)
	}
	start := DefaultStart
	if f.Start != nil {
		start = f.Start.UTC()
	}
	var out []Result
	for _, t := range f.Tests {
		r := Result{File: name, Name: t.Name}
		fails, err := runTest(ctx, start, f.Cap, t, pipes)
		if err != nil {
			return nil, fmt.Errorf("%s: test %q: %w", name, t.Name, err)
		}
		r.Failures = fails
		out = append(out, r)
	}
	return out, nil
}

// collector is the broker's stand-in: it keeps what the worker produces
// and acknowledges it at once.
type collector struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (c *collector) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	c.mu.Lock()
	c.recs = append(c.recs, r)
	c.mu.Unlock()
	promise(r, nil)
}

func runTest(ctx context.Context, start time.Time, limit *Cap, t Test, pipes []*pipeline.Pipeline) ([]string, error) {
	clock := clockwork.NewFakeClockAt(start)
	store, err := state.Open("pipetest", state.WithFS(vfs.NewMem()), state.WithSync(false))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	dec, err := event.NewDecoder(event.WithClock(clock))
	if err != nil {
		return nil, err
	}
	out := &collector{}
	ecfg := engine.Config{Partitions: 1}
	if limit != nil {
		ecfg.MaxTriggersPerCustomer, ecfg.CapWindow = limit.Triggers, time.Duration(limit.Window)
	}
	eng, err := engine.New(ecfg, store, dec, pipes, out, engine.WithClock(clock))
	if err != nil {
		return nil, err
	}
	w, err := eng.StartWorker(0, 1)
	if err != nil {
		return nil, err
	}
	defer w.Stop(context.Background())
	cfg := eng.Config()

	offsets := map[string]int64{}
	var fails []string
	for i, e := range t.Events {
		at := start.Add(time.Duration(e.At))
		if at.Before(clock.Now()) {
			return nil, fmt.Errorf("event %d at %s is before the previous one", i+1, time.Duration(e.At))
		}
		if err := advance(ctx, w, clock, at); err != nil {
			return nil, err
		}
		ev := map[string]any{"event_id": fmt.Sprintf("e-%d", i+1), "ts": at.Format(time.RFC3339Nano)}
		for k, v := range e.Event {
			ev[k] = v
		}
		value, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i+1, err)
		}
		topic := cfg.ClickstreamTopic
		if ev["type"] == string(event.Order) {
			topic = cfg.OrdersTopic
		}
		key, _ := ev["customer_id"].(string)
		if key == "" {
			key, _ = ev["anonymous_id"].(string)
		}
		rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Timestamp: at, Offset: offsets[topic]}
		offsets[topic]++
		if err := w.Apply(ctx, engine.Batch{Topic: topic, Records: []*kgo.Record{rec}, HighWatermark: offsets[topic]}); err != nil {
			return nil, err
		}
	}
	end := start.Add(time.Duration(t.RunUntil))
	if end.Before(clock.Now()) {
		end = clock.Now()
	}
	if err := advance(ctx, w, clock, end); err != nil {
		return nil, err
	}

	out.mu.Lock()
	recs := slices.Clone(out.recs)
	out.mu.Unlock()
	var got []emit.Trigger
	for _, r := range recs {
		if r.Topic == cfg.DLQTopic {
			fails = append(fails, fmt.Sprintf("event dead-lettered: %s (%s)", emit.Header(r, emit.HeaderError), emit.Header(r, emit.HeaderDetail)))
			continue
		}
		var tr emit.Trigger
		if err := json.Unmarshal(r.Value, &tr); err != nil {
			return nil, err
		}
		got = append(got, tr)
	}
	fails = append(fails, compare(start, t.Expect, got)...)
	for _, h := range t.ExpectHistory {
		v, err := eng.Inspect(h.CustomerID)
		if err != nil {
			return nil, err
		}
		found := false
		for _, o := range v.Outcomes {
			if (h.Rule == "" || o.Rule == h.Rule) && o.Result == h.Result && (h.QualifiedAt == 0 || o.QualifiedAt.Equal(start.Add(time.Duration(h.QualifiedAt)))) {
				found = true
			}
		}
		if !found {
			fails = append(fails, fmt.Sprintf("history of %s lacks %s %s; it holds %+v", h.CustomerID, h.Rule, h.Result, v.Outcomes))
		}
	}
	for id, want := range t.ExpectTags {
		v, err := eng.Inspect(id)
		if err != nil {
			return nil, err
		}
		var have []string
		for _, tg := range v.Tags {
			have = append(have, tg.Name)
		}
		sort.Strings(have)
		want = slices.Clone(want)
		sort.Strings(want)
		if !slices.Equal(have, want) {
			fails = append(fails, fmt.Sprintf("tags of %s = %v, want %v", id, have, want))
		}
	}
	return fails, nil
}

// advance moves the clock to at in steps of 1s (or 1/2000 of a longer
// span, so that a test may run for days), letting the worker fire what
// falls due on the way. Triggers carry their qualifying moment, not the
// step's.
func advance(ctx context.Context, w *engine.Worker, clock *clockwork.FakeClock, at time.Time) error {
	step := max(time.Second, at.Sub(clock.Now())/2000)
	for clock.Now().Before(at) {
		d := min(at.Sub(clock.Now()), step)
		clock.Advance(d)
		if err := w.Apply(ctx, engine.Batch{HighWatermark: -1}); err != nil {
			return err
		}
	}
	return w.Apply(ctx, engine.Batch{HighWatermark: -1})
}

func compare(start time.Time, want []Expected, got []emit.Trigger) []string {
	var fails []string
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, g := range got {
			if !used[i] && matches(start, w, g) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			fails = append(fails, "missing: "+describeExpected(w))
		}
	}
	for i, g := range got {
		if !used[i] {
			fails = append(fails, fmt.Sprintf("unexpected: %s %s (%s) for %s qualified at +%s (causes %v)%s", g.Rule, g.Kind, g.Variant, g.CustomerID, g.QualifiedAt.Sub(start), g.CauseEventIDs, payloadNote(g.Payload)))
		}
	}
	return fails
}

func matches(start time.Time, w Expected, g emit.Trigger) bool {
	switch {
	case w.Rule != "" && w.Rule != g.Rule,
		w.Kind != "" && w.Kind != g.Kind,
		w.Variant != "" && w.Variant != g.Variant,
		w.CustomerID != "" && w.CustomerID != g.CustomerID,
		w.QualifiedAt != 0 && !start.Add(time.Duration(w.QualifiedAt)).Equal(g.QualifiedAt),
		w.CauseEventIDs != nil && !slices.Equal(w.CauseEventIDs, g.CauseEventIDs):
		return false
	}
	if w.PercentOff != 0 && (g.Payload.Coupon == nil || g.Payload.Coupon.PercentOff != w.PercentOff) {
		return false
	}
	if w.CartValue != 0 && (g.Payload.Cart == nil || math.Abs(g.Payload.Cart.Value-w.CartValue) > 0.005) {
		return false
	}
	if w.CartItems != 0 && (g.Payload.Cart == nil || len(g.Payload.Cart.Items) != w.CartItems) {
		return false
	}
	if w.FreeShipping != nil && (g.Payload.Coupon == nil || g.Payload.Coupon.FreeShipping != *w.FreeShipping) {
		return false
	}
	if w.Tag != "" && g.Payload.Tag != w.Tag {
		return false
	}
	if w.TagExpiresAt != 0 && (g.Payload.TagExpiresAt == nil || !start.Add(time.Duration(w.TagExpiresAt)).Equal(*g.Payload.TagExpiresAt)) {
		return false
	}
	if w.Message != "" && (g.Payload.Notify == nil || g.Payload.Notify.Message != w.Message) {
		return false
	}
	for k, v := range w.Data {
		if g.Payload.Notify == nil || g.Payload.Notify.Data[k] != v {
			return false
		}
	}
	if w.EmittedAt != 0 && g.EmittedAt.Before(start.Add(time.Duration(w.EmittedAt))) {
		return false
	}
	return true
}

func describeExpected(w Expected) string {
	var parts []string
	add := func(k string, v any, set bool) {
		if set {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	add("rule", w.Rule, w.Rule != "")
	add("kind", w.Kind, w.Kind != "")
	add("variant", w.Variant, w.Variant != "")
	add("customer_id", w.CustomerID, w.CustomerID != "")
	add("qualified_at", "+"+time.Duration(w.QualifiedAt).String(), w.QualifiedAt != 0)
	add("cause_event_ids", w.CauseEventIDs, w.CauseEventIDs != nil)
	add("percent_off", w.PercentOff, w.PercentOff != 0)
	add("cart_value", w.CartValue, w.CartValue != 0)
	add("cart_items", w.CartItems, w.CartItems != 0)
	if w.FreeShipping != nil {
		add("free_shipping", *w.FreeShipping, true)
	}
	add("tag", w.Tag, w.Tag != "")
	add("tag_expires_at", "+"+time.Duration(w.TagExpiresAt).String(), w.TagExpiresAt != 0)
	add("message", w.Message, w.Message != "")
	add("data", w.Data, w.Data != nil)
	add("emitted_at", "+"+time.Duration(w.EmittedAt).String(), w.EmittedAt != 0)
	return strings.Join(parts, " ")
}

func payloadNote(p emit.Payload) string {
	switch {
	case p.Tag != "":
		return " tag " + p.Tag
	case p.Coupon != nil:
		return fmt.Sprintf(" coupon %d%% free_shipping=%v", p.Coupon.PercentOff, p.Coupon.FreeShipping)
	case p.Notify != nil:
		return fmt.Sprintf(" notify %s %v", p.Notify.Message, p.Notify.Data)
	}
	return ""
}

// ErrFailed is returned by callers when some test failed.
var ErrFailed = errors.New("pipeline tests failed")
