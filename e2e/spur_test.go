//go:build e2e

package e2e

// The process harness: the real `spur` binary, built once, run as separate
// processes (`spur run` against Apache Kafka, `spur dev` with its embedded
// broker), observed through /metrics, /readyz and the topics it writes.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/publish"
)

// spurBin is the spur binary TestMain builds, shared by every test.
var spurBin string

// processWait bounds every wait on a spur process: readiness, triggers,
// draining, failover.
const processWait = 90 * time.Second

func TestMain(m *testing.M) {
	if strings.TrimSpace(os.Getenv(BrokersEnv)) == "" {
		// Every test skips; building spur would only cost time.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "spur-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	spurBin = filepath.Join(dir, "spur")
	start := time.Now()
	if out, err := exec.Command("go", "build", "-o", spurBin, "../cmd/spur").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ../cmd/spur: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", spurBin, time.Since(start).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// spurTopics are the four topics of one spur deployment.
type spurTopics struct {
	Clicks, Orders, Triggers, DLQ string
}

func (s spurTopics) all() []string { return []string{s.Clicks, s.Orders, s.Triggers, s.DLQ} }

// flags returns the topic flags of spur.
func (s spurTopics) flags() []string {
	return []string{"--clickstream-topic", s.Clicks, "--orders-topic", s.Orders,
		"--triggers-topic", s.Triggers, "--dlq-topic", s.DLQ}
}

// newTopics names a fresh set of topics for this test and deletes them when
// the test ends, after its spur processes have stopped. With partitions > 0
// it creates them (spur's --create-topics then finds them); with 0 it leaves
// their creation to spur.
func newTopics(t *testing.T, adm *kadm.Client, partitions int32) spurTopics {
	t.Helper()
	ts := spurTopics{
		Clicks: topicName(t, "clickstream"), Orders: topicName(t, "orders"),
		Triggers: topicName(t, "triggers"), DLQ: topicName(t, "dlq"),
	}
	if partitions > 0 {
		for _, topic := range ts.all() {
			createTopic(t, adm, topic, partitions)
		}
		return ts
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if rs, err := adm.DeleteTopics(ctx, ts.all()...); err != nil {
			t.Logf("delete topics: %v", err)
		} else {
			for _, r := range rs {
				if r.Err != nil {
					t.Logf("delete topic %s: %v", r.Topic, r.Err)
				}
			}
		}
	})
	return ts
}

// uniqueName returns prefix-<test>-<random>, for consumer groups.
func uniqueName(t *testing.T, prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s.%s.%s", prefix, unsafeTopicChars.ReplaceAllString(t.Name(), "_"), hex.EncodeToString(b[:]))
}

// pipelinesDir writes the repository's cart_abandonment pipeline with a
// shorter wait into a temporary directory: the engine runs on the real
// clock, so the wait is real time the test spends.
func pipelinesDir(t *testing.T, wait time.Duration) string {
	t.Helper()
	src, err := os.ReadFile("../pipelines/cart_abandonment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const from = "wait: 10s"
	if !strings.Contains(string(src), from) {
		t.Fatalf("../pipelines/cart_abandonment.yaml no longer says %q; update the e2e suite", from)
	}
	dir := filepath.Join(t.TempDir(), "pipelines")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := strings.Replace(string(src), from, "wait: "+wait.String(), 1)
	if err := os.WriteFile(filepath.Join(dir, "cart_abandonment.yaml"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// spurProc is one spur process under test. Its stdout and stderr (zap JSON
// logs) go to a file, printed when the test fails.
type spurProc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	http    string
	dataDir string
	logPath string

	exited  chan struct{}
	waitErr error
}

// runConfig configures `spur run`.
type runConfig struct {
	Name       string // for logs: "spur-a"
	Group      string
	Topics     spurTopics
	Partitions int
	Pipelines  string
	Extra      []string
}

// startRun starts `spur run` against the suite's broker, with its own data
// dir (and so its own static group member id).
func startRun(t *testing.T, cfg runConfig) *spurProc {
	t.Helper()
	dir := t.TempDir()
	p := &spurProc{t: t, name: cfg.Name, http: freeAddr(t), dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, cfg.Name+".log")}
	args := []string{"run",
		"--brokers", strings.Join(brokers(t), ","),
		"--group", cfg.Group,
		"--data-dir", p.dataDir,
		"--pipelines", cfg.Pipelines,
		"--http", p.http,
		"--create-topics", "--partitions", strconv.Itoa(cfg.Partitions),
		"--commit-interval", "100ms",
		"--session-timeout", "6s",
		"--log-format", "json",
	}
	args = append(args, cfg.Topics.flags()...)
	args = append(args, cfg.Extra...)
	p.start(args)
	return p
}

// devConfig configures `spur dev`.
type devConfig struct {
	Name       string
	Listen     string // the embedded broker's address
	Partitions int
	Pipelines  string
	Extra      []string
}

// startDev starts `spur dev`: the embedded Kafka-protocol broker and the
// engine in one process, with the default topic names.
func startDev(t *testing.T, cfg devConfig) *spurProc {
	t.Helper()
	dir := t.TempDir()
	p := &spurProc{t: t, name: cfg.Name, http: freeAddr(t), dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, cfg.Name+".log")}
	args := []string{"dev",
		"--listen", cfg.Listen,
		"--data-dir", p.dataDir,
		"--pipelines", cfg.Pipelines,
		"--http", p.http,
		"--partitions", strconv.Itoa(cfg.Partitions),
		"--commit-interval", "100ms",
		"--log-format", "json",
		"--quiet",
	}
	args = append(args, cfg.Extra...)
	p.start(args)
	return p
}

func (p *spurProc) start(args []string) {
	t := p.t
	t.Helper()
	f, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(spurBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	t.Logf("%s: pid %d: spur %s", p.name, p.cmd.Process.Pid, strings.Join(args, " "))
	p.exited = make(chan struct{})
	go func() {
		p.waitErr = p.cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("%s: %v", p.name, err)
		}
		if t.Failed() {
			p.dumpLog()
		}
	})
}

// running reports whether the process has not exited.
func (p *spurProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to die.
func (p *spurProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && p.running() {
		p.t.Fatalf("%s: SIGKILL: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(waitFor):
		p.t.Fatalf("%s: still running %s after SIGKILL", p.name, waitFor)
	}
	p.t.Logf("%s: killed with SIGKILL", p.name)
}

// stop ends the process with SIGTERM (a clean shutdown), SIGKILL if it does
// not exit within 20s; it returns an error if spur did not exit cleanly.
// Stopping a stopped process does nothing.
func (p *spurProc) stop() error {
	if !p.running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && p.running() {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("exited with %v after SIGTERM", p.waitErr)
		}
		return nil
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return errors.New("did not exit within 20s of SIGTERM; killed")
	}
}

// dumpLog prints the process's log: its tail, and the path.
func (p *spurProc) dumpLog() {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		p.t.Logf("%s: read log: %v", p.name, err)
		return
	}
	const max = 24 << 10
	s := string(b)
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	p.t.Logf("---- %s log (%s, %d bytes) ----\n%s---- end of %s log ----", p.name, p.logPath, len(b), s, p.name)
}

// logEvents returns the process's log entries whose message contains one of
// msgs, as "time msg fields" lines.
func (p *spurProc) logEvents(msgs ...string) []string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		msg, _ := e["msg"].(string)
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(msg, m) }) {
			continue
		}
		ts, _ := e["ts"].(string)
		if tm, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			ts = tm.Format("15:04:05.000")
		}
		var fields []string
		for k, v := range e {
			if k != "ts" && k != "msg" && k != "level" && k != "caller" && k != "logger" {
				fields = append(fields, fmt.Sprintf("%s=%v", k, v))
			}
		}
		sort.Strings(fields)
		out = append(out, ts+" "+msg+" "+strings.Join(fields, " "))
	}
	return out
}

