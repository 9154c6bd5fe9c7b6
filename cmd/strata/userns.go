package main

// A build runs in a user namespace where the user is root, with the
// /etc/subuid and /etc/subgid ranges mapped (rootless). The Go code gets
// there by running a second copy of the program in a new namespace and
// waiting for it (runners.InitReexec): two starts of this 50 MB program,
// the first only to start the second. The strata command does it instead
// in userns.c, before the Go runtime starts: the process makes the
// namespace itself, a short-lived helper writes its ID maps with
// newuidmap and newgidmap, and it executes itself again inside, where
// InitReexec finds nothing left to do. One process, no waiting parent:
// signals and the exit status are the build's own.
//
// The library and test programs keep the Go way; STRATA_GO_START=1 makes
// the command use it too (for the guard as well, below).
//
// userns.c also waits for the build guard's pipe in the guard's place
// (runners.GuardCommand), so that a build starts no second Go program
// unless it dies and the guard has work to do.

/*
#cgo CFLAGS: -Wall -O2
#include "userns.h"
static const char *strata_guard_command(void) { return STRATA_GUARD_COMMAND; }
static char strata_guard_quit(void) { return STRATA_GUARD_QUIT; }
*/
import "C"

// cGuard is the guard's name and quit byte as userns.c has them.
func cGuard() (string, byte) {
	return C.GoString(C.strata_guard_command()), byte(C.strata_guard_quit())
}
