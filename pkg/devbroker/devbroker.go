package devbroker

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config describes the embedded broker.
type Config struct {
	// Listen is host:port (default 127.0.0.1:9092; port 0 picks a free one).
	Listen string
	// DataDir persists the broker's log and offsets; empty keeps them in memory.
	DataDir string
	// Topics to create with their partition count when absent.
	Topics map[string]int32
	// MaxMessageBytes is the largest record batch the broker accepts
	// (default 32 MiB, so that oversized input can still be dead-lettered
	// byte for byte).
	MaxMessageBytes int
	// SegmentBytes is the size at which a partition's log rolls to a new
	// segment (log.segment.bytes; 0 keeps kfake's 100 MiB). Without a
	// DataDir a segment is one slice that grows by doubling, and a doubling
	// copies the segment inside the broker's single request loop, which
	// stalls every client meanwhile: smaller segments bound that pause.
	SegmentBytes int
}

// DefaultMaxMessageBytes is the embedded broker's message.max.bytes.
const DefaultMaxMessageBytes = 32 << 20

// Broker is a running embedded broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
}

// Start starts the broker.
func Start(cfg Config) (*Broker, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9092"
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("devbroker: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("devbroker: listen port %q: %w", portStr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		// kfake listens on loopback; honour the host the user asked for.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
		kfake.BrokerConfigs(brokerConfigs(cfg)),
		kfake.ClusterID("spur-dev"),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	for t, n := range cfg.Topics {
		opts = append(opts, kfake.SeedTopics(n, t))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devbroker: start on %s: %w", cfg.Listen, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, fmt.Errorf("devbroker: no listener")
	}
	return &Broker{c: c, addr: addrs[0]}, nil
}

// brokerConfigs are the broker-level configs cfg sets.
func brokerConfigs(cfg Config) map[string]string {
	m := map[string]string{"message.max.bytes": strconv.Itoa(cfg.MaxMessageBytes)}
	if cfg.SegmentBytes > 0 {
		m["log.segment.bytes"] = strconv.Itoa(cfg.SegmentBytes)
	}
	return m
}

// Addr is the host:port clients connect to.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, flushing its log to the data dir.
func (b *Broker) Close() { b.c.Close() }
