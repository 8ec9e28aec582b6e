package pipeline

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/jonboulle/clockwork"
)

// Reloader reloads a pipeline directory when its files change (checked
// every Interval) or when Trigger is called (spur calls it on SIGHUP). A
// set that fails the check is not applied: the running set stays and
// OnError says why. A set is applied only when its files differ from the
// last one loaded.
type Reloader struct {
	Dir      string
	Interval time.Duration
	Clock    clockwork.Clock
	// OnReload receives each new checked set; OnError each failed load.
	OnReload func([]*Pipeline)
	OnError  func(error)

	kick chan struct{}
	last [sha256.Size]byte
}

// NewReloader returns a reloader of dir whose current contents are taken
// as already loaded.
func NewReloader(dir string, interval time.Duration, onReload func([]*Pipeline), onError func(error)) *Reloader {
	r := &Reloader{Dir: dir, Interval: interval, Clock: clockwork.NewRealClock(), OnReload: onReload, OnError: onError, kick: make(chan struct{}, 1)}
	r.last, _ = fingerprint(dir)
	return r
}

// Trigger asks for a reload now (even when no file changed).
func (r *Reloader) Trigger() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends.
func (r *Reloader) Run(ctx context.Context) error {
	var tick <-chan time.Time
	if r.Interval > 0 {
		t := r.Clock.NewTicker(r.Interval)
		defer t.Stop()
		tick = t.Chan()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			r.Check(false)
		case <-r.kick:
			r.Check(true)
		}
	}
}

// Check reloads if the directory's pipeline files changed (or force), and
// reports whether a new set was applied.
func (r *Reloader) Check(force bool) bool {
	fp, err := fingerprint(r.Dir)
	if err != nil {
		r.OnError(err)
		return false
	}
	if fp == r.last && !force {
		return false
	}
	pipes, err := LoadDir(r.Dir)
	// Remember the contents either way: a broken file is reported once,
	// not at every tick, and reported again when it changes.
	r.last = fp
	if err != nil {
		r.OnError(err)
		return false
	}
	r.OnReload(pipes)
	return true
}

// fingerprint hashes the names and contents of the directory's YAML files.
func fingerprint(dir string) ([sha256.Size]byte, error) {
	names, err := fs.Glob(os.DirFS(dir), "*.yaml")
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(dir + string(os.PathSeparator) + n)
		if err != nil {
			return [sha256.Size]byte{}, err
		}
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write(b)
		h.Write([]byte{0})
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}
