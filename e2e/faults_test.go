//go:build e2e

package e2e

// The fault-injection suite (issue 6): seeded storefront traffic from
// pkg/loadgen, whose oracle knows every coupon in advance, published in real
// time to a group of `spur run` processes while the test kills, adds, removes
// and wipes them, restarts the broker, and appends garbage to the input.
// docs/RELIABILITY.md describes the scenarios and records their figures.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/loadgen"
)

// KafkaCtlEnv names the environment variable with the path of
// deploy/kafka/kafka.sh, whose `stop` and `start` restart the suite's broker
// on its data; kafka.mk sets it. Without it the broker restart is skipped.
const KafkaCtlEnv = "SPUR_KAFKA_CTL"

// FaultsReportEnv names the file the suite writes its table to; kafka.mk
// sets it and prints the file after the run.
const FaultsReportEnv = "SPUR_FAULTS_REPORT"

// The workload of every scenario: at faultRate records per second, sessions
// of faultCustomers customers, and the shipped cart_abandonment pipeline
// with a wait of faultWait. The generator keeps each customer's events
// faultGuard away from their pending deadline (see TestRunRealisticSessions).
const (
	faultParts     = 6
	faultWait      = 3 * time.Second
	faultGuard     = time.Second
	faultRate      = 250
	faultCustomers = 3000
	faultSessions  = 150
	faultMalformed = 0.005
	// faultTail is the traffic that still flows after a scenario's last
	// fault, so that every fault happens mid-stream.
	faultTail = 3 * time.Second
	// faultMaxEventBytes is spur's --max-event-bytes: a huge record is
	// dead-lettered as too_large.
	faultMaxEventBytes = 64 << 10
)

// noChangelog runs spur without its changelog: a task without local state
// is rebuilt by replaying its input from the start, and one taken back
// resumes from its stale local state's offset. The scale and data-dir
// scenarios run both ways.
var noChangelog = []string{"--no-changelog"}

// transactions runs spur with --transactions: each task's changelog and
// output records are written in Kafka transactions, so a read_committed
// consumer (the suite's tails are) must see no duplicate at all.
var transactions = []string{"--transactions"}

// faultRow is one line of the table: a scenario and its figures.
type faultRow struct {
	scenario string
	events   int64 // input records published: events, loadgen's malformed ones, injected garbage
	dead     int   // input records that must be dead-lettered
	expected int   // coupons the oracle expects
	seen     int   // distinct coupons (trigger_ids) on the triggers topic
	dups     int   // extra copies of a trigger_id on the triggers topic
	dlqDups  int   // extra copies of a dead letter
	profiles int   // customers whose state was compared with what was published
	recovery string
	result   string
}

// TestFaults runs the fault-injection scenarios one after the other, each on
// its own topics and consumer group, and reports a table of their figures.
// After every scenario it checks that each coupon the oracle expects is on
// the triggers topic (once by trigger_id), that no other trigger is, that
// copies of a trigger_id are identical re-sends, that every customer's
// state counts exactly the events published for them (nothing applied
// twice, nothing lost), and that the dead-letter topic holds exactly the
// garbage, byte for byte.
func TestFaults(t *testing.T) {
	brokers(t)
	scenarios := []struct {
		name string
		run  func(t *testing.T, row *faultRow)
	}{
		{"kill9", func(t *testing.T, row *faultRow) { faultKill9(t, row, nil) }},
		{"scale", func(t *testing.T, row *faultRow) { faultScale(t, row, nil) }},
		{"scale_no_changelog", func(t *testing.T, row *faultRow) { faultScale(t, row, noChangelog) }},
		{"broker_restart", faultBrokerRestart},
		{"wipe_data_dir", func(t *testing.T, row *faultRow) { faultWipeDataDir(t, row, nil) }},
		{"wipe_data_dir_no_changelog", func(t *testing.T, row *faultRow) { faultWipeDataDir(t, row, noChangelog) }},
		{"garbage", faultGarbage},
		{"kill9_transactions", func(t *testing.T, row *faultRow) { faultKill9(t, row, transactions) }},
		{"wipe_data_dir_transactions", func(t *testing.T, row *faultRow) { faultWipeDataDir(t, row, transactions) }},
	}
	var rows []faultRow
	start := time.Now()
	for _, sc := range scenarios {
		row := faultRow{scenario: sc.name, recovery: "-"}
		began := time.Now()
		ran := false
		ok := t.Run(sc.name, func(t *testing.T) { ran = true; sc.run(t, &row) })
		if !ran {
			continue // not selected by -run
		}
		switch {
		case row.result != "":
		case !ok:
			row.result = "FAIL"
		default:
			row.result = "pass"
		}
		if row.result != "skipped" {
			row.result += fmt.Sprintf(" (%s)", time.Since(began).Round(time.Second))
		}
		rows = append(rows, row)
	}
	table := faultTable(rows, time.Since(start))
	t.Logf("fault-injection suite:\n%s", table)
	if path := os.Getenv(FaultsReportEnv); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}
}

// faultTable renders the rows as a Markdown table.
func faultTable(rows []faultRow, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "spur fault-injection suite (e2e/faults_test.go), %s, %d partitions, %d records/s, wait %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), faultParts, faultRate, faultWait)
	b.WriteString("| scenario | events | dead letters | triggers expected | seen | duplicated | profiles checked | recovery | result |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range rows {
		dead := strconv.Itoa(r.dead)
		if r.dlqDups > 0 {
			dead += fmt.Sprintf(" (+%d re-sent)", r.dlqDups)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %d | %d | %s | %s |\n",
			r.scenario, r.events, dead, r.expected, r.seen, r.dups, r.profiles, r.recovery, r.result)
	}
	fmt.Fprintf(&b, "\nsuite: %s\n", took.Round(time.Second))
	return b.String()
}

