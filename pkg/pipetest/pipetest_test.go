package pipetest

import (
	"context"
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
		"wrong moment":                      {"missing: customer_id=c-1 qualified_at=+11s", "unexpected: cart_abandonment coupon for c-1 qualified at +10s"},
		"expects nothing but gets a coupon": {"unexpected: cart_abandonment coupon for c-2"},
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
