package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/state"
)

var spurBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spur-bin")
	if err != nil {
		panic(err)
	}
	spurBin = filepath.Join(dir, "spur")
	if out, err := exec.Command("go", "build", "-o", spurBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build spur: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const crashPartitions = 4

// proc is a spur process under test.
type proc struct {
	cmd  *exec.Cmd
	http string
	log  string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startSpur(t *testing.T, brokers, dataDir, pipelines string, n int, extra ...string) *proc {
	t.Helper()
	p := &proc{http: freeAddr(t), log: filepath.Join(dataDir, fmt.Sprintf("spur-%d.log", n))}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(spurBin, "run", "--brokers", brokers, "--group", "crash-test",
		"--data-dir", dataDir, "--pipelines", pipelines, "--http", p.http, "--commit-interval", "100ms")
	p.cmd.Args = append(p.cmd.Args, extra...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		f.Close()
	})
	return p
}

// metric reads the sum of a metric family's samples from /metrics; -1 when
// the process does not answer.
func (p *proc) metric(name string) float64 {
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

func waitUntil(t *testing.T, what string, p *proc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(p.log)
			t.Fatalf("timed out waiting for %s; spur log:\n%s", what, tail(string(out), 4000))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestCrashRestart kills spur with SIGKILL in the middle of a stream,
// restarts it on the same data dir, and proves that no event was lost or
// applied twice and that every expected coupon arrived (duplicates only with
// the same trigger_id).
func TestCrashRestart(t *testing.T) { testCrashRestart(t, false) }

// TestCrashRestartTransactions is TestCrashRestart with --transactions: a
// read_committed consumer of spur.triggers sees no duplicate at all.
func TestCrashRestartTransactions(t *testing.T) { testCrashRestart(t, true) }

func testCrashRestart(t *testing.T, txn bool) {
	if testing.Short() {
		t.Skip("builds and runs the spur binary")
	}
	var flags []string
	iso := kgo.ReadUncommitted()
	if txn {
		flags = append(flags, "--transactions")
		iso = kgo.ReadCommitted()
	}
	dir := t.TempDir()
	b, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0", Topics: map[string]int32{
		"shop.clickstream": crashPartitions, "shop.orders": crashPartitions, "spur.triggers": crashPartitions, "spur.dlq": crashPartitions,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pipes := filepath.Join(dir, "pipelines")
	os.MkdirAll(pipes, 0o755)
	pipeline, _ := os.ReadFile("../../pipelines/cart_abandonment.yaml")
	// A short wait keeps the test quick; it runs on the real clock.
	os.WriteFile(filepath.Join(pipes, "cart_abandonment.yaml"), []byte(strings.Replace(string(pipeline), "wait: 10s", "wait: 2s", 1)), 0o644)

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// The workload: every customer views, adds to cart; every third orders.
	const customers = 600
	perCustomer := map[string]uint64{}
	var recs []*kgo.Record
	now := time.Now().UTC()
	expected := map[string]bool{}
	for i := 0; i < customers; i++ {
		c := fmt.Sprintf("c-%d", i)
		add := func(topic, typ, extra string, at time.Duration) {
			id := fmt.Sprintf("e-%d-%d", i, perCustomer[c])
			v := fmt.Sprintf(`{"event_id":%q,"type":%q,"ts":%q,"customer_id":%q%s}`, id, typ, now.Add(at).Format(time.RFC3339Nano), c, extra)
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(c), Value: []byte(v)})
			perCustomer[c]++
		}
		add("shop.clickstream", "product_view", `,"sku":"s-1","category":"shoes","price":10`, 0)
		add("shop.clickstream", "cart_add", `,"sku":"s-1","category":"shoes","price":10,"quantity":1`, time.Millisecond)
		if i%3 == 0 {
			add("shop.orders", "order", `,"order_id":"o-1","total":10,"items":[{"sku":"s-1","price":10,"quantity":1}]`, 2*time.Millisecond)
		} else {
			expected[c] = true
		}
	}
	total := float64(len(recs))

	p1 := startSpur(t, b.Addr(), dir, pipes, 1, flags...)
	// Publish in small synchronous batches while spur consumes.
	published := make(chan error, 1)
	go func() {
		for i := 0; i < len(recs); i += 50 {
			if err := cl.ProduceSync(context.Background(), recs[i:min(i+50, len(recs))]...).FirstErr(); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	waitUntil(t, "spur to apply a third of the stream", p1, func() bool {
		return p1.metric("spur_events_consumed_total") >= total/3
	})
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p1.cmd.Wait()
	killedAt := p1.metric("spur_events_consumed_total")
	_ = killedAt
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	p2 := startSpur(t, b.Addr(), dir, pipes, 2, flags...)
	waitUntil(t, "every expected coupon", p2, func() bool {
		return p2.metric(`spur_triggers_total`) >= 0 && countDistinct(t, b.Addr(), iso) >= len(expected)
	})
	waitUntil(t, "timers to drain", p2, func() bool { return p2.metric("spur_timers_pending") == 0 && p2.metric("spur_outbox_pending") == 0 })
	t.Logf("dead letters %v, orders applied %v, stale %v", p2.metric("spur_dead_letters_total"), p2.metric(`spur_events_consumed_total{topic="shop.orders"`), p2.metric("spur_triggers_stale_total"))
	// The restarted instance kept its data dir: it reads at most its own
	// records the broker acknowledged before the kill, never everything.
	if f := p2.metric(`spur_changelog_restores_total{mode="full"}`); f != 0 {
		t.Errorf("full changelog restores after a restart on the same data dir: %v", f)
	}
	t.Logf("changelog restores: none %v, own %v, tail %v", p2.metric(`spur_changelog_restores_total{mode="none"}`),
		p2.metric(`spur_changelog_restores_total{mode="own"}`), p2.metric(`spur_changelog_restores_total{mode="tail"}`))
	if d := p2.metric("spur_duplicate_events_total"); d != 0 {
		t.Errorf("events applied twice (recognised by event_id): %v", d)
	}
	// The admin API explains an abandoned cart's coupon.
	var abandoned string
	for c := range expected {
		abandoned = c
		break
	}
	resp, err := http.Get("http://" + p2.http + "/customers/" + abandoned)
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		Found    bool `json:"found"`
		Outcomes []struct {
			Result string `json:"result"`
		} `json:"trigger_history"`
	}
	json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if !view.Found || len(view.Outcomes) != 1 || view.Outcomes[0].Result != "emitted" {
		t.Errorf("GET /customers/%s: %+v", abandoned, view)
	}
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p2.cmd.Wait(); err != nil {
		t.Errorf("spur exited with %v after SIGTERM", err)
	}

	// Exactly the expected customers, each once by trigger_id.
	byID, dups := readTriggers(t, b.Addr(), iso)
	seen := map[string]int{}
	for _, tr := range byID {
		seen[tr.CustomerID]++
	}
	for c := range expected {
		if seen[c] != 1 {
			t.Errorf("%s: %d distinct coupons, want 1", c, seen[c])
		}
	}
	for c := range seen {
		if !expected[c] {
			t.Errorf("%s: unexpected coupon (ordered)", c)
		}
	}
	t.Logf("%d records, %d coupons expected, %d distinct seen, %d re-sent duplicates (same trigger_id)", len(recs), len(expected), len(byID), dups)
	if txn && dups != 0 {
		t.Errorf("with transactions a read_committed consumer saw %d duplicates, want none", dups)
	}

	// No event lost or applied twice: each customer's applied-event count
	// equals what was published for it.
	st, err := state.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	part := kgo.StickyKeyPartitioner(nil).ForTopic("")
	for c, n := range perCustomer {
		var rec state.Customer
		p := int32(part.Partition(&kgo.Record{Key: []byte(c)}, crashPartitions))
		if _, err := st.Customer(p, c, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Events != n {
			t.Errorf("%s: %d events applied, %d published", c, rec.Events, n)
		}
	}
}

// readTriggers reads spur.triggers to its end at isolation level iso:
// distinct triggers by id and the number of extra copies.
func readTriggers(t *testing.T, brokers string, iso kgo.IsolationLevel) (map[string]emit.Trigger, int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics("spur.triggers"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]emit.Trigger{}
	dups := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var tr emit.Trigger
			if err := json.Unmarshal(r.Value, &tr); err != nil {
				t.Fatal(err)
			}
			if _, ok := out[tr.TriggerID]; ok {
				dups++
			}
			out[tr.TriggerID] = tr
		})
		if n == 0 {
			return out, dups
		}
	}
}

func countDistinct(t *testing.T, brokers string, iso kgo.IsolationLevel) int {
	m, _ := readTriggers(t, brokers, iso)
	return len(m)
}
