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
// process goes on (to land inside the operation that follows). With
// "name~N" it does not kill: it creates the file $STRATA_FAILPOINT_MARK
// and pauses N milliseconds there (so that a test can signal the process
// while it is inside that point). Built only with the tag
// strata_failpoints, for the crash harness and the signal tests.
func Failpoint(name string) {
	want := os.Getenv("STRATA_FAILPOINT")
	if point, pause, ok := strings.Cut(want, "~"); ok && point == name {
		if mark := os.Getenv("STRATA_FAILPOINT_MARK"); mark != "" {
			_ = os.WriteFile(mark, nil, 0o644)
		}
		ms, _ := strconv.Atoi(pause)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return
	}
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

// With the tag strata_failpoints, STRATA_FAILPOINT_BINFMT_DIR stands in
// for /proc/sys/fs/binfmt_misc, so that a test can show what a host
// without a registered (or with a disabled) emulator gets; the test user
// cannot change the kernel's registrations.
func init() {
	if d := os.Getenv("STRATA_FAILPOINT_BINFMT_DIR"); d != "" {
		binfmtDir = d
	}
}