// faultKill9 runs two members and kills one with SIGKILL three times while
// it applies input (alternating members), restarting it at once on the same
// data dir and static member id, as a supervisor would. Recovery: from the
// kill until every partition has an owner again that has applied and
// committed everything published before the kill.
func faultKill9(t *testing.T, row *faultRow, extra []string) {
	e := newFaultEnv(t, extra)
	a, b := e.member("a"), e.member("b")
	e.startAll(a, b)
	e.load.start()
	var times []string
	for i, victim := range []*faultMember{b, a, b} {
		e.load.waitPublished(int64(500 * (i + 1)))
		waitUntil(t, victim.name+" to apply input and emit triggers", func() (string, error) {
			if err := victim.proc.checkAlive(); err != nil {
				return "", err
			}
			m, err := victim.proc.scrape()
			if err != nil {
				return err.Error(), nil
			}
			if c, n := m.sum("spur_events_consumed_total"), m.sum("spur_triggers_total"); c < 300 || n < 2 {
				return fmt.Sprintf("%s applied %v records, emitted %v triggers", victim.proc.name, c, n), nil
			}
			return "", nil
		})
		killed := e.kill(victim)
		e.start(victim)
		d := e.waitRecovered("the group to recover from killing "+victim.name, killed)
		times = append(times, d.Round(100*time.Millisecond).String())
	}
	row.recovery = "3 kills: " + strings.Join(times, ", ")
	e.load.runFor(faultTail)
	e.finish(row)
}

// faultScale starts one member, adds a second and a third while traffic
// flows, then removes the third and the second (SIGTERM: they drain, commit
// and leave the group). Every move of a task is a cooperative rebalance;
// a member taking a task it holds no state for rebuilds it (changelog
// restore, or a replay of the input), and one taking back a task it owned
// before resumes from the offset its stale state holds. Recovery: from the
// membership change until every task has one caught-up owner.
func faultScale(t *testing.T, row *faultRow, extra []string) {
	e := newFaultEnv(t, extra)
	a, b, c := e.member("a"), e.member("b"), e.member("c")
	e.startAll(a)
	e.load.start()
	var steps []string
	step := func(what string, n int64, change func() time.Time) {
		e.load.waitPublished(n)
		at := change()
		d := e.waitRecovered("the group to settle after "+what, at)
		steps = append(steps, fmt.Sprintf("%s %s", what, d.Round(100*time.Millisecond)))
	}
	step("+b", 400, func() time.Time { e.start(b); return time.Now() })
	step("+c", 800, func() time.Time { e.start(c); return time.Now() })
	step("-c", 1200, func() time.Time { return e.stop(c) })
	step("-b", 1600, func() time.Time { return e.stop(b) })
	row.recovery = strings.Join(steps, ", ")
	e.load.runFor(faultTail)
	e.finish(row)
}

// faultBrokerRestart stops the broker (SIGTERM, a clean shutdown) in the
// middle of the traffic and starts it again on the same data, with two
// members running throughout: they must ride it out without exiting, lose
// nothing and apply nothing twice. The storefront cannot publish while the
// broker is down, so the traffic pauses (its buffered records flushed) for
// the outage: a record held in a producer past its customer's deadline would
// rightly change the outcome the oracle predicts. Recovery: from the broker
// answering again until spur has applied and committed what was published
// after it came back.
func faultBrokerRestart(t *testing.T, row *faultRow) {
	ctl := os.Getenv(KafkaCtlEnv)
	if ctl == "" {
		row.result = "skipped"
		t.Skipf("set %s to deploy/kafka/kafka.sh (make test-kafka does) to restart the broker", KafkaCtlEnv)
	}
	e := newFaultEnv(t, nil)
	a, b := e.member("a"), e.member("b")
	e.startAll(a, b)
	e.load.start()
	e.load.waitPublished(1000)

	e.load.pause()
	stopped := time.Now()
	kafkaCtl(t, ctl, "stop")
	for _, m := range []*faultMember{a, b} {
		if err := m.proc.checkAlive(); err != nil {
			t.Fatal(err)
		}
	}
	kafkaCtl(t, ctl, "start")
	back := time.Now()
	down := back.Sub(stopped)
	// Start the clock once the broker answers, and stop it once spur has
	// applied records published after that: wait for every clickstream
	// partition to have grown.
	before := e.inputEnds()
	e.load.resume()
	var after map[string]map[int32]int64
	waitUntil(t, "the traffic to reach every partition after the restart", func() (string, error) {
		after = e.inputEnds()
		for p, end := range before[e.topics.Clicks] {
			if after[e.topics.Clicks][p] <= end {
				return fmt.Sprintf("clickstream partition %d still ends at %d", p, end), nil
			}
		}
		return "", nil
	})
	rec := time.Since(back) + e.waitRecoveredTo("spur to catch up after the broker restart", after)
	row.recovery = fmt.Sprintf("broker down %s; spur caught up %s after it answered", down.Round(100*time.Millisecond), rec.Round(100*time.Millisecond))
	e.load.runFor(faultTail)
	e.finish(row)
}

// kafkaCtl runs deploy/kafka/kafka.sh stop or start (in the environment
// kafka.mk's `with` gave the test) and fails the test if it fails. A start
// that fails has already stopped whatever it started (kafka.sh's
// wait_ready), and `with` stops the broker at the end in any case.
func kafkaCtl(t *testing.T, ctl, verb string) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", ctl, verb).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", ctl, verb, err, out)
	}
	t.Logf("kafka.sh %s took %s:\n%s", verb, time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
}

// faultWipeDataDir kills a member with SIGKILL late in the traffic, deletes
// its data dir, and restarts it with the same static member id, so that it
// gets its tasks back with no local state at all (a replaced disk). It must
// rebuild them — from the changelog once restore-on-assignment lands, until
// then by replaying their input from the start — and carry on as if nothing
// had happened. Recovery: from the restart until its tasks are caught up,
// which is the restore time.
func faultWipeDataDir(t *testing.T, row *faultRow, extra []string) {
	e := newFaultEnv(t, extra)
	a, b := e.member("a"), e.member("b")
	e.startAll(a, b)
	e.load.start()
	e.load.waitPublished(2500)
	m := b.proc.mustScrape()
	owned := m.owned()
	ends := e.inputEnds()
	var history int64
	for _, p := range owned {
		for _, topic := range []string{e.topics.Clicks, e.topics.Orders} {
			history += ends[topic][int32(p)]
		}
	}
	e.kill(b)
	if err := os.RemoveAll(b.dataDir); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	e.start(b)
	d := e.waitRecovered("b to rebuild its tasks", restarted)
	t.Logf("b rebuilt partitions %v (%d input records when it was killed) in %s; its log:\n\t%s", owned, history, d.Round(time.Millisecond),
		strings.Join(b.proc.logEvents("no local state", "restor", "partitions assigned"), "\n\t"))
	row.recovery = fmt.Sprintf("restore of %d tasks (%d input records) %s", len(owned), history, d.Round(100*time.Millisecond))
	e.load.runFor(faultTail)
	e.finish(row)
}

