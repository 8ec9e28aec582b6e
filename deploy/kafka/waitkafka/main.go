// Command waitkafka waits until a Kafka broker answers metadata requests, so
// that `make kafka-up` returns only once tests can use the broker.
//
// It polls with a short per-attempt timeout until the broker lists itself in
// a metadata response (in KRaft this happens once the broker has registered
// with the controller and been unfenced), until -timeout passes, or until the
// process given by -pid has exited: a broker that died while starting fails
// the wait at once instead of after the whole timeout.
//
// Exit status: 0 ready, 1 timed out or broker exited, 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:19092", "comma-separated seed brokers")
	timeout := flag.Duration("timeout", 90*time.Second, "give up after this long")
	pid := flag.Int("pid", 0, "fail at once if this process exits (0: don't watch)")
	flag.Parse()
	if flag.NArg() != 0 || *brokers == "" {
		flag.Usage()
		os.Exit(2)
	}
	start := time.Now()
	if err := wait(strings.Split(*brokers, ","), *timeout, *pid); err != nil {
		fmt.Fprintf(os.Stderr, "waitkafka: %s: %v\n", *brokers, err)
		os.Exit(1)
	}
	fmt.Printf("waitkafka: %s answers metadata after %.1fs\n", *brokers, time.Since(start).Seconds())
}

func wait(brokers []string, timeout time.Duration, pid int) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DialTimeout(time.Second),
		// Fail each attempt quickly; this loop, not the client, retries.
		kgo.RetryTimeout(2*time.Second),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		if pid > 0 && !alive(pid) {
			return fmt.Errorf("broker process %d exited (last error: %v)", pid, lastErr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		md, err := adm.BrokerMetadata(ctx)
		cancel()
		switch {
		case err != nil:
			lastErr = err
		case len(md.Brokers) == 0:
			lastErr = errors.New("metadata lists no broker yet")
		default:
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %v", timeout, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// alive reports whether process pid exists and has not exited. Signal 0
// checks existence; a zombie (exited, not yet reaped by the shell that started
// it, which is still waiting on us) also exists, so its state is read too.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust the signal
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
