// Command spur is the real-time trigger engine: `spur dev` runs it with an
// embedded broker, `spur run` against a Kafka cluster, `spur check` checks
// pipelines.
package main

import (
	"fmt"
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

	Dev   DevCmd   `cmd:"" help:"Run spur with an embedded Kafka-protocol broker (and, with --demo, demo traffic)."`
	Run   RunCmd   `cmd:"" help:"Run spur against a Kafka cluster as a consumer group."`
	Check CheckCmd `cmd:"" help:"Check pipeline files and report errors with file:line."`
}

func main() {
	var cli CLI
	ctx := kong.Parse(&cli,
		kong.Name("spur"),
		kong.Description("spur: real-time trigger engine for e-commerce CRM (Kafka in, triggers out)."),
		kong.UsageOnError(),
		kong.Configuration(kongyaml.Loader),
		kong.DefaultEnvars("SPUR"),
		kong.Vars{"version": version},
	)
	if err := ctx.Run(&cli.Config); err != nil {
		fmt.Fprintln(os.Stderr, "spur:", err)
		os.Exit(1)
	}
}
