package event

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestZZHostileItems(t *testing.T) {
	d := newTestDecoder(t)
	for _, elem := range []string{"0", "{}", `{"sku":1}`, `"x"`} {
		n := (DefaultMaxBytes - 200) / (len(elem) + 1)
		v := `{"event_id":"e-1","type":"order","ts":"2026-11-23T05:00:00Z","customer_id":"c-1","order_id":"o","total":1,"items":[` + strings.Repeat(elem+",", n-1) + elem + `]}`
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		start := time.Now()
		var ev Event
		err := d.Decode([]byte(v), &ev)
		runtime.ReadMemStats(&ms1)
		t.Logf("%s x %d: %v in %v, alloc %d MB", elem, n, err, time.Since(start), (ms1.TotalAlloc-ms0.TotalAlloc)>>20)
	}
}