// faultGarbage appends garbage to the tail of every partition of both input
// topics in the middle of the traffic — a record truncated in flight, binary
// noise, NUL bytes, a JSON array, records too large to parse, an empty
// value, an unknown type, a wrong field type, a timestamp from the future —
// keyed by customers who are in the middle of their sessions. Each must land
// on the dead-letter topic byte for byte with its reason, and nothing else
// may change: the coupons and every profile still match the oracle.
// Recovery: from the append until every garbage record is dead-lettered.
func faultGarbage(t *testing.T, row *faultRow) {
	e := newFaultEnv(t, []string{"--max-event-bytes", strconv.Itoa(faultMaxEventBytes)})
	a, b := e.member("a"), e.member("b")
	e.startAll(a, b)
	e.load.start()
	e.load.waitPublished(1000)
	bad := garbage(e.topics, time.Now())
	at := e.load.inject(bad)
	var seen int
	waitUntil(t, "every garbage record on the dead-letter topic", func() (string, error) {
		seen = 0
		got := map[string]bool{}
		for _, r := range e.dlq.records() {
			got[dlqSource(r)] = true
		}
		for _, g := range bad {
			if got[fmt.Sprintf("%s/%d@%d", g.rec.Topic, g.rec.Partition, g.rec.Offset)] {
				seen++
			}
		}
		if seen < len(bad) {
			return fmt.Sprintf("%d of %d garbage records dead-lettered", seen, len(bad)), nil
		}
		return "", nil
	})
	d := time.Since(at)
	row.recovery = fmt.Sprintf("%d garbage records dead-lettered %s after the append", len(bad), d.Round(100*time.Millisecond))
	e.load.runFor(faultTail)
	e.finish(row)
}

// garbage returns the records faultGarbage appends: for each input topic and
// partition, a few kinds of garbage keyed by a customer of that partition.
func garbage(topics spurTopics, now time.Time) []badRecord {
	keys := map[int32]string{}
	for i := 1; len(keys) < faultParts; i++ {
		k := "c-" + strconv.Itoa(i)
		if p := murmur2Partition([]byte(k), faultParts); keys[p] == "" {
			keys[p] = k
		}
	}
	ts := ms(now).Format(time.RFC3339Nano)
	rng := rand.New(rand.NewPCG(6, 6))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		b[0] = 0xff // never a JSON value's first byte
		return b
	}
	var out []badRecord
	for p := range int32(faultParts) {
		k := keys[p]
		event := `{"event_id":"g-` + k + `","type":"cart_add","ts":"` + ts + `","customer_id":"` + k + `","sku":"sku-1","category":"shoes","price":59.9,"quantity":1}`
		rec := func(topic string, value []byte) *kgo.Record {
			return &kgo.Record{Topic: topic, Key: []byte(k), Value: value}
		}
		out = append(out,
			badRecord{rec(topics.Clicks, []byte(event[:len(event)/2])), "malformed_json"},
			badRecord{rec(topics.Clicks, noise(512)), "malformed_json"},
			badRecord{rec(topics.Clicks, make([]byte, 64)), "malformed_json"},
			badRecord{rec(topics.Clicks, []byte(`[`+event+`]`)), "malformed_json"},
			badRecord{rec(topics.Clicks, noise(faultMaxEventBytes*3)), "too_large"},
			badRecord{rec(topics.Clicks, []byte(strings.Replace(event, `"quantity":1`, `"quantity":1,"note":"`+strings.Repeat("z", faultMaxEventBytes)+`"`, 1))), "too_large"},
			badRecord{rec(topics.Clicks, nil), "empty"},
			badRecord{rec(topics.Clicks, []byte(strings.Replace(event, `"cart_add"`, `"cart_explode"`, 1))), "unknown_type"},
			badRecord{rec(topics.Clicks, []byte(strings.Replace(event, `"price":59.9`, `"price":"cheap"`, 1))), "invalid_field"},
			badRecord{rec(topics.Clicks, []byte(strings.Replace(event, ts, ms(now.Add(time.Hour)).Format(time.RFC3339Nano), 1))), "clock_skew"},
			badRecord{rec(topics.Orders, []byte(`{"event_id":"g-o-`+k+`","type":"order","ts":"`+ts+`","customer_id":"`+k+`","order_id":"o-g","total":`)), "malformed_json"},
			badRecord{rec(topics.Orders, noise(256)), "malformed_json"},
			badRecord{rec(topics.Orders, noise(faultMaxEventBytes+1)), "too_large"},
		)
	}
	return out
}

// ---- the scenario environment ----

// faultEnv is one scenario: its topics, consumer group, members, workload
// and the tails of its output topics.
type faultEnv struct {
	t        *testing.T
	bs       []string
	adm      *kadm.Client
	topics   spurTopics
	group    string
	pipes    string
	extra    []string
	members  []*faultMember
	load     *faultLoad
	triggers *tail
	dlq      *tail
	txn      bool // spur runs with --transactions
	// dupEvents adds up spur_duplicate_events_total of every member
	// incarnation, scraped before it is killed or stopped.
	dupEvents float64
}

// faultMember is a member of the group across restarts: one data dir and
// one static member id, run by successive processes.
type faultMember struct {
	name, instanceID, dir, dataDir string
	runs                           int
	proc                           *spurProc
	up                             bool // meant to be running
}

