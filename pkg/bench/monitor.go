package bench

import (
	"sync"
	"time"
)

// sample is one scrape of the child.
type sample struct {
	at       time.Time
	consumed float64
	lag      float64
	timers   float64
	outbox   float64
	m        metrics
	rss      int64
}

// monitor scrapes the child's /metrics and memory every interval and keeps
// the samples of the current window.
type monitor struct {
	c        *child
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu       sync.Mutex
	interval time.Duration
	last     sample
	ok       bool
	window   []sample
	recordW  bool
	errs     int
}

func newMonitor(c *child, interval time.Duration) *monitor {
	m := &monitor{c: c, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	go m.loop()
	return m
}

func (m *monitor) loop() {
	defer close(m.done)
	for {
		m.mu.Lock()
		iv := m.interval
		m.mu.Unlock()
		select {
		case <-m.stop:
			return
		case <-time.After(iv):
		}
		m.scrapeOnce()
	}
}

// scrapeOnce takes one sample now and returns it.
func (m *monitor) scrapeOnce() (sample, bool) {
	mm, err := m.c.scrape()
	at := time.Now()
	cur, _ := m.c.rss()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.errs++
		return m.last, false
	}
	s := sample{at: at, consumed: mm[mConsumed], lag: mm[mLag], timers: mm[mTimers], outbox: mm[mOutbox], m: mm, rss: cur}
	m.last, m.ok = s, true
	if m.recordW {
		m.window = append(m.window, s)
	}
	return s, true
}

// latest returns the last sample.
func (m *monitor) latest() (sample, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last, m.ok
}

// setInterval changes the scrape interval.
func (m *monitor) setInterval(d time.Duration) {
	m.mu.Lock()
	m.interval = d
	m.mu.Unlock()
}

// startWindow begins keeping samples; endWindow returns them.
func (m *monitor) startWindow() {
	m.mu.Lock()
	m.window, m.recordW = nil, true
	m.mu.Unlock()
}

func (m *monitor) endWindow() []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.window
	m.window, m.recordW = nil, false
	return w
}

// close stops the monitor; it may be called more than once.
func (m *monitor) close() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
}
