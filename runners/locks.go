package runners

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Every Runtime holds an exclusive flock on <run root>/strata-procs/<pid>.lock
// for as long as it is open. Working containers and temporary directories
// that strata makes carry the owner's PID in their names
// ("strata-w<pid>-<random>", "strata-cdi-<pid>"), so a later Open can tell
// what a dead process left (its lock is free) from what a live one is using.
// The kernel drops the lock when the process dies, however it dies.

const (
	containerPrefix = "strata-w"
	procsDir        = "strata-procs"
	keysDir         = "strata-keys"
)

// containerName returns a new working-container name owned by this process.
func containerName() string {
	return fmt.Sprintf("%s%d-%s", containerPrefix, os.Getpid(), randomSuffix())
}

// ownerPID returns the PID in a strata working-container name.
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, containerPrefix)
	if !ok {
		return 0, false
	}
	p, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	return pid, err == nil && pid > 0
}

// procLocks are this process's liveness locks, one per run root, shared by
// the Runtimes open on it.
var procLocks struct {
	sync.Mutex
	m map[string]*procLock
}

type procLock struct {
	f    *os.File
	refs int
}

// lockProcess takes this process's liveness lock on the run root.
func (r *Runtime) lockProcess() error {
	procLocks.Lock()
	defer procLocks.Unlock()
	if l, ok := procLocks.m[r.runRoot]; ok {
		l.refs++
		return nil
	}
	dir := filepath.Join(r.runRoot, procsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(os.Getpid())+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	if procLocks.m == nil {
		procLocks.m = map[string]*procLock{}
	}
	procLocks.m[r.runRoot] = &procLock{f: f, refs: 1}
	return nil
}

// unlockProcess drops this Runtime's share of the liveness lock.
func (r *Runtime) unlockProcess() {
	procLocks.Lock()
	defer procLocks.Unlock()
	l, ok := procLocks.m[r.runRoot]
	if !ok {
		return
	}
	if l.refs--; l.refs > 0 {
		return
	}
	delete(procLocks.m, r.runRoot)
	_ = os.Remove(l.f.Name())
	l.f.Close()
}

// deadOwner reports whether the process pid has no open strata Runtime on
// this run root: its lock file is missing or not locked. The probe lock is
// dropped at once.
func (r *Runtime) deadOwner(pid int) bool {
	return pid != os.Getpid() && lockFree(r.runRoot, pid)
}

// lockFree reports whether process pid holds no liveness lock on runRoot.
func lockFree(runRoot string, pid int) bool {
	f, err := os.OpenFile(filepath.Join(runRoot, procsDir, strconv.Itoa(pid)+".lock"), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return true
}

// Reaped says what Open removed that dead strata processes had left.
type Reaped struct {
	Containers []string
	Paths      []string
	// Layers are layers a killed process staged for a commit it did not
	// reach (staged.go), by name.
	Layers []string
	// Mounts are image layers whose mount count a killed process left
	// raised (its mount namespace, and so the mount, died with it).
	Mounts []string
}

// reapLock serializes reaping on a run root: a guard cleaning up after a
// process that just died holds it for the whole of its open and Close, so
// an Open that comes meanwhile reaps after the guard is done (and never
// sees the guard's own open Runtime as another user of the store).
func reapLock(runRoot string) (unlock func(), err error) {
	dir := filepath.Join(runRoot, procsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "reap.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// reapLocked is reap under the reap lock (reap alone when it cannot be
// taken).
func (r *Runtime) reapLocked() Reaped {
	if unlock, err := reapLock(r.runRoot); err == nil {
		defer unlock()
	}
	return r.reap()
}

// reap removes working containers and temporary directories left by strata
// processes that died (SIGKILL, OOM, power loss) without cleaning up. Only
// names in strata's own forms are considered, and only when their owner's
// lock is free; containers made by other tools are never touched.
func (r *Runtime) reap() Reaped {
	var out Reaped
	cs, err := r.store.Containers()
	if err == nil {
		for _, c := range cs {
			for _, n := range c.Names {
				pid, ok := ownerPID(n)
				if !ok || !r.deadOwner(pid) {
					continue
				}
				// The dead process's step may still run under the OCI
				// runtime: stop it before its rootfs goes away, then
				// remove the run directory Buildah made for it.
				if bundle := r.killRunning(c.ID[:12], true); bundle != "" {
					if err := removeRunDir(bundle); err == nil {
						out.Paths = append(out.Paths, bundle)
					}
				}
				_, _ = r.store.Unmount(c.ID, true)
				if err := r.store.DeleteContainer(c.ID); err == nil {
					out.Containers = append(out.Containers, n)
				}
				break
			}
		}
	}
	out.Layers = r.reapStaged()
	out.Mounts = r.reapMounts()
	for _, d := range []string{r.runRoot, os.TempDir()} {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			pid, ok := tempOwner(e.Name())
			// The temp dir is shared with processes on other stores, whose
			// locks are elsewhere: there, only a process that no longer
			// exists counts as dead, or the one this guard's Runtime
			// cleans up after (killed, it may still be a zombie, whose
			// parent has not collected it yet).
			if !ok || !r.deadOwner(pid) || (d != r.runRoot && !processGone(pid) && pid != r.guardFor) {
				continue
			}
			p := filepath.Join(d, e.Name())
			if os.RemoveAll(p) == nil {
				out.Paths = append(out.Paths, p)
			}
		}
	}
	// Lock files of dead processes.
	ents, _ := os.ReadDir(filepath.Join(r.runRoot, procsDir))
	for _, e := range ents {
		pid, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".lock"))
		if err == nil && r.deadOwner(pid) {
			_ = os.Remove(filepath.Join(r.runRoot, procsDir, e.Name()))
		}
	}
	return out
}

// reapMounts resets the mount counts of image layers that a killed strata
// process left raised. Rootless, every strata process mounts in a mount
// namespace of its own, which dies with it, but containers/storage keeps
// the count in the run root: the layer then looks in use for ever (its
// image cannot be removed and the store does not shut down cleanly). A
// count can only be judged stale when no other strata process has this
// store open and no other Runtime of this process does; container layers
// (another tool's working containers) are never touched.
func (r *Runtime) reapMounts() []string {
	procLocks.Lock()
	alone := procLocks.m[r.runRoot] != nil && procLocks.m[r.runRoot].refs == 1
	procLocks.Unlock()
	if !alone {
		return nil
	}
	ents, _ := os.ReadDir(filepath.Join(r.runRoot, procsDir))
	for _, e := range ents {
		pid, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".lock"))
		if err == nil && pid != os.Getpid() && !r.deadOwner(pid) {
			return nil
		}
	}
	cs, err := r.store.Containers()
	if err != nil {
		return nil
	}
	inUse := map[string]bool{}
	for _, c := range cs {
		inUse[c.LayerID] = true
	}
	ls, err := r.store.Layers()
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range ls {
		if l.MountCount > 0 && !inUse[l.ID] {
			if _, err := r.store.Unmount(l.ID, true); err == nil {
				out = append(out, l.ID)
			}
		}
	}
	return out
}

