package emit

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCompression produces a record with each codec Compression names to
// an embedded broker and reads back the codec of the batch that holds it
// (the record batch attributes' low bits: Kafka's codec ids).
func TestCompression(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	codecs := []struct {
		name string
		want uint8
	}{{"none", 0}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}, {"unknown", 0}}
	value := bytes.Repeat([]byte("a compressible trigger "), 100)
	for _, cc := range codecs {
		p, err := NewProducer(kgo.SeedBrokers(c.ListenAddrs()...), Compression(cc.name))
		if err != nil {
			t.Fatal(err)
		}
		err = p.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: value}).FirstErr()
		p.Close()
		if err != nil {
			t.Fatalf("%s: %v", cc.name, err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []*kgo.Record
	for len(got) < len(codecs) {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got = append(got, fs.Records()...)
	}
	for i, cc := range codecs {
		if codec := got[i].Attrs.CompressionType(); codec != cc.want || !bytes.Equal(got[i].Value, value) {
			t.Errorf("%s: batch codec %d, value intact %v; want codec %d", cc.name, codec, bytes.Equal(got[i].Value, value), cc.want)
		}
	}
}
