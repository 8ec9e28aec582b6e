// Command spur is the real-time trigger engine: `spur dev` runs it with an
// embedded broker, `spur run` against a Kafka cluster, `spur check` checks
// pipelines.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"
	kongyaml "github.com/alecthomas/kong-yaml"

	"github.com/spur-crm/spur/pkg/config"
)

var version = "dev"

// CLI is the command line. Every flag is also SPUR_<FLAG> in the
// environment and a key of the YAML file given with --config.
type CLI struct {
	ConfigFile kong.ConfigFlag  `name:"config" short:"c" help:"YAML config file (keys are flag names, e.g. data-dir: /var/lib/spur)." type:"existingfile"`
	Version    kong.VersionFlag `help:"Print the version."`
	config.Config

	Dev     DevCmd     `cmd:"" help:"Run spur with an embedded Kafka-protocol broker (and, with --demo, demo traffic)."`
	Run     RunCmd     `cmd:"" help:"Run spur against a Kafka cluster as a consumer group."`
	Check   CheckCmd   `cmd:"" help:"Check pipeline files and report errors with file:line."`
	Inspect InspectCmd `cmd:"" help:"Ask a running spur (at --http) about a customer."`
	Test    TestCmd    `cmd:"" help:"Run the pipelines' *_test.yaml files (events, clock advances, expected triggers)."`
	Bench   BenchCmd   `cmd:"" help:"Measure spur: throughput against a plain consumer, trigger latency, recovery after kill -9, memory (see docs/BENCHMARKS.md)."`
}

func main() {
	var cli CLI
	parser, err := newParser(&cli)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spur:", err)
		os.Exit(2)
	}
	ctx, err := parser.Parse(os.Args[1:])
	parser.FatalIfErrorf(err)
	if err := ctx.Run(&cli.Config); err != nil {
		fmt.Fprintln(os.Stderr, "spur:", err)
		os.Exit(1)
	}
}

// newParser builds the command line: flags, then SPUR_* environment
// variables, then the --config YAML file, then the defaults.
func newParser(cli *CLI) (*kong.Kong, error) {
	return kong.New(cli,
		kong.Name("spur"),
		kong.Description("spur: real-time trigger engine for e-commerce CRM (Kafka in, triggers out)."),
		kong.UsageOnError(),
		kong.Configuration(envFirst(kongyaml.Loader)),
		kong.DefaultEnvars("SPUR"),
		kong.Vars{"version": version},
	)
}

// envFirst wraps a config file loader so that a flag's SPUR_* environment
// variable, when set, wins over the file (flag > environment > file >
// default, as twelve-factor deployments expect).
func envFirst(load kong.ConfigurationLoader) kong.ConfigurationLoader {
	return func(r io.Reader) (kong.Resolver, error) {
		inner, err := load(r)
		if err != nil {
			return nil, err
		}
		return kong.ResolverFunc(func(ctx *kong.Context, parent *kong.Path, flag *kong.Flag) (any, error) {
			for _, env := range flag.Envs {
				if _, ok := os.LookupEnv(env); ok {
					return nil, nil
				}
			}
			return inner.Resolve(ctx, parent, flag)
		}), nil
	}
}
