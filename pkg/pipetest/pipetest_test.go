package pipetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spur-crm/spur/pkg/pipeline"
)

func TestShippedPipelineTestsPass(t *testing.T) {
	results, err := RunDir(context.Background(), "../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no pipeline tests found")
	}
	for _, r := range results {
		if !r.Passed() {
			t.Errorf("%s: %s: %v", r.File, r.Name, r.Failures)
		}
	}
}

// TestRunnerReportsFailures proves the runner fails a test whose
// expectations are wrong, naming what is missing and what is unexpected,
// and reports dead-lettered input.
func TestRunnerReportsFailures(t *testing.T) {
	pipes, err := pipeline.LoadDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	file := []byte(`
tests:
  - name: wrong moment
    events:
      - at: 0s
        event: {type: cart_add, customer_id: c-1, sku: s, price: 10, quantity: 1}
    run_until: 1m
    expect:
      - {customer_id: c-1, qualified_at: 11s}
  - name: expects nothing but gets a coupon
    events:
      - at: 0s
        event: {type: cart_add, customer_id: c-2, sku: s, price: 10, quantity: 1}
    run_until: 1m
  - name: bad input
    events:
      - at: 0s
        event: {type: cart_add, customer_id: c-3, sku: s, price: cheap, quantity: 1}
    run_until: 1m
  - name: too short a run
    events:
      - at: 0s
        event: {type: cart_add, customer_id: c-4, sku: s, price: 10, quantity: 1}
    run_until: 9s
    expect:
      - {customer_id: c-4}
`)
	results, err := RunFile(context.Background(), "x_test.yaml", file, pipes)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"wrong moment":                      {"missing: customer_id=c-1 qualified_at=+11s", "unexpected: cart_abandonment coupon (treatment) for c-1 qualified at +10s"},
		"expects nothing but gets a coupon": {"unexpected: cart_abandonment coupon (treatment) for c-2"},
		"bad input":                         {"event dead-lettered: invalid_field"},
		"too short a run":                   {"missing: customer_id=c-4"},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d", len(results), len(want))
	}
	for _, r := range results {
		if r.Passed() {
			t.Errorf("%q passed; it must fail", r.Name)
			continue
		}
		all := strings.Join(r.Failures, "\n")
		for _, frag := range want[r.Name] {
			if !strings.Contains(all, frag) {
				t.Errorf("%q: failures %q lack %q", r.Name, all, frag)
			}
		}
	}
}

