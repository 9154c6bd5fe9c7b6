package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// signalCases are what a child copy of this test binary does with
// watchSignals (TestSignalWatch runs it with STRATA_SIGNAL_CASE set).
var signalCases = map[string]func(){
	// One build, one SIGTERM: the build's context is cancelled, and the
	// process exits 143 once the build is over.
	"one": func() {
		ctx, release := watchSignals(context.Background())
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		<-ctx.Done()
		fmt.Println("cancelled")
		time.Sleep(100 * time.Millisecond) // cleaning up
		release()
		fmt.Println("not reached")
	},
	// Two builds: both cancelled, the exit waits for the second.
	"two": func() {
		ctx1, release1 := watchSignals(context.Background())
		ctx2, release2 := watchSignals(context.Background())
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
		<-ctx1.Done()
		<-ctx2.Done()
		release1()
		fmt.Println("first released")
		// A build started after the signal is cancelled at once.
		ctx3, release3 := watchSignals(context.Background())
		<-ctx3.Done()
		release3()
		fmt.Println("third released")
		release2()
		fmt.Println("not reached")
	},
	// Copies of a signal within a second count once; a second signal a
	// second later exits at once, before the build is over.
	"second": func() {
		ctx, _ := watchSignals(context.Background())
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		<-ctx.Done()
		time.Sleep(300 * time.Millisecond)
		fmt.Println("still cleaning up")
		time.Sleep(900 * time.Millisecond)
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		time.Sleep(5 * time.Second)
		fmt.Println("not reached")
	},
	// No signal: after the build, SIGTERM has its default action again,
	// even though a handler was left registered during the build (as
	// Buildah does after a failed RUN step).
	"after": func() {
		_, release := watchSignals(context.Background())
		leaked := make(chan os.Signal, 1)
		signal.Notify(leaked, syscall.SIGTERM)
		release()
		fmt.Println("released")
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(5 * time.Second)
		fmt.Println("not reached")
	},
}

func TestMain(m *testing.M) {
	if c := os.Getenv("STRATA_SIGNAL_CASE"); c != "" {
		signalCases[c]()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSignalWatch runs each signal case in a child process and checks its
// output and how it ended.
func TestSignalWatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, out string
		status    int // exit status; -1: killed by SIGTERM
	}{
		{"one", "cancelled\n", 143},
		{"two", "first released\nthird released\n", 129},
		{"second", "still cleaning up\n", 130},
		{"after", "released\n", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "STRATA_SIGNAL_CASE="+tc.name)
			out, err := cmd.Output()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("the child did not fail: %v, output %q", err, out)
			}
			ws := ee.Sys().(syscall.WaitStatus)
			switch {
			case tc.status == -1 && !(ws.Signaled() && ws.Signal() == syscall.SIGTERM):
				t.Errorf("wait status %v, want killed by SIGTERM", ws)
			case tc.status >= 0 && ws.ExitStatus() != tc.status:
				t.Errorf("exit status %d, want %d", ws.ExitStatus(), tc.status)
			}
			if string(out) != tc.out || strings.Contains(string(out), "not reached") {
				t.Errorf("output %q, want %q", out, tc.out)
			}
		})
	}
}
