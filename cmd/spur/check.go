package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spur-crm/spur/pkg/config"
	"github.com/spur-crm/spur/pkg/pipeline"
)

// CheckCmd checks pipelines.
type CheckCmd struct {
	Dir string `arg:"" optional:"" help:"Pipeline directory (default: --pipelines)."`
}

// Run checks the pipelines and prints one line per pipeline or error.
func (c *CheckCmd) Run(cfg *config.Config) error {
	dir := c.Dir
	if dir == "" {
		dir = cfg.Pipelines
	}
	pipes, err := pipeline.LoadDir(dir)
	var perrs pipeline.Errors
	if errors.As(err, &perrs) {
		for _, e := range perrs {
			fmt.Println(e.Error())
		}
		return fmt.Errorf("%d error(s) in %s", len(perrs), dir)
	}
	if err != nil {
		return err
	}
	untested := map[string]bool{}
	for _, p := range pipes {
		fmt.Printf("ok  %s (%s)\n", p.Name, p.File)
		test := strings.TrimSuffix(p.File, ".yaml") + "_test.yaml"
		if _, err := os.Stat(test); err != nil && !untested[p.File] {
			untested[p.File] = true
		}
	}
	for f := range untested {
		fmt.Printf("warning: %s has no test file %s (see spur test)\n", f, strings.TrimSuffix(filepath.Base(f), ".yaml")+"_test.yaml")
	}
	return nil
}
