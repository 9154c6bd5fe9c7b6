package runners

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"go.podman.io/buildah"
	"go.podman.io/storage/pkg/unshare"
)

// EnvReexecMarker is set in the environment by InitReexec once the process
// runs with the privileges it needs (inside a user namespace when the caller
// is an ordinary user). Open refuses to run without it.
const EnvReexecMarker = "_STRATA_REEXEC_DONE"

// InitReexec must be the first call in main of any program that builds
// images. It returns true when the process is one of Buildah's helper
// re-executions, in which case main must return at once:
//
//	func main() {
//		if runners.InitReexec() {
//			return
//		}
//		...
//	}
//
// For an ordinary user it re-executes the program inside a user namespace
// (mapped with the ranges in /etc/subuid and /etc/subgid) and does not return
// in the parent: the parent exits with the child's status.
func InitReexec() bool {
	registerReexecs()
	if buildah.InitReexec() {
		return true
	}
	// Inside the user namespace /proc/self/exe no longer names the file
	// (it reads "/"), so remember it for SelfExec first.
	if os.Getenv(envExecutable) == "" {
		if exe, err := os.Executable(); err == nil {
			os.Setenv(envExecutable, exe)
		}
	}
	dieWithParent()
	// The copy that MaybeReexecUsingUserNamespace starts learns its
	// parent's PID from here (dieWithParent).
	os.Setenv(envParent, strconv.Itoa(os.Getpid()))
	unshare.MaybeReexecUsingUserNamespace(false)
	os.Unsetenv(envParent)
	os.Setenv(EnvReexecMarker, "1")
	return false
}

// envParent carries the PID of the process that re-executes the program
// into a user namespace to the copy it starts.
const envParent = "_STRATA_PARENT_PID"

// dieWithParent, in the copy of the program that the user-namespace
// re-execution started (its argv[0] ends in "-in-a-user-namespace"), asks
// the kernel for SIGKILL when that parent dies, then checks that the
// parent is still there (it may have died before the request): a caller's
// SIGKILL of the process it started then takes the build with it.
// containers/storage asks for the same when it starts the copy; asking
// again here keeps it true whatever the copy's start-up did to its
// credentials.
func dieWithParent() {
	parent, err := strconv.Atoi(os.Getenv(envParent))
	if err != nil || !strings.HasSuffix(os.Args[0], "-in-a-user-namespace") {
		return
	}
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if os.Getppid() != parent {
		os.Exit(137)
	}
}

// ErrNoReexec is returned by Open when InitReexec was not called first.
var ErrNoReexec = errors.New("strata: InitReexec was not called at the start of main " +
	"(call builder.InitReexec() first thing in main; in tests, in TestMain)")

func checkReexec() error {
	if os.Getenv(EnvReexecMarker) != "1" {
		return ErrNoReexec
	}
	return nil
}