// checkAlive fails the test if the process exited.
func (p *spurProc) checkAlive() error {
	if p.running() {
		return nil
	}
	return fmt.Errorf("%s exited unexpectedly: %v", p.name, p.waitErr)
}

// ready reports whether /readyz answers 200 (partitions assigned).
func (p *spurProc) ready() bool {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + p.http + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitReady waits until the process answers /readyz with 200.
func (p *spurProc) waitReady() {
	p.t.Helper()
	waitUntil(p.t, p.name+" to be ready", func() (string, error) {
		if err := p.checkAlive(); err != nil {
			return "", err
		}
		if !p.ready() {
			return "/readyz is not 200", nil
		}
		return "", nil
	})
}

// sample is one Prometheus sample.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics is one scrape of /metrics.
type metrics []sample

// scrape reads /metrics (the Prometheus text format).
func (p *spurProc) scrape() (metrics, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + p.http + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var out metrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("/metrics line %q: %w", line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseSample parses `name{k="v",...} value [timestamp]`.
func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, ", ")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.Index(line, `="`)
			if eq < 0 {
				return s, errors.New("bad label")
			}
			k := line[:eq]
			line = line[eq+2:]
			var v strings.Builder
			for {
				if line == "" {
					return s, errors.New("unterminated label value")
				}
				c := line[0]
				line = line[1:]
				if c == '"' {
					break
				}
				if c == '\\' && line != "" {
					switch line[0] {
					case 'n':
						v.WriteByte('\n')
					default:
						v.WriteByte(line[0])
					}
					line = line[1:]
					continue
				}
				v.WriteByte(c)
			}
			s.labels[k] = v.String()
		}
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return s, errors.New("no value")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// sum adds the samples of a metric whose labels include every pair of match
// (given as "key", "value", ...).
func (m metrics) sum(name string, match ...string) float64 {
	var total float64
	for _, s := range m {
		if s.name != name || !s.matches(match) {
			continue
		}
		total += s.value
	}
	return total
}

func (s sample) matches(match []string) bool {
	for i := 0; i+1 < len(match); i += 2 {
		if s.labels[match[i]] != match[i+1] {
			return false
		}
	}
	return true
}

// labelValues returns the sorted values of a label across a metric's samples.
func (m metrics) labelValues(name, label string) []string {
	var out []string
	for _, s := range m {
		if s.name == name {
			if v, ok := s.labels[label]; ok && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	sort.Strings(out)
	return out
}

// owned returns the partitions (tasks) the process has workers for: the
// engine keeps a spur_timers_pending{partition} series exactly while it
// owns the partition.
func (m metrics) owned() []int {
	var out []int
	for _, v := range m.labelValues("spur_timers_pending", "partition") {
		if n, err := strconv.Atoi(v); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// mustScrape scrapes, failing the test if spur does not answer.
func (p *spurProc) mustScrape() metrics {
	p.t.Helper()
	m, err := p.scrape()
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	return m
}

// waitUntil polls cond every 50ms until it reports done (an empty
// status), failing the test when it returns an error or processWait passes;
// the failure names the last status, which says what is still missing.
func waitUntil(t *testing.T, what string, cond func() (status string, err error)) {
	t.Helper()
	deadline := time.Now().Add(processWait)
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		status, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if status == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s: %s", what, processWait, status)
		}
		<-tick.C
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("waited %s for %s", d.Round(time.Millisecond), what)
	}
}

// uncommitted returns "" when the group has committed every input
// partition up to its end (spur commits only offsets it has applied), and
// otherwise what is missing.
func uncommitted(adm *kadm.Client, group string, topics ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return "list end offsets: " + err.Error() // retried until the deadline
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return "fetch committed offsets: " + err.Error()
	}
	var missing []string
	ends.Each(func(o kadm.ListedOffset) {
		c, found := committed.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && (!found || c.At < o.Offset) {
			missing = append(missing, fmt.Sprintf("%s/%d at %d of %d", o.Topic, o.Partition, c.At, o.Offset))
		}
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		return "group " + group + " has not committed " + strings.Join(missing, ", ")
	}
	return ""
}

// consumed returns the number of input records the process has applied
// (valid or dead-lettered), or -1 when it does not answer.
func (p *spurProc) consumed() float64 {
	m, err := p.scrape()
	if err != nil {
		return -1
	}
	return m.sum("spur_events_consumed_total")
}

// busy returns "" when a process has nothing left to do (no timer armed,
// no output record waiting for the broker's acknowledgement), and otherwise
// what it still holds.
func (p *spurProc) busy() string {
	m, err := p.scrape()
	if err != nil {
		return p.name + ": " + err.Error()
	}
	if timers, outbox := m.sum("spur_timers_pending"), m.sum("spur_outbox_pending"); timers != 0 || outbox != 0 {
		return fmt.Sprintf("%s: %v timers pending, %v outbox records unacknowledged", p.name, timers, outbox)
	}
	return ""
}

// tail collects every record of a topic from its start, in the background,
// with a franz-go consumer outside any group.
type tail struct {
	mu   sync.Mutex
	recs []*kgo.Record
	next map[int32]int64 // next offset per partition
}

// tailTopic starts collecting topic; it stops when the test ends. opts
// adds to the client's options, such as read_committed isolation.
func tailTopic(t *testing.T, bs []string, topic string, opts ...kgo.Opt) *tail {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(bs...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	tl := &tail{next: map[int32]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			tl.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				tl.recs = append(tl.recs, r)
				tl.next[r.Partition] = r.Offset + 1
			})
			tl.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
	return tl
}

// records returns what has been collected so far.
func (tl *tail) records() []*kgo.Record {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.recs)
}

// reached reports whether the tail has read up to the given end offsets.
func (tl *tail) reached(ends map[int32]int64) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for p, end := range ends {
		if end > 0 && tl.next[p] < end {
			return false
		}
	}
	return true
}

// readToEnd waits until the tail has read every record the topic holds now.
func (tl *tail) readToEnd(t *testing.T, adm *kadm.Client, topic string) []*kgo.Record {
	t.Helper()
	ends := endOffsets(t, adm, topic)
	waitUntil(t, "reading "+topic+" to its end", func() (string, error) {
		if !tl.reached(ends) {
			return fmt.Sprintf("read %d records", len(tl.records())), nil
		}
		return "", nil
	})
	return tl.records()
}

// trigger is one record of the triggers topic, decoded.
type trigger struct {
	emit.Trigger
	Key       string
	Partition int32
	Offset    int64
}

// decodeTriggers decodes trigger records, checking each against
// schemas/trigger.json and the record key; invalid records fail the test
// (but are still returned when they parse).
func decodeTriggers(t *testing.T, recs []*kgo.Record) []trigger {
	t.Helper()
	out := make([]trigger, 0, len(recs))
	for _, r := range recs {
		tr, err := decodeTrigger(r.Key, r.Value)
		if err != nil {
			t.Errorf("%s/%d@%d: %v\n%s", r.Topic, r.Partition, r.Offset, err, r.Value)
			continue
		}
		tr.Partition, tr.Offset = r.Partition, r.Offset
		out = append(out, tr)
	}
	return out
}

// decodeTrigger validates and decodes one trigger record.
func decodeTrigger(key, value []byte) (trigger, error) {
	var tr trigger
	if err := event.ValidateTrigger(value); err != nil {
		return tr, fmt.Errorf("trigger violates schemas/trigger.json: %w", err)
	}
	if err := json.Unmarshal(value, &tr.Trigger); err != nil {
		return tr, err
	}
	tr.Key = string(key)
	if tr.Key != tr.CustomerID {
		return tr, fmt.Errorf("trigger key %q, customer_id %q", tr.Key, tr.CustomerID)
	}
	return tr, nil
}

// quickTriggers decodes what parses, without failing: for polling.
func quickTriggers(recs []*kgo.Record) []emit.Trigger {
	out := make([]emit.Trigger, 0, len(recs))
	for _, r := range recs {
		var tr emit.Trigger
		if json.Unmarshal(r.Value, &tr) == nil {
			out = append(out, tr)
		}
	}
	return out
}

// missingCustomers returns "" when every customer in want has at least one
// trigger, and otherwise how many lack one, with a few examples.
func missingCustomers(trs []emit.Trigger, want map[string]bool) string {
	got := make(map[string]bool, len(trs))
	for _, tr := range trs {
		got[tr.CustomerID] = true
	}
	var missing []string
	for c := range want {
		if !got[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	sort.Strings(missing)
	return fmt.Sprintf("%d of %d customers without a trigger (%s)", len(missing), len(want), strings.Join(missing[:min(5, len(missing))], ", "))
}

// byID groups triggers by trigger_id.
func byID(trs []trigger) map[string][]trigger {
	out := map[string][]trigger{}
	for _, tr := range trs {
		out[tr.TriggerID] = append(out[tr.TriggerID], tr)
	}
	return out
}

// sameTrigger reports how two copies of one trigger_id differ in what must
// not change when a trigger is re-sent or re-qualified (emitted_at and the
// coupon's expiry, derived from the emission time, may).
func sameTrigger(a, b trigger) string {
	var diffs []string
	if a.Kind != b.Kind || a.Rule != b.Rule || a.CustomerID != b.CustomerID || a.Variant != b.Variant {
		diffs = append(diffs, fmt.Sprintf("kind/rule/customer/variant %s/%s/%s/%s vs %s/%s/%s/%s",
			a.Kind, a.Rule, a.CustomerID, a.Variant, b.Kind, b.Rule, b.CustomerID, b.Variant))
	}
	if !a.QualifiedAt.Equal(b.QualifiedAt) {
		diffs = append(diffs, fmt.Sprintf("qualified_at %s vs %s", a.QualifiedAt, b.QualifiedAt))
	}
	if !slices.Equal(a.CauseEventIDs, b.CauseEventIDs) {
		diffs = append(diffs, fmt.Sprintf("cause %v vs %v", a.CauseEventIDs, b.CauseEventIDs))
	}
	ac, bc := a.Payload.Coupon, b.Payload.Coupon
	if (ac == nil) != (bc == nil) || ac != nil && (ac.Code != bc.Code || ac.PercentOff != bc.PercentOff) {
		diffs = append(diffs, fmt.Sprintf("coupon %+v vs %+v", ac, bc))
	}
	ja, _ := json.Marshal(a.Payload.Cart)
	jb, _ := json.Marshal(b.Payload.Cart)
	if string(ja) != string(jb) {
		diffs = append(diffs, fmt.Sprintf("cart %s vs %s", ja, jb))
	}
	return strings.Join(diffs, "; ")
}

// publishOrdersAfterCarts publishes events with pkg/publish as a storefront
// does: the clickstream events first, and the orders once the broker has
// acknowledged them.
//
// Publishing a cart_add and the order that follows it in one call (one
// produce, two topics) is not reliable: the broker may append the order
// first, spur then applies it first (it honours the order in which records
// of its two topics were appended, not their timestamps), and the older
// cart_add arms a wait that nothing cancels — a customer who ordered gets a
// coupon. Observed with 1000 customers whose cart_add and order (500ms later
// in event time) were produced together with franz-go: 0 to 8 such coupons
// per run, each customer's state (pkg/state) listing the order applied
// before the cart_add, and none in 6 runs once the orders were produced
// after the cart_adds were acknowledged.
func publishOrdersAfterCarts(t *testing.T, pub *publish.Publisher, evs []event.Event) {
	t.Helper()
	var clicks, orders []event.Event
	for _, ev := range evs {
		if ev.Type == event.Order {
			orders = append(orders, ev)
		} else {
			clicks = append(clicks, ev)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for _, evs := range [][]event.Event{clicks, orders} {
		if err := pub.Publish(ctx, evs...); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// ms truncates to the millisecond, the precision of event time.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }
