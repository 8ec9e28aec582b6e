package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress keeps one status line on stderr: rewritten in place every second
// on a terminal, printed every 5 seconds otherwise (a log file).
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time

	mu     sync.Mutex
	phase  string
	since  time.Time
	status func() string
	shown  int // width of the line on screen
	last   time.Time
	stop   chan struct{}
	done   chan struct{}
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	p := &progress{w: w, tty: tty, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

// set starts a phase; status renders its counters.
func (p *progress) set(phase string, status func() string) {
	p.mu.Lock()
	p.phase, p.since, p.status = phase, time.Now(), status
	p.last = time.Time{}
	p.mu.Unlock()
	p.tick(true)
}

// logf prints a message line, keeping the status line below it.
func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	p.clear()
	fmt.Fprintf(p.w, "bench: "+format+"\n", args...)
	p.mu.Unlock()
}

func (p *progress) clear() {
	if p.tty && p.shown > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.shown))
		p.shown = 0
	}
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.tick(false)
		}
	}
}

func (p *progress) tick(force bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase == "" {
		return
	}
	now := time.Now()
	if !p.tty && !force && now.Sub(p.last) < 5*time.Second {
		return
	}
	p.last = now
	line := fmt.Sprintf("[%s] %-10s %5.0fs", fmtElapsed(now.Sub(p.start)), p.phase, now.Sub(p.since).Seconds())
	if p.status != nil {
		line += "  " + p.status()
	}
	if p.tty {
		p.clear()
		fmt.Fprint(p.w, line)
		p.shown = len(line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// close removes the status line.
func (p *progress) close() {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	p.clear()
	p.mu.Unlock()
}

func fmtElapsed(d time.Duration) string {
	s := int(d.Seconds())
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// si formats n with a k/M suffix.
func si(n float64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", n/1e3)
	default:
		return fmt.Sprintf("%.0f", n)
	}
}
