package main

import (
	"bufio"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevDemoShowsCoupons is what `make run` promises a new user: `spur dev
// --demo` prints coupon lines on its own, and stops cleanly on SIGINT.
func TestDevDemoShowsCoupons(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the spur binary")
	}
	dir := t.TempDir()
	cmd := exec.Command(spurBin, "--data-dir", dir, "--http", freeAddr(t), "--pipelines", "../../pipelines",
		"dev", "--demo", "--listen", freeAddr(t))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("spur dev exited before printing a coupon")
			}
			found = strings.HasPrefix(l, "coupon") && strings.Contains(l, "code=CART-")
		case <-deadline:
			t.Fatal("no coupon line within 60s")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Errorf("spur dev exited with %v after SIGINT", err)
	}
}