func newFaultEnv(t *testing.T, extra []string) *faultEnv {
	t.Helper()
	e := &faultEnv{t: t, bs: brokers(t), adm: admin(t), group: uniqueName(t, "e2e"), pipes: pipelinesDir(t, faultWait), extra: extra}
	e.topics = newTopics(t, e.adm, faultParts)
	// Read with isolation level read_committed, as a consumer of spur's
	// output must with --transactions (and may without).
	committed := kgo.FetchIsolationLevel(kgo.ReadCommitted())
	e.triggers, e.dlq = tailTopic(t, e.bs, e.topics.Triggers, committed), tailTopic(t, e.bs, e.topics.DLQ, committed)
	e.txn = slices.Contains(extra, "--transactions")
	e.load = newFaultLoad(t, e.bs, e.topics)
	return e
}

func (e *faultEnv) member(name string) *faultMember {
	dir := e.t.TempDir()
	m := &faultMember{name: name, instanceID: e.group + "." + name, dir: dir, dataDir: filepath.Join(dir, "data")}
	e.members = append(e.members, m)
	return m
}

// start runs a new process for m on its data dir and member id.
func (e *faultEnv) start(m *faultMember) {
	t := e.t
	t.Helper()
	m.runs++
	p := &spurProc{t: t, name: fmt.Sprintf("%s#%d", m.name, m.runs), http: freeAddr(t), dataDir: m.dataDir,
		logPath: filepath.Join(m.dir, fmt.Sprintf("%s.%d.log", m.name, m.runs))}
	args := []string{"run",
		"--brokers", strings.Join(e.bs, ","),
		"--group", e.group,
		"--instance-id", m.instanceID,
		"--data-dir", m.dataDir,
		"--pipelines", e.pipes,
		"--http", p.http,
		"--create-topics", "--partitions", strconv.Itoa(faultParts),
		"--commit-interval", "100ms",
		"--session-timeout", "6s",
		"--log-format", "json",
	}
	args = append(args, e.topics.flags()...)
	args = append(args, e.extra...)
	p.start(args)
	m.proc, m.up = p, true
}

// startAll starts the members one after another, each once the one before
// is ready, and waits until they share the tasks. (Started together against
// a new group, all but one of them exit: each creates the changelog topic,
// and the losers take TOPIC_ALREADY_EXISTS for a failure — kadm's
// CreateTopic returns the topic's error as its error, which
// ingest.ensureChangelog does not expect.)
func (e *faultEnv) startAll(ms ...*faultMember) {
	e.t.Helper()
	for _, m := range ms {
		e.start(m)
		m.proc.waitReady()
	}
	e.waitShared()
}

// kill scrapes m's duplicate count and kills it with SIGKILL; it returns
// the moment of the kill.
func (e *faultEnv) kill(m *faultMember) time.Time {
	e.dupEvents += m.proc.mustScrape().sum("spur_duplicate_events_total")
	m.up = false
	m.proc.kill()
	return time.Now()
}

// stop scrapes m's duplicate count and stops it with SIGTERM (it drains,
// commits and leaves the group); it returns the moment it exited.
func (e *faultEnv) stop(m *faultMember) time.Time {
	e.dupEvents += m.proc.mustScrape().sum("spur_duplicate_events_total")
	m.up = false
	if err := m.proc.stop(); err != nil {
		e.t.Errorf("%s: %v", m.proc.name, err)
	}
	return time.Now()
}

// running returns the members meant to be running, failing if one exited.
func (e *faultEnv) running() ([]*faultMember, error) {
	var out []*faultMember
	for _, m := range e.members {
		if !m.up {
			continue
		}
		if err := m.proc.checkAlive(); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// waitShared waits until the running members own every task between them,
// each at least one, before the traffic starts.
func (e *faultEnv) waitShared() {
	e.t.Helper()
	waitUntil(e.t, "the members to share the tasks", func() (string, error) {
		_, s, err := e.owners()
		return s, err
	})
}

// owners maps each task to the member that owns it; the status is "" when
// every task has exactly one owner and every running member owns one.
func (e *faultEnv) owners() (map[int]*faultMember, string, error) {
	ms, err := e.running()
	if err != nil {
		return nil, "", err
	}
	owners := map[int][]*faultMember{}
	for _, m := range ms {
		sc, err := m.proc.scrape()
		if err != nil {
			return nil, m.proc.name + ": " + err.Error(), nil
		}
		owned := sc.owned()
		if len(owned) == 0 {
			return nil, m.proc.name + " owns no task", nil
		}
		for _, p := range owned {
			owners[p] = append(owners[p], m)
		}
	}
	out := map[int]*faultMember{}
	for p := range faultParts {
		if len(owners[p]) != 1 {
			var names []string
			for _, m := range owners[p] {
				names = append(names, m.proc.name)
			}
			return nil, fmt.Sprintf("task %d owned by %v", p, names), nil
		}
		out[p] = owners[p][0]
	}
	return out, "", nil
}

// inputEnds returns the input topics' end offsets, or nil while the broker
// does not answer.
func (e *faultEnv) inputEnds() map[string]map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := e.adm.ListEndOffsets(ctx, e.topics.Clicks, e.topics.Orders)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return nil
	}
	out := map[string]map[int32]int64{e.topics.Clicks: {}, e.topics.Orders: {}}
	offs.Each(func(o kadm.ListedOffset) { out[o.Topic][o.Partition] = o.Offset })
	return out
}

// caughtUp returns "" when every task has exactly one owner among the
// running members, the owner has applied its input up to the end it last
// fetched (lag 0 on each input topic with records), no member holds an
// unacknowledged output record, and the group has committed at least ends;
// and otherwise what is missing. For the idle input at the end of a
// scenario: while traffic flows, some task is always a record or two
// behind (see waitRecoveredTo).
func (e *faultEnv) caughtUp(ends map[string]map[int32]int64) (string, error) {
	owners, s, err := e.owners()
	if s != "" || err != nil {
		return s, err
	}
	scrapes := map[*faultMember]metrics{}
	for _, m := range owners {
		if _, ok := scrapes[m]; ok {
			continue
		}
		sc, err := m.proc.scrape()
		if err != nil {
			return m.proc.name + ": " + err.Error(), nil
		}
		if n := sc.sum("spur_outbox_pending"); n != 0 {
			return fmt.Sprintf("%s: %v output records unacknowledged", m.proc.name, n), nil
		}
		scrapes[m] = sc
	}
	committed, s := e.committed()
	if s != "" {
		return s, nil
	}
	for p, m := range owners {
		if s := e.taskCaughtUp(p, m, scrapes[m], ends, committed); s != "" {
			return s, nil
		}
	}
	return "", nil
}

