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
#include <stdlib.h>
#include "userns.h"
static const char *strata_guard_command(void) { return STRATA_GUARD_COMMAND; }
static char strata_guard_quit(void) { return STRATA_GUARD_QUIT; }
*/
import "C"

import "unsafe"

// cGuard is the guard's name and quit byte as userns.c has them.
func cGuard() (string, byte) {
	return C.GoString(C.strata_guard_command()), byte(C.strata_guard_quit())
}

// cReadRanges is userns.c's reading of an /etc/subuid-style file: the
// ranges of name or uid, sorted, or ok false where it leaves the file to
// the Go code (TestUsernsReadRanges).
func cReadRanges(path, name, uid string) (ranges [][2]uint64, ok bool) {
	cpath, cname, cuid := C.CString(path), C.CString(name), C.CString(uid)
	defer C.free(unsafe.Pointer(cpath))
	defer C.free(unsafe.Pointer(cname))
	defer C.free(unsafe.Pointer(cuid))
	var out [C.STRATA_MAX_RANGES]C.struct_strata_range
	n := int(C.strata_read_ranges(cpath, cname, cuid, &out[0]))
	if n < 0 {
		return nil, false
	}
	for i := range n {
		ranges = append(ranges, [2]uint64{uint64(out[i].start), uint64(out[i].count)})
	}
	return ranges, true
}
