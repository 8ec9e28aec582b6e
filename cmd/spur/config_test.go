package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestConfigSources checks that a setting comes from the flag, else the
// SPUR_* environment variable, else the YAML file, else the default.
func TestConfigSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "spur.yaml")
	if err := os.WriteFile(file, []byte("group: from-yaml\nstaleness: 30m\ntransactions: true\ndata-dir: /yaml/dir\nrun:\n  brokers: yaml-broker:9092\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SPUR_DATA_DIR", "/env/dir")
	t.Setenv("SPUR_SESSION_TIMEOUT", "7s")

	var cli CLI
	p, err := newParser(&cli)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := p.Parse([]string{"--config", file, "--session-timeout", "12s", "run"})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Command() != "run" {
		t.Errorf("command %q", ctx.Command())
	}
	c := cli.Config
	if c.Group != "from-yaml" || c.Staleness != 30*time.Minute || !c.Transactions {
		t.Errorf("yaml not applied: group=%q staleness=%s transactions=%v", c.Group, c.Staleness, c.Transactions)
	}
	if c.DataDir != "/env/dir" {
		t.Errorf("env must win over yaml: data-dir=%q", c.DataDir)
	}
	if c.SessionTimeout != 12*time.Second {
		t.Errorf("flag must win over env: session-timeout=%s", c.SessionTimeout)
	}
	if cli.Run.Brokers != "yaml-broker:9092" {
		t.Errorf("subcommand key from yaml: brokers=%q", cli.Run.Brokers)
	}
	if c.ClickstreamTopic != "shop.clickstream" || c.HTTP != "127.0.0.1:9644" {
		t.Errorf("defaults: %q %q", c.ClickstreamTopic, c.HTTP)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
}

// TestBenchPassesEngineTuning: the storage settings given to `spur bench`
// (here as flags before it) reach the engine under test, whose own command
// line parses them back to the same values; --engine-arg flags come after
// them and win.
func TestBenchPassesEngineTuning(t *testing.T) {
	var bench CLI
	p, err := newParser(&bench)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse([]string{"--pebble-compression", "none", "--pebble-memtable-mb", "8", "--customer-cache-mb", "100", "--memory-limit-mb", "300",
		"--pebble-l0-compaction", "9", "bench", "--engine-arg=--pebble-compactions=1"}); err != nil {
		t.Fatal(err)
	}
	args := bench.Bench.engineArgs(&bench.Config)
	var engine CLI
	p, err = newParser(&engine)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(append(args, "check")); err != nil {
		t.Fatalf("the engine's command line %q: %v", args, err)
	}
	e := engine.Config
	if e.PebbleCompression != "none" || e.PebbleMemTableMB != 8 || e.CustomerCacheMB != 100 || e.MemoryLimitMB != 300 || e.PebbleCompactions != 1 || e.PebbleL0Compact != 9 {
		t.Errorf("engine got compression %q, memtable %d MiB, customer cache %d MiB, memory limit %d MiB, compactions %d, L0 compaction threshold %d from %q",
			e.PebbleCompression, e.PebbleMemTableMB, e.CustomerCacheMB, e.MemoryLimitMB, e.PebbleCompactions, e.PebbleL0Compact, args)
	}
}