// taskCaughtUp returns "" when m, the owner of task p, has applied its input
// up to the end it last fetched (lag 0 on each input topic with records)
// and the group has committed at least ends for it.
func (e *faultEnv) taskCaughtUp(p int, m *faultMember, sc metrics, ends map[string]map[int32]int64, committed kadm.OffsetResponses) string {
	for _, topic := range []string{e.topics.Clicks, e.topics.Orders} {
		end := ends[topic][int32(p)]
		if end == 0 {
			continue
		}
		lag := sc.find("spur_consumer_lag", "topic", topic, "partition", strconv.Itoa(p))
		if len(lag) == 0 || lag[0].value != 0 {
			return fmt.Sprintf("%s is catching up on %s/%d (lag %v)", m.proc.name, topic, p, lag)
		}
		if c, ok := committed.Lookup(topic, int32(p)); !ok || c.At < end {
			return fmt.Sprintf("group has committed %s/%d up to %d of %d", topic, p, c.At, end)
		}
	}
	return ""
}

// committed returns the group's committed offsets, or a status saying why
// it could not.
func (e *faultEnv) committed() (kadm.OffsetResponses, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	committed, err := e.adm.FetchOffsets(ctx, e.group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return nil, "fetch committed offsets: " + err.Error()
	}
	return committed, ""
}

// waitRecovered waits until the group has caught up with everything
// published before now, and returns the time since from.
func (e *faultEnv) waitRecovered(what string, from time.Time) time.Duration {
	e.t.Helper()
	start := time.Now()
	var ends map[string]map[int32]int64
	waitUntil(e.t, "the input's end offsets", func() (string, error) {
		if ends = e.inputEnds(); ends == nil {
			return "the broker does not answer", nil
		}
		return "", nil
	})
	return start.Sub(from) + e.waitRecoveredTo(what, ends)
}

// waitRecoveredTo waits until the group has recovered up to ends: every
// task has been seen, with the group's ownership settled (each task one
// owner, every running member owning one), caught up by its owner (lag 0
// on both input topics) and committed at least up to ends. Tasks are timed
// one by one, since under traffic some task is always a record or two
// behind; it returns the time until the last.
func (e *faultEnv) waitRecoveredTo(what string, ends map[string]map[int32]int64) time.Duration {
	e.t.Helper()
	start := time.Now()
	done := map[int]time.Duration{}
	var trace []string
	last := start
	waitUntil(e.t, what, func() (string, error) {
		s, err := e.recoveredTasks(ends, start, done)
		if s != "" && time.Since(last) >= time.Second {
			last = time.Now()
			trace = append(trace, fmt.Sprintf("+%s %s", time.Since(start).Round(100*time.Millisecond), s))
		}
		return s, err
	})
	var d time.Duration
	for _, t := range done {
		d = max(d, t)
	}
	if len(trace) > 0 {
		e.t.Logf("%s took %s:\n\t%s", what, d.Round(time.Millisecond), strings.Join(trace, "\n\t"))
		for _, m := range e.members {
			if m.up {
				e.t.Logf("%s's group events:\n\t%s", m.proc.name, strings.Join(m.proc.logEvents("assigned", "revoked", "lost", "restor", "local state", "re-sending"), "\n\t"))
			}
		}
	}
	return d
}

// recoveredTasks records in done when each task first met the conditions
// of waitRecoveredTo, and returns "" once all have.
func (e *faultEnv) recoveredTasks(ends map[string]map[int32]int64, start time.Time, done map[int]time.Duration) (string, error) {
	owners, s, err := e.owners()
	if s != "" || err != nil {
		return s, err
	}
	committed, s := e.committed()
	if s != "" {
		return s, nil
	}
	scrapes := map[*faultMember]metrics{}
	var waiting []string
	for p := range faultParts {
		if _, ok := done[p]; ok {
			continue
		}
		m := owners[p]
		sc, ok := scrapes[m]
		if !ok {
			if sc, err = m.proc.scrape(); err != nil {
				return m.proc.name + ": " + err.Error(), nil
			}
			scrapes[m] = sc
		}
		if s := e.taskCaughtUp(p, m, sc, ends, committed); s != "" {
			waiting = append(waiting, s)
			continue
		}
		done[p] = time.Since(start)
	}
	return strings.Join(waiting, "; "), nil
}

