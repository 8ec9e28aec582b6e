package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/config"
	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/ingest"
	"github.com/spur-crm/spur/pkg/observability"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

// stack is the engine wired to a broker: everything `spur run` and
// `spur dev` share.
type stack struct {
	cfg      *config.Config
	log      *zap.Logger
	reg      *prometheus.Registry
	store    *state.Store
	producer *kgo.Client
	consumer *ingest.Consumer
	restorer *changelog.Restorer
	http     *observability.Server
	eng      *engine.Engine
}

// buildStack opens the state, checks (or creates) topics and builds the
// engine, its producer and its consumer group. close releases what it built.
func buildStack(ctx context.Context, cfg *config.Config, brokers []string, createTopics bool, log *zap.Logger) (*stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &stack{cfg: cfg, log: log, reg: observability.NewRegistry()}
	if cfg.MemoryLimitMB > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// The customer cache lives in the Go heap and comes on top, as the
		// memtables do of Pebble's block cache.
		debug.SetMemoryLimit((cfg.MemoryLimitMB + int64(cfg.CustomerCacheMB)) << 20)
	}
	pipes, err := pipeline.LoadDir(cfg.Pipelines)
	if err != nil {
		return nil, fmt.Errorf("pipelines: %w", err)
	}
	dec, err := event.NewDecoder(event.WithMaxBytes(cfg.MaxEventBytes), event.WithMaxFutureSkew(cfg.MaxClockSkew))
	if err != nil {
		return nil, err
	}

	// Each client gets its own metrics: kprom registers per client.
	clientMetrics := func(role string) kgo.Opt {
		return kgo.WithHooks(kprom.NewMetrics("spur_kafka", kprom.Subsystem(role), kprom.Registerer(s.reg), kprom.Gatherer(s.reg)),
			observability.KafkaRequests(s.reg, role))
	}
	common := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.WithLogger(kzap.New(log.Named("kafka"), kzap.Level(kgo.LogLevelWarn))),
	}
	// Fresh metadata, so topics just created are seen at once.
	admCl, err := kgo.NewClient(append(common, kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(admCl)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	partitions, err := ingest.EnsureTopics(tctx, adm, ingest.TopicSpec{
		Inputs:            []string{cfg.ClickstreamTopic, cfg.OrdersTopic},
		Outputs:           []string{cfg.TriggersTopic, cfg.DLQTopic},
		Partitions:        cfg.Partitions,
		ReplicationFactor: cfg.Replication,
		MaxMessageBytes:   devbroker.DefaultMaxMessageBytes,
		Changelog:         cfg.ChangelogTopicName(),
	}, createTopics)
	cancel()
	admCl.Close()
	if err != nil {
		return nil, err
	}

	storeOpts := []state.Option{state.WithLogger(log.Named("pebble")), state.WithCacheSize(cfg.CacheMB << 20),
		state.WithTuning(state.Tuning{MemTableMB: cfg.PebbleMemTableMB, L0CompactionThreshold: cfg.PebbleL0Compact, L0StopWritesThreshold: cfg.PebbleL0Stop, MaxCompactions: cfg.PebbleCompactions, BloomBitsPerKey: cfg.PebbleBloomBits, Compression: cfg.PebbleCompression})}
	if cfg.Transactions {
		storeOpts = append(storeOpts, state.WithLocalOutbox())
	}
	s.store, err = state.Open(filepath.Join(cfg.DataDir, "state"), storeOpts...)
	if err != nil {
		return nil, err
	}
	s.reg.MustRegister(s.store.Collector())
	// The output producers: the shared one, and with --transactions one per
	// task.
	producerOpts := func(extra ...kgo.Opt) []kgo.Opt {
		return slices.Concat(common, []kgo.Opt{kgo.ProducerBatchMaxBytes(devbroker.DefaultMaxMessageBytes),
			emit.ManualPartitions(cfg.ChangelogTopicName()), kgo.ProducerLinger(cfg.ProduceLinger), emit.Compression(cfg.ProduceCompression)}, extra)
	}
	s.producer, err = emit.NewProducer(producerOpts(clientMetrics("producer"))...)
	if err != nil {
		s.close()
		return nil, err
	}
	engineOpts := []engine.Option{engine.WithLogger(log.Named("engine")), engine.WithRegisterer(s.reg)}
	if cfg.Transactions {
		// One transactional producer per task (as Kafka Streams'
		// exactly-once v1), created when the task is assigned.
		engineOpts = append(engineOpts, engine.WithTransactions(func(part int32) (*kgo.Client, error) {
			return emit.NewProducer(producerOpts(kgo.TransactionalID(engine.TransactionalID(cfg.Group, part)))...)
		}))
	}
	eng, err := engine.New(engine.Config{
		ClickstreamTopic: cfg.ClickstreamTopic, OrdersTopic: cfg.OrdersTopic,
		TriggersTopic: cfg.TriggersTopic, DLQTopic: cfg.DLQTopic,
		Staleness: cfg.Staleness, Partitions: partitions, CustomerCacheBytes: cfg.CustomerCacheMB << 20,
		MaxTriggersPerCustomer: cfg.CapTriggers, CapWindow: cfg.CapWindow,
		ChangelogTopic: cfg.ChangelogTopicName(), AwaitInputEnds: true, StepLinger: cfg.StepLinger,
	}, s.store, dec, pipes, s.producer, engineOpts...)
	if err != nil {
		s.close()
		return nil, err
	}
	s.eng = eng
	instanceID, err := instanceID(cfg)
	if err != nil {
		s.close()
		return nil, err
	}
	consumerOpts := []ingest.Option{ingest.WithLogger(log.Named("ingest"))}
	if t := cfg.ChangelogTopicName(); t != "" {
		s.restorer, err = changelog.New(changelog.Config{Topic: t, ClientOpts: common}, s.store,
			changelog.WithLogger(log.Named("changelog")), changelog.WithRegisterer(s.reg))
		if err != nil {
			s.close()
			return nil, err
		}
		consumerOpts = append(consumerOpts, ingest.WithRestorer(s.restorer))
	}
	s.consumer, err = ingest.New(ingest.Config{
		Brokers: brokers, Group: cfg.Group, Partitions: partitions, CommitInterval: cfg.CommitInterval,
		ProbeInterval: cfg.EndProbeInterval,
		InstanceID:    instanceID, SessionTimeout: cfg.SessionTimeout,
		ClientOpts: append(common[1:], clientMetrics("consumer")),
	}, eng, consumerOpts...)
	if err != nil {
		s.close()
		return nil, err
	}
	if cfg.HTTP != "" {
		s.http, err = observability.NewServer(cfg.HTTP, s.reg, func() error {
			if !s.consumer.Ready() {
				return errors.New("not yet assigned partitions")
			}
			return nil
		})
		if err != nil {
			s.close()
			return nil, err
		}
		s.http.Handle("GET /customers/{id}", inspectHandler(eng))
	}
	log.Info("spur started", zap.Strings("brokers", brokers), zap.String("group", cfg.Group), zap.String("changelog", cfg.ChangelogTopicName()), zap.Bool("transactions", cfg.Transactions),
		zap.Int("partitions", partitions), zap.Int("pipelines", len(pipes)), zap.String("data_dir", cfg.DataDir))
	return s, nil
}

// instanceID returns the configured static member id, or the one kept in
// the data dir (created on first start): the identity follows the state, so
// a restarted instance takes back the partitions whose state it holds.
func instanceID(cfg *config.Config) (string, error) {
	if cfg.InstanceID != "" {
		return cfg.InstanceID, nil
	}
	path := filepath.Join(cfg.DataDir, "instance-id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("spur-%s-%s", host, hex.EncodeToString(r[:]))
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

// actors adds the consumer, the pipeline reloader and the HTTP server to g.
func (s *stack) actors(g *run.Group) {
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error { return s.consumer.Run(ctx) }, func(error) { cancel() })
	s.reloadActor(g)
	if s.http != nil {
		g.Add(s.http.Serve, func(error) {
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			defer c()
			s.http.Shutdown(sctx)
		})
	}
}

// close releases resources after the actors stopped: the producer after the
// workers drained through it, the store last.
func (s *stack) close() {
	if s.restorer != nil {
		s.restorer.Close()
	}
	if s.producer != nil {
		s.producer.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("close state", zap.Error(err))
		}
	}
}

// reloadActor reloads the pipelines on SIGHUP and when their files change;
// a set that fails the check leaves the running one in place.
func (s *stack) reloadActor(g *run.Group) {
	m := s.eng.Metrics()
	r := pipeline.NewReloader(s.cfg.Pipelines, s.cfg.PipelinesWatch, func(pipes []*pipeline.Pipeline) {
		s.eng.SetPipelines(pipes)
		m.Reloads.WithLabelValues("ok").Inc()
		names := make([]string, len(pipes))
		for i, p := range pipes {
			names[i] = p.Name
		}
		s.log.Info("pipelines reloaded", zap.String("dir", s.cfg.Pipelines), zap.Strings("pipelines", names))
	}, func(err error) {
		m.Reloads.WithLabelValues("failed").Inc()
		s.log.Error("pipelines not reloaded: the running set stays", zap.String("dir", s.cfg.Pipelines), zap.Error(err))
	})
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	g.Add(func() error {
		go func() {
			for {
				select {
				case <-hup:
					s.log.Info("SIGHUP: reloading pipelines")
					r.Trigger()
				case <-ctx.Done():
					return
				}
			}
		}()
		return r.Run(ctx)
	}, func(error) {
		signal.Stop(hup)
		cancel()
	})
}

// signalActor stops the group on SIGINT/SIGTERM; a second signal exits at
// once.
func signalActor(g *run.Group, log *zap.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		select {
		case s := <-sig:
			log.Info("shutting down (send again to exit at once)", zap.String("signal", s.String()))
			go func() {
				<-sig
				log.Warn("second signal: exiting now")
				os.Exit(130)
			}()
			return nil
		case <-ctx.Done():
			return nil
		}
	}, func(error) { cancel() })
}
