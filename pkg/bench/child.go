package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// childSpec is how to start the engine under test.
type childSpec struct {
	exe       string
	brokers   []string
	group     string
	dataDir   string
	pipelines string
	topics    topics
	cacheMB   int64
	extra     []string
	logPath   string
}

// child is a running `spur run` process. Its methods are safe for
// concurrent use.
type child struct {
	spec    childSpec
	cmd     *exec.Cmd
	http    string
	logf    *os.File
	started time.Time
	exited  chan struct{}
	client  *http.Client

	mu      sync.Mutex
	exitErr error
	peakRSS int64 // bytes, the largest VmHWM seen
}

// startChild starts the engine. Its environment is ours without SPUR_*
// variables, so that the bench's own settings do not leak into it.
func startChild(spec childSpec) (*child, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--data-dir", spec.dataDir,
		"--pipelines", spec.pipelines,
		"--http", addr,
		"--group", spec.group,
		"--clickstream-topic", spec.topics.Clickstream,
		"--orders-topic", spec.topics.Orders,
		"--triggers-topic", spec.topics.Triggers,
		"--dlq-topic", spec.topics.DLQ,
		"--log-level", "info",
	}
	if spec.cacheMB > 0 {
		args = append(args, "--cache-mb", strconv.FormatInt(spec.cacheMB, 10))
	}
	args = append(args, spec.extra...)
	args = append(args, "run", "--brokers", strings.Join(spec.brokers, ","))
	cmd := exec.Command(spec.exe, args...)
	cmd.Stdout, cmd.Stderr = f, f
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPUR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	fmt.Fprintf(f, "### bench: %s %s\n", spec.exe, strings.Join(args, " "))
	c := &child{spec: spec, cmd: cmd, http: addr, logf: f, exited: make(chan struct{}),
		client: scrapeClient()}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: start %s: %w", spec.exe, err)
	}
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.exitErr = err
		c.mu.Unlock()
		close(c.exited)
	}()
	return c, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// alive returns an error once the process has exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("bench: the engine exited (%v); its log: %s\n%s", c.exitErr, c.spec.logPath, c.logTail(3000))
	default:
		return nil
	}
}

// logTail returns the end of the child's log.
func (c *child) logTail(n int) string {
	b, err := os.ReadFile(c.spec.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ready reports whether /readyz answers 200.
func (c *child) ready() bool {
	resp, err := c.client.Get("http://" + c.http + "/readyz")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitReady polls /readyz every step until it answers, the process exits or
// ctx ends, and returns the moment it first answered.
func (c *child) waitReady(ctx context.Context, step time.Duration) (time.Time, error) {
	for {
		if c.ready() {
			return time.Now(), nil
		}
		if err := c.alive(); err != nil {
			return time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("bench: the engine did not become ready: %w", ctx.Err())
		case <-time.After(step):
		}
	}
}

// scrapeClient is the client of the bench's scrapes. It asks for the
// exposition uncompressed: Go's transport asks for gzip by default, and
// with the bench scraping every 50 ms in the max-rate phase, compressing
// the answers was 3 % of the engine's CPU profile there. (Prometheus,
// scraping every 15 s or so, may keep asking for gzip.)
func scrapeClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}
}

// metrics is one scrape of /metrics: the sum of the samples of each name,
// and each histogram bucket by its series (bucketKey).
type metrics map[string]float64

// bucketKey names one bucket of one histogram series in metrics: the
// sample name with its labels but le (`spur_x_bucket` or
// `spur_x_bucket{phase="total"}`), a bar, and the bound as exposed.
func bucketKey(series, le string) string { return series + "|" + le }

// scrape reads /metrics. Names are sample names (a histogram has _bucket,
// _sum and _count), each the sum over its label sets; a bucket is also
// kept by its series (bucketKey).
func (c *child) scrape() (metrics, error) {
	resp, err := c.client.Get("http://" + c.http + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: /metrics: %s", resp.Status)
	}
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, labels := line, "", ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			labels, rest = rest[:j+1], rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[name] += v
		if strings.HasSuffix(name, "_bucket") {
			if series, le, ok := splitLE(name, labels); ok {
				m[bucketKey(series, le)] += v
			}
		}
	}
	return m, sc.Err()
}