// finish stops the traffic, waits until spur has delivered every expected
// coupon and dead letter and holds nothing more, and checks everything
// against what was published; it fills in row.
func (e *faultEnv) finish(row *faultRow) {
	t := e.t
	t.Helper()
	w := e.load
	w.finish()
	bad := w.badRecords()
	expected := w.gen.Oracle().Expected(time.Now().Add(time.Hour))
	want := make([]wantCoupon, 0, len(expected))
	wantCustomers := map[string]bool{}
	for _, x := range expected {
		want = append(want, wantCoupon{customer: x.CustomerID, cause: x.CauseEventID, qualified: x.QualifiedAt})
		wantCustomers[x.CustomerID] = true
	}
	row.events, row.dead, row.expected = w.published(), len(bad), len(expected)
	// The generator's malformed share is random (about 10 per scenario at
	// this rate, 4 seen in one run); the garbage scenario covers the
	// dead-letter path in depth, so one is enough here.
	if len(expected) < 20 || len(bad) == 0 {
		t.Fatalf("the traffic is too thin to mean much: %d coupons, %d dead letters", len(expected), len(bad))
	}
	ends := e.inputEnds()
	waitUntil(t, "every expected coupon and dead letter, all input applied, nothing pending", func() (string, error) {
		if s, err := e.caughtUp(ends); s != "" || err != nil {
			return s, err
		}
		if s := missingCustomers(quickTriggers(e.triggers.records()), wantCustomers); s != "" {
			return s, nil
		}
		srcs := map[string]bool{}
		for _, r := range e.dlq.records() {
			srcs[dlqSource(r)] = true
		}
		if len(srcs) < len(bad) {
			return fmt.Sprintf("%d of %d dead letters", len(srcs), len(bad)), nil
		}
		ms, err := e.running()
		if err != nil {
			return "", err
		}
		for _, m := range ms {
			if s := m.proc.busy(); s != "" {
				return s, nil
			}
		}
		return "", nil
	})

	trs := decodeTriggers(t, e.drain(e.triggers, e.topics.Triggers))
	row.seen, row.dups = checkFaultCoupons(t, trs, want, w.historyOf)
	row.dlqDups = checkFaultDeadLetters(t, e.drain(e.dlq, e.topics.DLQ), bad)
	if e.txn && (row.dups > 0 || row.dlqDups > 0) {
		t.Errorf("with --transactions a read_committed consumer saw %d duplicate triggers and %d duplicate dead letters, want none", row.dups, row.dlqDups)
	}
	row.profiles = e.checkProfiles()
	ms, _ := e.running()
	for _, m := range ms {
		e.dupEvents += m.proc.mustScrape().sum("spur_duplicate_events_total")
	}
	if e.dupEvents != 0 {
		t.Errorf("spur_duplicate_events_total = %v over every member: events applied twice", e.dupEvents)
	}
	if row.dups > 0 && !e.txn {
		// At-least-once: a copy is a re-send with the same trigger_id and
		// content (checked above). With transactions, none at all: pending
		// until `transactions: true` lands.
		t.Logf("%d duplicate trigger records, each with the same trigger_id and content as its first copy", row.dups)
	}
	logLatency(t, trs)
	t.Logf("%d records published (%d dead letters), %d coupons expected, %d seen, %d duplicate records, %d profiles checked; recovery: %s",
		row.events, row.dead, row.expected, row.seen, row.dups, row.profiles, row.recovery)
	for _, m := range ms {
		if err := m.proc.stop(); err != nil {
			t.Errorf("%s: %v", m.proc.name, err)
		}
		m.up = false
	}
}

// sentinelHeader marks the records drain appends to an output topic.
const sentinelHeader = "e2e-sentinel"

// drain returns every record spur wrote to topic, once spur holds nothing
// more. A read_committed consumer cannot tell it has read everything from
// the end offsets (transaction markers take offsets of their own), so drain
// appends a sentinel record to every partition and waits until the tail has
// read each: everything committed before it has been read too.
func (e *faultEnv) drain(tl *tail, topic string) []*kgo.Record {
	t := e.t
	t.Helper()
	cl := franzClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var recs []*kgo.Record
	for p := range int32(faultParts) {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte("sentinel"), Value: []byte("{}"),
			Headers: []kgo.RecordHeader{{Key: sentinelHeader, Value: []byte("1")}}})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce sentinels to %s: %v", topic, err)
	}
	var out []*kgo.Record
	waitUntil(t, "reading "+topic+" up to the sentinels", func() (string, error) {
		out = out[:0]
		seen := map[int32]bool{}
		for _, r := range tl.records() {
			if slices.ContainsFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == sentinelHeader }) {
				seen[r.Partition] = true
				continue
			}
			out = append(out, r)
		}
		if len(seen) < faultParts {
			return fmt.Sprintf("sentinels read on %d of %d partitions", len(seen), faultParts), nil
		}
		return "", nil
	})
	return out
}

