package runners

import (
	"errors"
	"io/fs"
	"strings"
)

// containers/storage stages every new layer in a temporary directory
// under <driver>/tempdirs, guarded by a lock file beside it; any process
// that loads the layer store removes the temporary directories whose lock
// it can take. That recovery races with a second process creating one
// (storage v1.63-v1.65, internal/tempdir: the creator can end up holding
// the lock of a lock file the recovery has just deleted, and the next
// recovery then removes its directory). The write fails with ENOENT on a
// path inside tempdirs and nothing of it is kept, so running the write
// again is safe and, the race being a matter of microseconds, succeeds.
// stagingRaceRetries is how many times a write is run again.
const stagingRaceRetries = 2

// stagingRaced says whether err is a layer write that lost its staging
// directory to another process's stale-directory recovery.
func stagingRaced(err error) bool {
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return strings.Contains(pe.Path, "/tempdirs/temp-dir-")
	}
	// A chain that kept the errno but not the path error: the message
	// still names the path.
	return strings.Contains(err.Error(), "/tempdirs/temp-dir-")
}

// retryStagingRace runs write, and runs it again (at most
// stagingRaceRetries times) while it fails because another process
// removed its staging directory; note, when not nil, is told of each
// retry.
func retryStagingRace(write func() error, note func(string)) error {
	err := write()
	for i := 0; i < stagingRaceRetries && stagingRaced(err); i++ {
		if note != nil {
			note("another process removed the layer's staging directory (containers/storage stale-directory recovery); writing the layer again")
		}
		err = write()
	}
	return err
}