func TestRunFileRejectsUnknownFields(t *testing.T) {
	_, err := RunFile(context.Background(), "x_test.yaml", []byte("tests:\n  - name: a\n    evnets: []\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "evnets") {
		t.Fatalf("err = %v, want one naming the unknown field", err)
	}
}

// TestGuardrails runs a guarded copy of cart_abandonment: a cooldown, a
// holdout of everyone, and the global cap.
func TestGuardrails(t *testing.T) {
	pipe, err := os.ReadFile("../../pipelines/cart_abandonment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The shipped guardrails give way to each case's own.
	if i := bytes.Index(pipe, []byte("\nguardrails:")); i >= 0 {
		pipe = pipe[:i+1]
	}
	load := func(extra string) []*pipeline.Pipeline {
		t.Helper()
		p, errs := pipeline.Parse("guarded.yaml", append(pipe, []byte(extra)...))
		if errs != nil {
			t.Fatal(errs)
		}
		return []*pipeline.Pipeline{p}
	}
	run := func(pipes []*pipeline.Pipeline, file string) {
		t.Helper()
		results, err := RunFile(context.Background(), "guard_test.yaml", []byte(file), pipes)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if !r.Passed() {
				t.Errorf("%s: %v", r.Name, r.Failures)
			}
		}
	}
	twoCarts := `
    events:
      - at: 0s
        event: {type: cart_add, customer_id: c-1, sku: s-1, price: 10, quantity: 1}
      - at: 30s
        event: {type: cart_add, customer_id: c-1, sku: s-2, price: 5, quantity: 1}
      - at: 2h
        event: {type: cart_add, customer_id: c-1, sku: s-3, price: 1, quantity: 1}
    run_until: 3h
`
	run(load("guardrails:\n  cooldown: 1h\n"), `
tests:
  - name: a second abandonment within the cooldown is suppressed`+twoCarts+`    expect:
      - {customer_id: c-1, qualified_at: 10s, variant: treatment}
      - {customer_id: c-1, qualified_at: 2h0m10s, variant: treatment}
`)
	run(load("guardrails:\n  holdout_percent: 100\n"), `
tests:
  - name: a holdout customer is recorded without a coupon
    events:
      - at: 0s
        event: {type: cart_add, customer_id: c-1, sku: s-1, price: 10, quantity: 1}
    run_until: 1m
    expect:
      - {customer_id: c-1, qualified_at: 10s, variant: holdout, cart_value: 10}
`)
	run(load("guardrails:\n  attribution_window: 24h\n  cooldown: 1h\n"), `
tests:
  - name: an order after the coupon converts it, once
    events:
      - at: 0s
        event: {type: cart_add, customer_id: c-1, sku: s-1, price: 10, quantity: 1}
      - at: 1m
        event: {type: order, customer_id: c-1, order_id: o-1, total: 10, items: [{sku: s-1, price: 10, quantity: 1}]}
      - at: 2m
        event: {type: order, customer_id: c-1, order_id: o-2, total: 5, items: [{sku: s-2, price: 5, quantity: 1}]}
      - at: 3m
        event: {type: cart_add, customer_id: c-1, sku: s-3, price: 1, quantity: 1}
    run_until: 1h
    expect:
      - {customer_id: c-1, kind: coupon, qualified_at: 10s}
      - {customer_id: c-1, kind: conversion, variant: treatment, qualified_at: 1m, cause_event_ids: [e-2]}
  - name: an order after the window converts nothing
    events:
      - at: 0s
        event: {type: cart_add, customer_id: c-1, sku: s-1, price: 10, quantity: 1}
      - at: 25h
        event: {type: order, customer_id: c-1, order_id: o-1, total: 10, items: [{sku: s-1, price: 10, quantity: 1}]}
    run_until: 26h
    expect:
      - {customer_id: c-1, kind: coupon, qualified_at: 10s}
`)
	run(load("guardrails:\n  suppress_unhappy: 720h\n"), `
tests:
  - name: a customer who just complained gets no coupon
    events:
      - at: 0s
        event: {type: feedback, customer_id: c-1, text: "Terrible quality, the worst shop ever"}
      - at: 1m
        event: {type: cart_add, customer_id: c-1, sku: s-1, price: 10, quantity: 1}
    run_until: 1h
    expect: []
  - name: a low rating suppresses too (Chinese text, neutral)
    events:
      - at: 0s
        event: {type: feedback, customer_id: c-1, rating: 1, text: "包裹"}
      - at: 1m
        event: {type: cart_add, customer_id: c-1, sku: s-1, price: 10, quantity: 1}
    run_until: 1h
    expect: []
  - name: a happy customer gets the coupon
    events:
      - at: 0s
        event: {type: feedback, customer_id: c-1, rating: 5, text: "质量很好，物流很快"}
      - at: 1m
        event: {type: cart_add, customer_id: c-1, sku: s-1, price: 10, quantity: 1}
    run_until: 1h
    expect:
      - {customer_id: c-1, qualified_at: 1m10s}
`)
	run(load(""), `
cap: {triggers: 2, window: 24h}
tests:
  - name: the global cap stops the third trigger`+twoCarts+`    expect:
      - {customer_id: c-1, qualified_at: 10s}
      - {customer_id: c-1, qualified_at: 40s}
`)
}

func TestHoldoutIsStableAndProportional(t *testing.T) {
	p, errs := pipeline.Parse("h.yaml", []byte("name: h\ntrigger: {after: [cart_add]}\naction: {kind: coupon, coupon: {percent_off: 5}}\nguardrails: {holdout_percent: 10}\n"))
	if errs != nil {
		t.Fatal(errs)
	}
	in := 0
	for i := 0; i < 10000; i++ {
		id := fmt.Sprintf("c-%d", i)
		if p.InHoldout(id) {
			in++
		}
		if p.InHoldout(id) != p.InHoldout(id) {
			t.Fatal("holdout assignment not stable")
		}
	}
	if in < 900 || in > 1100 {
		t.Errorf("%d of 10000 in a 10%% holdout", in)
	}
}
