package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/emit"
)

// TestPipelineReload edits the pipeline directory of a running spur: a
// broken file is refused with its file:line and the running set stays; a
// new valid pipeline goes live without a restart; SIGHUP reloads too.
func TestPipelineReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the spur binary")
	}
	dir := t.TempDir()
	b, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0", Topics: map[string]int32{
		"shop.clickstream": 2, "shop.orders": 2, "spur.triggers": 2, "spur.dlq": 2,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pipes := filepath.Join(dir, "pipelines")
	if err := os.MkdirAll(pipes, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../pipelines/cart_abandonment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pipes, "cart_abandonment.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startSpur(t, b.Addr(), dir, pipes, 0, "--pipelines-watch", "100ms")
	waitUntil(t, "spur serving metrics", p, func() bool { return p.metric("spur_pipeline_reloads_total") >= 0 })

	const welcome = `name: welcome
trigger: {on: [page_view]}
when: profile.events == 1
action:
  kind: notify
  notify: {message: welcome, data: {first_page: '${event.channel}'}}
`
	// A broken edit: refused, counted, logged with the place.
	if err := os.WriteFile(filepath.Join(pipes, "welcome.yaml"), []byte(strings.Replace(welcome, "profile.events", "profile.evnts", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the broken pipeline refused", p, func() bool { return p.metric(`spur_pipeline_reloads_total{result="failed"}`) == 1 })
	log, _ := os.ReadFile(p.log)
	if !strings.Contains(string(log), "welcome.yaml:3:") || !strings.Contains(string(log), "evnts") {
		t.Fatalf("the refusal does not name welcome.yaml:3 and the field; log:\n%s", tail(string(log), 3000))
	}
	// Fixed: applied without a restart, and it fires.
	if err := os.WriteFile(filepath.Join(pipes, "welcome.yaml"), []byte(welcome), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the fixed pipeline applied", p, func() bool { return p.metric(`spur_pipeline_reloads_total{result="ok"}`) == 1 })
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := fmt.Sprintf(`{"event_id":"e-1","type":"page_view","ts":%q,"customer_id":"c-1","channel":"app"}`, time.Now().UTC().Format(time.RFC3339Nano))
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "shop.clickstream", Key: []byte("c-1"), Value: []byte(v)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got map[string]emit.Trigger
	waitUntil(t, "the new pipeline's notify", p, func() bool {
		got, _ = readTriggers(t, b.Addr(), kgo.ReadUncommitted())
		return len(got) > 0
	})
	for _, tr := range got {
		if tr.Rule != "welcome" || tr.Kind != emit.KindNotify || tr.Payload.Notify == nil || tr.Payload.Notify.Data["first_page"] != "app" {
			t.Fatalf("trigger %+v, want welcome's notify with first_page=app", tr)
		}
	}
	// SIGHUP reloads (the same files) at once.
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the SIGHUP reload", p, func() bool { return p.metric(`spur_pipeline_reloads_total{result="ok"}`) == 2 })
}
