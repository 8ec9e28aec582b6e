package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// ownersProfile is a CPU profile of stacks (leaf first, each frame a line
// of its own location) with the given nanoseconds and labels.
func ownersProfile(samples []ownersSample) *profile.Profile {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	funcs := map[string]*profile.Function{}
	locs := map[string]*profile.Location{}
	for _, s := range samples {
		ps := &profile.Sample{Value: []int64{1, s.ns}, Label: s.labels}
		for _, frame := range s.stack {
			loc, ok := locs[frame]
			if !ok {
				fn := funcs[frame]
				if fn == nil {
					fn = &profile.Function{ID: uint64(len(funcs) + 1), Name: frame}
					funcs[frame] = fn
					p.Function = append(p.Function, fn)
				}
				loc = &profile.Location{ID: uint64(len(locs) + 1), Line: []profile.Line{{Function: fn}}}
				locs[frame] = loc
				p.Location = append(p.Location, loc)
			}
			ps.Location = append(ps.Location, loc)
		}
		p.Sample = append(p.Sample, ps)
	}
	return p
}

// writeProfile writes p to dir/name and returns the path.
func writeProfile(t *testing.T, dir, name string, p *profile.Profile) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type ownersSample struct {
	ns     int64
	stack  []string
	labels map[string][]string
}

func TestProfileOwners(t *testing.T) {
	const (
		worker  = "github.com/spur-crm/spur/pkg/engine.(*Worker).run"
		commit  = "github.com/spur-crm/spur/pkg/state.(*Step).commit"
		compact = "github.com/cockroachdb/pebble/v2.(*DB).compact"
	)
	p := ownersProfile([]ownersSample{
		// spur's own code, and a memmove it calls.
		{ns: 30, stack: []string{"github.com/spur-crm/spur/pkg/state.(*Customer).AppendBinary", commit, worker}},
		{ns: 10, stack: []string{"runtime.memmove", "github.com/spur-crm/spur/pkg/event.Decode", worker}},
		// Pebble under spur: a system call is its caller's.
		{ns: 20, stack: []string{"internal/runtime/syscall/linux.Syscall6", "golang.org/x/sys/unix.Fdatasync",
			"github.com/cockroachdb/pebble/v2/vfs.(*syncingFile).Sync", "github.com/cockroachdb/pebble/v2.(*Batch).Commit", commit, worker}},
		// Pebble's labelled background work, even in a codec.
		{ns: 15, stack: []string{"github.com/golang/snappy.encodeBlock", compact}, labels: map[string][]string{"pebble": {"compact"}}},
		// The Kafka client and its codec.
		{ns: 10, stack: []string{"github.com/pierrec/lz4/v4/internal/lz4block.(*Compressor).CompressBlock", "github.com/twmb/franz-go/pkg/kgo.(*recBuf).bufferRecord"}},
		// The collector, assisting inside spur's allocation too.
		{ns: 5, stack: []string{"runtime.scanObject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}},
		{ns: 5, stack: []string{"runtime.scanObject", "runtime.gcAssistAlloc1", "runtime.mallocgc", "github.com/spur-crm/spur/pkg/event.Decode", worker}},
		// Everything else.
		{ns: 3, stack: []string{"github.com/prometheus/client_golang/prometheus.(*histogram).Observe", worker}},
		{ns: 2, stack: []string{"runtime.findRunnable", "runtime.schedule"}},
	})
	got, err := ProfileOwners(writeProfile(t, t.TempDir(), "cpu.pprof", p))
	if err != nil {
		t.Fatal(err)
	}
	want := CPUOwners{Spur: 0.40, Pebble: 0.20, PebbleBackground: 0.15, KafkaClient: 0.10, GoGC: 0.10, Other: 0.05}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"spur", got.Spur, want.Spur}, {"pebble", got.Pebble, want.Pebble}, {"pebble background", got.PebbleBackground, want.PebbleBackground},
		{"kafka client", got.KafkaClient, want.KafkaClient}, {"go gc", got.GoGC, want.GoGC}, {"other", got.Other, want.Other},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s: share %.3f, want %.3f", c.name, c.got, c.want)
		}
	}
	if s := got.String(); !strings.HasPrefix(s, "spur 40.0%") {
		t.Errorf("String() = %q, want spur's share first", s)
	}
}

func TestProfileOwnersRejects(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pprof")
	if err := os.WriteFile(bad, []byte("not a profile"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ProfileOwners(bad); err == nil {
		t.Error("a file that is not a profile: no error")
	}
	heap := &profile.Profile{SampleType: []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}}}
	if _, err := ProfileOwners(writeProfile(t, dir, "heap.pprof", heap)); err == nil || !strings.Contains(err.Error(), "not a cpu profile") {
		t.Errorf("a heap profile: error %v, want not a cpu profile", err)
	}
	if _, err := ProfileOwners(writeProfile(t, dir, "empty.pprof", ownersProfile(nil))); err == nil || !strings.Contains(err.Error(), "no samples") {
		t.Errorf("a profile with no samples: error %v, want no samples", err)
	}
}
