//go:build !strata_failpoints

package runners

// Failpoint is a crash-test hook: built with the tag strata_failpoints, the
// process kills itself with SIGKILL at the named point when
// STRATA_FAILPOINT names it (see failpoint_kill.go). Otherwise it does
// nothing.
func Failpoint(name string) {}
