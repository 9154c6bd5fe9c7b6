//go:build strata_failpoints

package runners

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Failpoint kills the process with SIGKILL when STRATA_FAILPOINT is name,
// or "name+N": N milliseconds after the point is reached, while the
// process goes on (to land inside the operation that follows). Built only
// with the tag strata_failpoints, for the crash harness.
func Failpoint(name string) {
	want := os.Getenv("STRATA_FAILPOINT")
	point, delay, _ := strings.Cut(want, "+")
	if point != name {
		return
	}
	kill := func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	if delay == "" {
		kill()
	}
	ms, _ := strconv.Atoi(delay)
	go func() {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		kill()
	}()
}
