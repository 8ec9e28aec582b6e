package main

import (
	"context"
	"errors"

	"github.com/oklog/run"

	"github.com/spur-crm/spur/pkg/config"
	"github.com/spur-crm/spur/pkg/observability"
)

// RunCmd runs spur against a Kafka cluster.
type RunCmd struct {
	Brokers      string `name:"brokers" required:"" help:"Comma-separated Kafka bootstrap brokers (host:port,...)."`
	CreateTopics bool   `name:"create-topics" help:"Create missing topics (with --partitions and --replication-factor)."`
}

// Run runs until SIGINT/SIGTERM.
func (c *RunCmd) Run(cfg *config.Config) error {
	log, err := observability.NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	brokers := config.SplitBrokers(c.Brokers)
	if len(brokers) == 0 {
		return errors.New("--brokers names no broker")
	}
	s, err := buildStack(context.Background(), cfg, brokers, c.CreateTopics, log)
	if err != nil {
		return err
	}
	defer s.close()
	var g run.Group
	signalActor(&g, log)
	s.actors(&g)
	return g.Run()
}
