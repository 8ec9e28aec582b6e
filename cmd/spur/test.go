package main

import (
	"context"
	"fmt"

	"github.com/spur-crm/spur/pkg/config"
	"github.com/spur-crm/spur/pkg/pipetest"
)

// TestCmd runs pipeline test files.
type TestCmd struct {
	Dir string `arg:"" optional:"" help:"Pipeline directory (default: --pipelines)."`
}

// Run runs every *_test.yaml and prints one line per test.
func (c *TestCmd) Run(cfg *config.Config) error {
	dir := c.Dir
	if dir == "" {
		dir = cfg.Pipelines
	}
	results, err := pipetest.RunDir(context.Background(), dir)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Passed() {
			fmt.Printf("ok    %s: %s\n", r.File, r.Name)
			continue
		}
		failed++
		fmt.Printf("FAIL  %s: %s\n", r.File, r.Name)
		for _, f := range r.Failures {
			fmt.Printf("        %s\n", f)
		}
	}
	fmt.Printf("pipeline tests: %d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 {
		return pipetest.ErrFailed
	}
	return nil
}
