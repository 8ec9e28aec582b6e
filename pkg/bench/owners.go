package bench

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/pprof/profile"
)

// CPUOwners splits the engine's CPU profile by whose code burnt it, each a
// share of the profile's CPU time. A sample belongs to the code of its
// innermost frame outside Go's standard library (a memmove or a system call
// is its caller's), except that the collector's work is GoGC wherever it
// runs, and Pebble's background work (the goroutines Pebble labels: flushes,
// compactions, WAL syncs) is PebbleBackground whatever it calls.
//
// It answers whether the remaining cost is spur's own, or that of the parts
// it stands on: Pebble, the Kafka client, and Go's collector.
type CPUOwners struct {
	// Spur is spur's own code: decoding events, the customer records'
	// encoding and cache, rules, the step's bookkeeping.
	Spur float64 `json:"spur"`
	// Pebble is Pebble's work on spur's goroutines: reads, batches,
	// commits, WAL writes.
	Pebble float64 `json:"pebble"`
	// PebbleBackground is Pebble's own goroutines: flushes, compactions,
	// WAL syncs.
	PebbleBackground float64 `json:"pebble_background"`
	// KafkaClient is franz-go and its compression codecs: fetching,
	// producing.
	KafkaClient float64 `json:"kafka_client"`
	// GoGC is the collector: its mark workers, assists and sweeping.
	GoGC float64 `json:"go_gc"`
	// Other is the rest: metrics, logs, the expression language, the
	// scheduler.
	Other float64 `json:"other"`
}

// An owner's share of a CPUOwners.
type share func(o *CPUOwners) *float64

var (
	spurShare   share = func(o *CPUOwners) *float64 { return &o.Spur }
	pebbleShare share = func(o *CPUOwners) *float64 { return &o.Pebble }
	clientShare share = func(o *CPUOwners) *float64 { return &o.KafkaClient }
)

// ownerPrefixes maps a package path's prefix to its owner, for the frames
// outside the standard library.
var ownerPrefixes = []struct {
	prefix string
	owner  share
}{
	{"github.com/spur-crm/spur/", spurShare},
	{"main.", spurShare},
	{"github.com/cockroachdb/", pebbleShare},
	{"github.com/golang/snappy", pebbleShare},
	{"github.com/minio/minlz", pebbleShare},
	{"github.com/DataDog/zstd", pebbleShare},
	{"github.com/twmb/franz-go", clientShare},
	{"github.com/pierrec/lz4", clientShare},
	{"github.com/klauspost/compress", clientShare},
}

// gcFrames are the collector's entry points: a sample with one of them on
// its stack is the collector's work.
var gcFrames = []string{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep", "runtime.bgscavenge"}

// pebbleLabel is the pprof label Pebble sets on its background goroutines.
const pebbleLabel = "pebble"

// ProfileOwners reads the CPU profile at path and splits it by owner.
func ProfileOwners(path string) (CPUOwners, error) {
	f, err := os.Open(path)
	if err != nil {
		return CPUOwners{}, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return CPUOwners{}, fmt.Errorf("bench: cpu profile %s: %w", path, err)
	}
	return cpuOwners(p)
}

// cpuOwners splits p's CPU time by owner.
func cpuOwners(p *profile.Profile) (CPUOwners, error) {
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		return CPUOwners{}, fmt.Errorf("bench: not a cpu profile (sample types %v)", p.SampleType)
	}
	var o CPUOwners
	var total float64
	for _, s := range p.Sample {
		v := float64(s.Value[vi])
		total += v
		*sampleOwner(&o, s) += v
	}
	if total == 0 {
		return CPUOwners{}, fmt.Errorf("bench: the cpu profile holds no samples")
	}
	for _, share := range []*float64{&o.Spur, &o.Pebble, &o.PebbleBackground, &o.KafkaClient, &o.GoGC, &o.Other} {
		*share /= total
	}
	return o, nil
}

// sampleOwner returns the share of o that sample s counts towards.
func sampleOwner(o *CPUOwners, s *profile.Sample) *float64 {
	if len(s.Label[pebbleLabel]) > 0 {
		return &o.PebbleBackground
	}
	var owner *float64
	for _, loc := range s.Location {
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			name := ln.Function.Name
			for _, gc := range gcFrames {
				if strings.HasPrefix(name, gc) {
					return &o.GoGC
				}
			}
			if owner == nil && !standard(name) {
				owner = &o.Other
				for _, op := range ownerPrefixes {
					if strings.HasPrefix(name, op.prefix) {
						owner = op.owner(o)
						break
					}
				}
			}
		}
	}
	if owner == nil {
		return &o.Other
	}
	return owner
}

// standard reports whether the function name belongs to Go's standard
// library (or golang.org/x, which Pebble and franz-go call for system calls):
// its package path's first element holds no dot.
func standard(name string) bool {
	if strings.HasPrefix(name, "golang.org/x/") {
		return true
	}
	if strings.HasPrefix(name, "main.") {
		return false // spur's command
	}
	first, _, _ := strings.Cut(name, "/")
	return !strings.Contains(first, ".") || !strings.Contains(name, "/")
}

// String is the shares as the table prints them.
func (o CPUOwners) String() string {
	return fmt.Sprintf("spur %s, Pebble %s + background %s, Kafka client %s, Go GC %s, other %s",
		pct(o.Spur), pct(o.Pebble), pct(o.PebbleBackground), pct(o.KafkaClient), pct(o.GoGC), pct(o.Other))
}
