package observability

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaRequests returns a franz-go hook that counts the requests a client
// writes to the brokers, by API, as spur_kafka_<client>_requests_total{api}
// (the naming of franz-go's kprom metrics beside it). A broker's CPU goes
// mostly to handling requests, whatever their size, so this is what to
// watch when sizing the brokers for spur: produce requests of triggers and
// changelog records, fetches, and the end-offset probes (ListOffsets).
func KafkaRequests(reg prometheus.Registerer, client string) kgo.Hook {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spur_kafka_" + client + "_requests_total",
		Help: "Requests written to the brokers by spur's " + client + " client, by API (Produce, Fetch, ListOffsets, …).",
	}, []string{"api"})
	reg.MustRegister(vec)
	return &requestCounter{vec: vec, byKey: map[int16]prometheus.Counter{}}
}

type requestCounter struct {
	vec   *prometheus.CounterVec
	mu    sync.Mutex
	byKey map[int16]prometheus.Counter
}

var _ kgo.HookBrokerWrite = (*requestCounter)(nil)

// OnBrokerWrite counts a request written whole; a failed write is retried
// and counted then.
func (c *requestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	c.mu.Lock()
	ctr, ok := c.byKey[key]
	if !ok {
		name := kmsg.NameForKey(key)
		if name == "" {
			name = "unknown"
		}
		ctr = c.vec.WithLabelValues(name)
		c.byKey[key] = ctr
	}
	c.mu.Unlock()
	ctr.Inc()
}
