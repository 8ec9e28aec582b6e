package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemGiB    int64  `json:"mem_gib"`
	GoVersion string `json:"go_version"`
	// Build is the VCS revision the spur binary was built from, with
	// "-dirty" when the working tree had changes.
	Build string `json:"build,omitempty"`
	// Load is /proc/loadavg's 1-minute average at the start and at the
	// end of the run: other processes on the machine compete for it.
	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadavg(), Build: buildRevision()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemGiB = (kb + 1<<19) >> 20
				}
			}
		}
	}
	return m
}

func buildRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func (m Machine) String() string {
	s := fmt.Sprintf("%d CPUs (%s), %d GiB, %s", m.CPUs, m.CPUModel, m.MemGiB, m.GoVersion)
	if m.Build != "" {
		s += ", spur " + m.Build
	}
	s += fmt.Sprintf(", load %.2f", m.LoadStart)
	if m.LoadEnd > 0 {
		s += fmt.Sprintf(" → %.2f", m.LoadEnd)
	}
	return s
}

// builtinPipeline is pipelines/cart_abandonment.yaml as the loadgen oracle
// models it, used when the pipelines directory has no such file.
const builtinPipeline = `name: cart_abandonment
description: Coupon for a cart left without an order.
trigger:
  after: [cart_add]
  unless: [order]
  cancel_when_cart_empty: true
  wait: 10s
action:
  kind: coupon
  coupon:
    percent_off: 10
    valid_for: 48h
    code_prefix: CART
`

var waitLine = regexp.MustCompile(`(?m)^(\s*wait:\s*)\S+`)

// writePipeline writes the cart_abandonment pipeline with the given wait
// into dir. It is the only pipeline the child runs: the oracle models it
// alone.
func writePipeline(srcDir, dir string, wait time.Duration) error {
	src := builtinPipeline
	if srcDir != "" {
		if b, err := os.ReadFile(filepath.Join(srcDir, "cart_abandonment.yaml")); err == nil {
			src = string(b)
		}
	}
	if !waitLine.MatchString(src) {
		return fmt.Errorf("bench: cart_abandonment.yaml has no wait: line")
	}
	out := waitLine.ReplaceAllString(src, "${1}"+wait.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cart_abandonment.yaml"), []byte(out), 0o644)
}

// cpuTime returns the user+system CPU time a process has used so far, from
// /proc/<pid>/stat (pid 0: this process).
func cpuTime(pid int) time.Duration {
	path := "/proc/self/stat"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count fields after ")".
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * time.Second / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuMeter measures the cores a process and this one used over a window.
type cpuMeter struct {
	pid          int
	at           time.Time
	child, local time.Duration
}

func startCPU(pid int) cpuMeter {
	return cpuMeter{pid: pid, at: time.Now(), child: cpuTime(pid), local: cpuTime(0)}
}

// cores returns the cores used since start by the process and by this one.
func (m cpuMeter) cores() (child, local float64) {
	el := time.Since(m.at).Seconds()
	if el <= 0 {
		return 0, 0
	}
	return (cpuTime(m.pid) - m.child).Seconds() / el, (cpuTime(0) - m.local).Seconds() / el
}
