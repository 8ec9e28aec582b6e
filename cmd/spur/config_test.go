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