// splitLE takes a bucket's le label out of its label set: the series it
// belongs to (name and the other labels) and the bound.
func splitLE(name, labels string) (series, le string, ok bool) {
	inner := strings.TrimSuffix(strings.TrimPrefix(labels, "{"), "}")
	var rest []string
	for _, l := range strings.Split(inner, ",") {
		if v, found := strings.CutPrefix(l, `le="`); found {
			le, ok = strings.TrimSuffix(v, `"`), true
			continue
		}
		rest = append(rest, l)
	}
	if !ok {
		return "", "", false
	}
	if len(rest) == 0 {
		return name, le, true
	}
	return name + "{" + strings.Join(rest, ",") + "}", le, true
}

// Metric names read from the child.
const (
	mConsumed     = "spur_events_consumed_total"
	mTimers       = "spur_timers_pending"
	mOutbox       = "spur_outbox_pending"
	mLag          = "spur_consumer_lag"
	mStale        = "spur_triggers_stale_total"
	mDeadLetters  = "spur_dead_letters_total"
	mDuplicates   = "spur_duplicate_events_total"
	mTriggers     = "spur_triggers_total"
	mTimersFired  = "spur_timers_fired_total"
	mIdleExpired  = "spur_task_idle_expired_total"
	mProduceError = "spur_produce_errors_total"
	mStepCount    = "spur_step_duration_seconds_count"
	mStepSum      = "spur_step_duration_seconds_sum"
	mGCCPU        = "go_cpu_classes_gc_total_cpu_seconds_total"
)

// rss samples the process's resident memory from /proc: the current VmRSS
// and the kernel's high-water mark VmHWM, in bytes. It records the peak.
func (c *child) rss() (cur, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		return 0, c.peakRSS
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			cur = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peakRSS = max(c.peakRSS, peak, cur)
	return cur, c.peakRSS
}

// pebbleBytes is the size of the child's Pebble directory.
func (c *child) pebbleBytes() int64 { return dirBytes(filepath.Join(c.spec.dataDir, "state")) }

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // files come and go while Pebble compacts
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// stop asks the child to shut down (SIGTERM) and waits, killing it after
// timeout.
func (c *child) stop(timeout time.Duration) error {
	defer c.logf.Close()
	select {
	case <-c.exited:
		return nil
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.exitErr
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		<-c.exited
		return errors.New("bench: the engine did not stop within " + timeout.String() + "; killed")
	}
}

// kill sends SIGKILL and waits until the process is gone; it returns the
// moment the signal was sent.
func (c *child) kill() time.Time {
	t := time.Now()
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
	c.logf.Close()
	return t
}

// profile fetches a CPU profile of seconds from the child's pprof endpoint
// into path and, over the same seconds, writes one of this process (load
// generator, embedded broker, trigger reader: the engine's neighbours on
// the machine) to BenchProfilePath(path).
func (c *child) profile(ctx context.Context, seconds int, path string) error {
	own, err := os.Create(BenchProfilePath(path))
	if err != nil {
		return err
	}
	defer own.Close()
	if err := pprof.StartCPUProfile(own); err != nil {
		return fmt.Errorf("bench: cpu profile of the bench process: %w", err)
	}
	defer pprof.StopCPUProfile()
	cl := &http.Client{Timeout: time.Duration(seconds+30) * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", c.http, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("bench: cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("bench: cpu profile: %s: %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BenchProfilePath is where the CPU profile of the bench process is
// written beside the engine's at path: "f.pprof" gives "f.bench.pprof".
func BenchProfilePath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + ".bench" + ext
}
