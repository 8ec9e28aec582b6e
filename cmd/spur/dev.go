package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/oklog/run"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/config"
	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/loadgen"
	"github.com/spur-crm/spur/pkg/observability"
)

// DevCmd runs spur with an embedded broker.
type DevCmd struct {
	Listen        string  `name:"listen" default:"127.0.0.1:9092" help:"Address of the embedded Kafka-protocol broker."`
	Demo          bool    `name:"demo" help:"Publish demo storefront traffic so triggers appear at once."`
	DemoRate      float64 `name:"demo-rate" default:"20" help:"Demo events per second."`
	DemoCustomers int     `name:"demo-customers" default:"500" help:"Distinct demo customers."`
	Quiet         bool    `name:"quiet" help:"Do not print triggers to stdout."`
}

// Run starts the broker, the engine and optionally the demo, until
// SIGINT/SIGTERM.
func (c *DevCmd) Run(cfg *config.Config) error {
	log, err := observability.NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	if err := cfg.Validate(); err != nil {
		return err
	}
	topics := map[string]int32{}
	for _, t := range []string{cfg.ClickstreamTopic, cfg.OrdersTopic, cfg.TriggersTopic, cfg.DLQTopic} {
		topics[t] = cfg.Partitions
	}
	b, err := devbroker.Start(devbroker.Config{Listen: c.Listen, DataDir: filepath.Join(cfg.DataDir, "broker"), Topics: topics})
	if err != nil {
		return err
	}
	defer b.Close()
	log.Info("embedded broker listening", zap.String("addr", b.Addr()))
	brokers := []string{b.Addr()}
	s, err := buildStack(context.Background(), cfg, brokers, true, log)
	if err != nil {
		return err
	}
	defer s.close()

	var g run.Group
	signalActor(&g, log)
	s.actors(&g)
	if !c.Quiet {
		tailActor(&g, brokers, cfg.TriggersTopic, os.Stdout, log)
	}
	if c.Demo {
		if err := demoActor(&g, brokers, cfg, c, log); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "spur dev: broker on %s, metrics on http://%s/metrics; publish to %s / %s, triggers on %s. Ctrl-C stops.\n",
		b.Addr(), cfg.HTTP, cfg.ClickstreamTopic, cfg.OrdersTopic, cfg.TriggersTopic)
	return g.Run()
}

// demoHistory is how much past traffic the demo publishes at start.
const demoHistory = 15 * time.Second

// demoActor publishes demo traffic.
func demoActor(g *run.Group, brokers []string, cfg *config.Config, c *DevCmd, log *zap.Logger) error {
	cl, err := emit.NewProducer(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	gen, err := loadgen.New(loadgen.Config{
		Customers: c.DemoCustomers, Seed: time.Now().UnixNano(),
		ClickstreamTopic: cfg.ClickstreamTopic, OrdersTopic: cfg.OrdersTopic,
	})
	if err != nil {
		cl.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		defer cl.Close()
		// Start as if the store had been open for a while: the last
		// demoHistory of traffic is published at once with its own event
		// times, so the first abandoned carts are already due and coupons
		// appear within a second or two instead of after the first wait.
		now := time.Now()
		step := time.Duration(float64(time.Second) / c.DemoRate)
		for t := now.Add(-demoHistory); t.Before(now); t = t.Add(step) {
			r := gen.Next(t)
			cl.Produce(ctx, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.TS}, nil)
		}
		err := gen.Run(ctx, clockwork.NewRealClock(), c.DemoRate, func(r loadgen.Record) error {
			cl.Produce(ctx, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) {
				if err != nil && ctx.Err() == nil {
					log.Warn("demo produce", zap.Error(err))
				}
			})
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		return err
	}, func(error) { cancel() })
	log.Info("demo traffic on", zap.Float64("events_per_sec", c.DemoRate), zap.Int("customers", c.DemoCustomers))
	return nil
}

// tailActor prints each new trigger as one human line.
func tailActor(g *run.Group, brokers []string, topic string, out io.Writer, log *zap.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
		if err != nil {
			return err
		}
		defer cl.Close()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return nil
			}
			fs.EachRecord(func(r *kgo.Record) {
				fmt.Fprintln(out, describeTrigger(r.Value, r.Timestamp))
			})
		}
	}, func(error) { cancel() })
}

func describeTrigger(v []byte, appended time.Time) string {
	var t emit.Trigger
	if err := json.Unmarshal(v, &t); err != nil {
		return "unreadable trigger: " + err.Error()
	}
	s := fmt.Sprintf("%-10s %-18s customer=%-10s", t.Kind, t.Rule, t.CustomerID)
	if c := t.Payload.Coupon; c != nil {
		s += " code=" + c.Code
		if c.PercentOff > 0 {
			s += fmt.Sprintf(" %d%% off", c.PercentOff)
		}
		if c.FreeShipping {
			s += " free shipping"
		}
	}
	if t.Variant == emit.VariantHoldout {
		s += " (holdout)"
	}
	if n := t.Payload.Notify; n != nil {
		s += fmt.Sprintf(" message=%s %v", n.Message, n.Data)
	}
	if cart := t.Payload.Cart; cart != nil {
		s += fmt.Sprintf(" cart=%.2f (%d items)", cart.Value, len(cart.Items))
	}
	if t.Payload.Tag != "" {
		s += " tag=" + t.Payload.Tag
	}
	s += fmt.Sprintf(" latency=%s", appended.Sub(t.QualifiedAt).Round(time.Millisecond))
	return s
}
