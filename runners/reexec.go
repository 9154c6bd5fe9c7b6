package runners

import (
	"errors"
	"os"

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
	unshare.MaybeReexecUsingUserNamespace(false)
	os.Setenv(EnvReexecMarker, "1")
	return false
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
