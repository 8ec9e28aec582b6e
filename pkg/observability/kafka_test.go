package observability_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/observability"
)

func TestKafkaRequestsCountsByAPI(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.WithHooks(observability.KafkaRequests(reg, "producer")))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for range 3 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	mf, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mf) != 1 || mf[0].GetName() != "spur_kafka_producer_requests_total" {
		t.Fatalf("metrics %v, want spur_kafka_producer_requests_total alone", mf)
	}
	got := map[string]float64{}
	for _, m := range mf[0].GetMetric() {
		got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	// Three synchronous produces are three requests; the client also asked
	// for metadata (and, being idempotent, a producer id) before the first.
	if got["Produce"] != 3 || got["Metadata"] < 1 || got["InitProducerID"] != 1 {
		t.Fatalf("requests by API %v, want Produce 3, Metadata ≥ 1, InitProducerID 1", got)
	}
	if n := testutil.CollectAndCount(reg, "spur_kafka_producer_requests_total"); n != len(got) {
		t.Fatalf("%d series, want %d", n, len(got))
	}
}