// processGone reports whether no process has the ID pid.
func processGone(pid int) bool {
	return errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}

// tempPrefixes are strata's per-process temporary names: "<prefix><pid>-...".
var tempPrefixes = []string{"strata-cdi-", "strata-debian-", "strata-secret-", "strata-mount-", runDirPrefix}

func tempOwner(name string) (int, bool) {
	for _, p := range tempPrefixes {
		rest, ok := strings.CutPrefix(name, p)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(num)
		return pid, err == nil && pid > 0
	}
	return 0, false
}

// Reaped returns what Open removed.
func (r *Runtime) Reaped() Reaped { return r.reaped }

// LockKey takes the store-wide lock for the cache key hex, shared by every
// process using this run root, waiting until it is free or ctx ends. A
// builder holds it from a cache miss until the step's entry is recorded,
// so two processes never run the same step at once.
func (r *Runtime) LockKey(ctx context.Context, hex string) (unlock func(), err error) {
	return r.lockKey(ctx, hex, unix.LOCK_EX, ".lock")
}

// ShareKey takes the use lock of key hex (<hex>.use beside the key lock)
// shared: a build holds it on every cache entry it records or reuses,
// until the build ends, so that a prune (which needs it alone) never
// removes an entry, or deletes the image, a build stands on. It never
// waits for builders that hold the key lock to run that step.
func (r *Runtime) ShareKey(ctx context.Context, hex string) (unlock func(), err error) {
	return r.lockKey(ctx, hex, unix.LOCK_SH, ".use")
}

func (r *Runtime) lockKey(ctx context.Context, hex string, how int, suffix string) (unlock func(), err error) {
	dir := filepath.Join(r.runRoot, keysDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, hex+suffix), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking key %s: %w", hex, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