// checkProfiles asks each task's owner for the state of every customer (and
// anonymous visitor) published to, and compares its applied-event and order
// counts with what was published (see subjectCounts): an event applied
// twice or lost shows as a different count. It returns the number of profiles checked.
func (e *faultEnv) checkProfiles() int {
	t := e.t
	t.Helper()
	owners, s, err := e.owners()
	if s != "" || err != nil {
		t.Fatalf("profiles: %s %v", s, err)
	}
	cl := &http.Client{Timeout: 5 * time.Second}
	subjects := e.load.subjectCounts()
	names := make([]string, 0, len(subjects))
	for id := range subjects {
		names = append(names, id)
	}
	sort.Strings(names)
	wrong := 0
	for _, id := range names {
		want := subjects[id]
		m := owners[int(murmur2Partition([]byte(id), faultParts))]
		resp, err := cl.Get("http://" + m.proc.http + "/customers/" + url.PathEscape(id))
		if err != nil {
			t.Fatalf("GET /customers/%s from %s: %v", id, m.proc.name, err)
		}
		var v struct {
			Found  bool   `json:"found"`
			Events uint64 `json:"events"`
			Orders uint32 `json:"orders"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET /customers/%s from %s: %s: %v", id, m.proc.name, resp.Status, err)
		}
		got := subjectCount{events: v.Events, orders: v.Orders}
		if !slices.Contains(want, got) || v.Found != (got.events > 0) {
			wrong++
			if wrong <= 10 {
				t.Errorf("%s (task %d, on %s): found %v, %d events applied, %d orders; published (events, orders) since the last forget: %v\n\t%s\n\tevery member's copy: %s",
					id, murmur2Partition([]byte(id), faultParts), m.proc.name, v.Found, v.Events, v.Orders, want,
					strings.Join(e.load.historyOf(id), "\n\t"), e.copiesOf(cl, id))
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d profiles differ from what was published", wrong, len(names))
	}
	return len(names)
}

// copiesOf describes what every running member holds for a customer (the
// owner's copy and stale ones), for the diagnosis of a profile mismatch.
func (e *faultEnv) copiesOf(cl *http.Client, id string) string {
	ms, err := e.running()
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, m := range ms {
		resp, err := cl.Get("http://" + m.proc.http + "/customers/" + url.PathEscape(id))
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", m.proc.name, err))
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		parts = append(parts, fmt.Sprintf("%s: %s", m.proc.name, body))
	}
	return strings.Join(parts, "\n\t")
}

// checkFaultCoupons checks the triggers against the oracle: every expected
// coupon (customer, cause, qualified_at) under exactly one trigger_id, no
// other trigger, and every further copy of a trigger_id identical to its
// first. It returns the distinct triggers seen and the duplicate records.
func checkFaultCoupons(t *testing.T, trs []trigger, want []wantCoupon, history func(string) []string) (seen, dups int) {
	t.Helper()
	report := func(customer string) {
		t.Logf("%s published:\n\t%s", customer, strings.Join(history(customer), "\n\t"))
	}
	coupons := newOracleCoupons(t, want, report)
	ids := byID(trs)
	seen = len(ids)
	for id, copies := range ids {
		tr := copies[0]
		for _, c := range copies[1:] {
			dups++
			if d := sameTrigger(tr, c); d != "" || c.TriggerID != id {
				t.Errorf("trigger %s for %s (cause %v, qualified_at %s): copies at %d@%d (emitted %s) and %d@%d (emitted %s) differ: %s",
					id, tr.CustomerID, tr.CauseEventIDs, tr.QualifiedAt.Format("15:04:05.000"), tr.Partition, tr.Offset, tr.EmittedAt.Format("15:04:05.000"),
					c.Partition, c.Offset, c.EmittedAt.Format("15:04:05.000"), d)
				report(tr.CustomerID)
			}
		}
		if tr.Kind != emit.KindCoupon || tr.Rule != "cart_abandonment" || len(tr.CauseEventIDs) != 1 {
			t.Errorf("unexpected trigger %s for %s: kind %s rule %s causes %v", id, tr.CustomerID, tr.Kind, tr.Rule, tr.CauseEventIDs)
			continue
		}
		if !coupons.match(id, tr) {
			continue
		}
		checkOffer(t, tr, nil)
	}
	coupons.checkMissing()
	return seen, dups
}

// dlqSource names the input record a dead letter came from.
func dlqSource(r *kgo.Record) string {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h[emit.HeaderTopic] + "/" + h[emit.HeaderPartition] + "@" + h[emit.HeaderOffset]
}

// checkFaultDeadLetters checks that the dead-letter topic holds every bad
// record, key and value byte for byte, with its reason when one is known
// (pkg/loadgen's garbage is only marked malformed), and nothing else; a
// record may be dead-lettered more than once only as an identical re-send.
// It returns the number of re-sent copies.
func checkFaultDeadLetters(t *testing.T, recs []*kgo.Record, bad []badRecord) (dups int) {
	t.Helper()
	want := map[string]badRecord{}
	for _, b := range bad {
		want[fmt.Sprintf("%s/%d@%d", b.rec.Topic, b.rec.Partition, b.rec.Offset)] = b
	}
	seen := map[string]bool{}
	for _, r := range recs {
		src := dlqSource(r)
		b, ok := want[src]
		if !ok {
			t.Errorf("dead letter %d@%d names source %s, which is not a bad record", r.Partition, r.Offset, src)
			continue
		}
		if seen[src] {
			dups++
		}
		seen[src] = true
		reason := ""
		for _, kv := range r.Headers {
			if kv.Key == emit.HeaderError {
				reason = string(kv.Value)
			}
		}
		if reason == "" || b.reason != "" && reason != b.reason {
			t.Errorf("bad record %s: spur-error %q, want %q", src, reason, b.reason)
		}
		if string(r.Key) != string(b.rec.Key) || string(r.Value) != string(b.rec.Value) {
			t.Errorf("bad record %s (%s): dead letter key/value differ from the source (%d vs %d value bytes)", src, b.reason, len(r.Value), len(b.rec.Value))
		}
	}
	for src, b := range want {
		if !seen[src] {
			t.Errorf("bad record %s (%q, %d bytes) was not dead-lettered", src, b.reason, len(b.rec.Value))
		}
	}
	return dups
}

// ---- the workload ----

// faultLoad publishes pkg/loadgen traffic in real time, in the background,
// and keeps what the checks need: the oracle (in the generator), every
// subject's published event and order counts, the bad records with their
// positions, and a per-key history for failure reports.
type faultLoad struct {
	t      *testing.T
	gen    *loadgen.Generator
	cl     *kgo.Client
	topics spurTopics

	// gate is held by the publishing loop while it emits a tick's records,
	// and by pause until resume; base and emitted pace the loop.
	gate    sync.Mutex
	base    time.Time
	emitted int64

	mu       sync.Mutex
	count    int64
	subjects map[string][]published
	bad      []badRecord
	history  map[string][]string
	err      error

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
	started  bool
	paused   bool // gate held by pause; only the test goroutine reads or writes it
}

// subjectCount is what a customer's or visitor's state must count: the
// events and orders applied since their last forget.
type subjectCount struct {
	events uint64
	orders uint32
}

// published is one valid event as published for its subject.
type published struct {
	ts     int64 // event time, ms
	orders bool  // on the orders topic
	typ    event.Type
}

// subjectCounts returns the counts a subject's state may hold after evs.
// spur merges a task's two input topics by record timestamp, so an event on
// one topic and an event on the other with the same millisecond may be
// applied in either order; that matters when one of them is a forget (a
// session that ends with an order and a forget in the same millisecond).
// The publish order and both tie-breaks are returned.
func subjectCounts(evs []published) []subjectCount {
	count := func(evs []published) subjectCount {
		var c subjectCount
		for _, e := range evs {
			switch e.typ {
			case event.Forget:
				c = subjectCount{}
			case event.Order:
				c.events++
				c.orders++
			default:
				c.events++
			}
		}
		return c
	}
	out := []subjectCount{count(evs)}
	for _, ordersFirst := range []bool{false, true} {
		sorted := slices.Clone(evs)
		slices.SortStableFunc(sorted, func(a, b published) int {
			if a.ts != b.ts {
				return int(a.ts - b.ts)
			}
			if a.orders == b.orders {
				return 0
			}
			if a.orders == ordersFirst {
				return -1
			}
			return 1
		})
		if c := count(sorted); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func newFaultLoad(t *testing.T, bs []string, topics spurTopics) *faultLoad {
	t.Helper()
	gen, err := loadgen.New(loadgen.Config{
		Customers: faultCustomers, MaxSessions: faultSessions, Seed: time.Now().UnixNano(), Wait: faultWait, DeadlineGuard: faultGuard,
		MalformedShare: faultMalformed, ClickstreamTopic: topics.Clicks, OrdersTopic: topics.Orders,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loadgen seed %d", gen.Config().Seed)
	cl, err := kgo.NewClient(kgo.SeedBrokers(bs...), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	w := &faultLoad{t: t, gen: gen, cl: cl, topics: topics, subjects: map[string][]published{}, history: map[string][]string{},
		stopCh: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() {
		w.stopOnce.Do(func() { close(w.stopCh) })
		if w.paused {
			w.paused = false
			w.gate.Unlock()
		}
		if w.started {
			<-w.done
		}
		cl.Close()
	})
	return w
}

// start begins publishing at faultRate records per second.
func (w *faultLoad) start() {
	w.gate.Lock()
	w.base, w.emitted = time.Now(), 0
	w.gate.Unlock()
	w.started = true
	go w.loop()
}

func (w *faultLoad) loop() {
	defer close(w.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.stopCh:
			return
		case <-tick.C: // paced traffic, not synchronisation
		}
		w.gate.Lock()
		select {
		case <-w.stopCh:
			w.gate.Unlock()
			return
		default:
		}
		now := time.Now()
		due := int64(faultRate * now.Sub(w.base).Seconds())
		if due-w.emitted > faultRate {
			w.emitted = due - faultRate // a long stall is skipped, not replayed as a burst
		}
		var err error
		for ; w.emitted < due && err == nil; w.emitted++ {
			err = w.emit(w.gen.Next(now))
		}
		w.gate.Unlock()
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
	}
}

// emit publishes one generated record and accounts for it. An order is
// produced after everything before it is acknowledged, and before anything
// after it (see publishOrdersAfterCarts and TestRunRealisticSessions).
func (w *faultLoad) emit(r loadgen.Record) error {
	rec := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.TS}
	var ev struct {
		ID          string     `json:"event_id"`
		Type        event.Type `json:"type"`
		CustomerID  string     `json:"customer_id"`
		AnonymousID string     `json:"anonymous_id"`
	}
	malformed := r.Malformed || json.Unmarshal(r.Value, &ev) != nil
	acked := func(*kgo.Record) {}
	w.mu.Lock()
	w.count++
	if malformed {
		w.bad = append(w.bad, badRecord{rec: rec})
		w.history[string(r.Key)] = append(w.history[string(r.Key)], fmt.Sprintf("%s malformed (%s)", r.TS.Format("15:04:05.000"), r.Topic))
	} else {
		subject := ev.CustomerID
		if subject == "" {
			subject = ev.AnonymousID
		}
		w.subjects[subject] = append(w.subjects[subject], published{ts: r.TS.UnixMilli(), orders: r.Topic == w.topics.Orders, typ: ev.Type})
		line := fmt.Sprintf("%s %s %s (%s)", r.TS.Format("15:04:05.000"), ev.Type, ev.ID, r.Topic)
		w.history[subject] = append(w.history[subject], line)
		if k := string(r.Key); k != subject {
			w.history[k] = append(w.history[k], line)
		}
		at := len(w.history[subject]) - 1
		// The line gets the record's partition and offset once it is
		// acknowledged.
		acked = func(r *kgo.Record) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.history[subject][at] += fmt.Sprintf(" p%d@%d", r.Partition, r.Offset)
		}
	}
	w.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if r.Topic == w.topics.Orders {
		if err := w.cl.Flush(ctx); err != nil {
			return err
		}
		if err := w.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return err
		}
		acked(rec)
		return nil
	}
	w.cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		acked(r)
	})
	return nil
}

// inject appends records (garbage) between two ticks of the traffic, after
// everything before them is acknowledged; it fills in their positions and
// returns when they were acknowledged.
func (w *faultLoad) inject(bad []badRecord) time.Time {
	w.t.Helper()
	w.gate.Lock()
	defer w.gate.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	recs := make([]*kgo.Record, len(bad))
	for i, b := range bad {
		recs[i] = b.rec
	}
	if err := w.cl.Flush(ctx); err != nil {
		w.t.Fatal(err)
	}
	if err := w.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		w.t.Fatalf("produce garbage: %v", err)
	}
	w.mu.Lock()
	w.count += int64(len(bad))
	w.bad = append(w.bad, bad...)
	for _, b := range bad {
		w.history[string(b.rec.Key)] = append(w.history[string(b.rec.Key)], fmt.Sprintf("garbage %s at %s/%d@%d", b.reason, b.rec.Topic, b.rec.Partition, b.rec.Offset))
	}
	w.mu.Unlock()
	return time.Now()
}

// pause stops the traffic once its current tick is out and everything
// published is acknowledged; resume continues it without a burst.
func (w *faultLoad) pause() {
	w.t.Helper()
	w.gate.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	w.paused = true
	if err := w.cl.Flush(ctx); err != nil {
		w.t.Fatal(err)
	}
}

func (w *faultLoad) resume() {
	w.base, w.emitted = time.Now(), 0
	w.paused = false
	w.gate.Unlock()
}

// waitPublished waits until n records have been published in all.
func (w *faultLoad) waitPublished(n int64) {
	w.t.Helper()
	waitUntil(w.t, fmt.Sprintf("%d records published", n), func() (string, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err != nil {
			return "", w.err
		}
		if w.count < n {
			return fmt.Sprintf("%d published", w.count), nil
		}
		return "", nil
	})
}

// runFor lets the traffic flow for d more: the pace of the workload.
func (w *faultLoad) runFor(d time.Duration) {
	w.t.Helper()
	select {
	case <-time.After(d):
	case <-w.done:
		w.mu.Lock()
		defer w.mu.Unlock()
		w.t.Fatalf("the traffic stopped: %v", w.err)
	}
}

// finish stops the traffic and waits until every record is acknowledged.
func (w *faultLoad) finish() {
	w.t.Helper()
	w.stopOnce.Do(func() { close(w.stopCh) })
	<-w.done
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := w.cl.Flush(ctx); err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		w.t.Fatalf("produce: %v", w.err)
	}
}

func (w *faultLoad) published() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

func (w *faultLoad) badRecords() []badRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.bad)
}

// subjectCounts returns, per subject, the counts its state may hold.
func (w *faultLoad) subjectCounts() map[string][]subjectCount {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][]subjectCount, len(w.subjects))
	for id, evs := range w.subjects {
		out[id] = subjectCounts(evs)
	}
	return out
}

func (w *faultLoad) historyOf(key string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.history[key])
}
