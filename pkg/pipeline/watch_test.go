package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestReloaderAppliesCheckedChangesOnly(t *testing.T) {
	dir := writeFiles(t, map[string]string{"x.yaml": valid})
	var applied [][]*Pipeline
	var failed []error
	r := NewReloader(dir, time.Second, func(p []*Pipeline) { applied = append(applied, p) }, func(err error) { failed = append(failed, err) })

	if r.Check(false) {
		t.Fatal("reloaded an unchanged directory")
	}
	// A new valid file: the new set has both.
	if err := os.WriteFile(filepath.Join(dir, "y.yaml"), []byte(strings.Replace(valid, "name: x", "name: y", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !r.Check(false) || len(applied) != 1 || len(applied[0]) != 2 {
		t.Fatalf("applied %d sets (last %v), want one set of 2", len(applied), applied)
	}
	// A broken edit is reported with file:line and not applied.
	if err := os.WriteFile(filepath.Join(dir, "y.yaml"), []byte(strings.Replace(valid, "percent_off: 15", "percent_off: 'profile.nope'", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if r.Check(false) || len(applied) != 1 || len(failed) != 1 {
		t.Fatalf("broken set: applied %d, failed %d; want 1 and 1", len(applied), len(failed))
	}
	if msg := failed[0].Error(); !strings.Contains(msg, "y.yaml:11:") || !strings.Contains(msg, "nope") {
		t.Fatalf("error %q does not name the place and the field", msg)
	}
	// Not reported again until it changes.
	if r.Check(false) || len(failed) != 1 {
		t.Fatalf("the same broken set was reported again")
	}
	// Fixing it applies it.
	if err := os.Remove(filepath.Join(dir, "y.yaml")); err != nil {
		t.Fatal(err)
	}
	if !r.Check(false) || len(applied) != 2 || len(applied[1]) != 1 {
		t.Fatalf("fixed set not applied: %d sets", len(applied))
	}
}

func TestReloaderRunsOnTickAndTrigger(t *testing.T) {
	dir := writeFiles(t, map[string]string{"x.yaml": valid})
	clock := clockwork.NewFakeClock()
	got := make(chan int, 4)
	r := NewReloader(dir, time.Second, func(p []*Pipeline) { got <- len(p) }, func(err error) { t.Error(err) })
	r.Clock = clock
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	// SIGHUP's path: a forced reload of the same files.
	r.Trigger()
	if n := <-got; n != 1 {
		t.Fatalf("triggered reload loaded %d pipelines, want 1", n)
	}
	// The watch: a change is picked up at the next tick.
	if err := os.WriteFile(filepath.Join(dir, "y.yaml"), []byte(strings.Replace(valid, "name: x", "name: y", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if n := <-got; n != 2 {
		t.Fatalf("watched reload loaded %d pipelines, want 2", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
