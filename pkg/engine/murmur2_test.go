package engine

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The partition check must place keys exactly as producers do: franz-go's
// hashing partitioner (Kafka's murmur2) is the reference.
func TestExpectedPartitionMatchesFranzGo(t *testing.T) {
	ref := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	e := &Engine{}
	for _, n := range []int{1, 3, 4, 6, 64} {
		for i := range 2000 {
			key := []byte(fmt.Sprintf("c-%d%s", i, "xyz"[:i%4])) // every length mod 4
			want := int32(ref.Partition(&kgo.Record{Key: key}, n))
			if got := e.expectedPartition(key, n); got != want {
				t.Fatalf("key %q over %d partitions: %d, franz-go %d", key, n, got, want)
			}
		}
	}
}

func BenchmarkExpectedPartition(b *testing.B) {
	e := &Engine{}
	key := []byte("c-1234567")
	b.ReportAllocs()
	for b.Loop() {
		e.expectedPartition(key, 6)
	}
}
