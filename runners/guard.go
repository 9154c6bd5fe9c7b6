package runners

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.podman.io/storage/pkg/reexec"
	"golang.org/x/sys/unix"
)

// A guard is a helper process that every open Runtime starts with the first
// step it executes (ensureGuard): a copy of the program, in the same user
// and mount namespace, in a session of its own
// (a signal to the caller's process group does not reach it), with the read
// end of a pipe whose only write end the Runtime holds. Close tells it to
// go. When the Runtime's process dies without Close (SIGKILL, a signal it
// does not handle, os.Exit), the kernel closes the pipe; the guard then
// waits for the dead process's liveness lock to be free and opens the store
// as the next Open would, which stops the step that was running under the
// OCI runtime (its container outlives every strata process otherwise),
// deletes the working container and the step's run directory, and exits.
// So a killed build leaves nothing running for longer than the guard takes
// (well under 2 seconds on a small store).

// GuardCommand is the guard's name (its argv[0]) and GuardQuit the byte
// Close writes to its pipe (the Runtime closed cleanly). A program may do
// the guard's waiting itself before its Go runtime starts (the strata
// command does, in C): a process of that name reads one byte from file
// descriptor 3 and exits on GuardQuit; on anything else the guard's Go
// code must run, and finds the pipe at end of file as it would have.
const (
	GuardCommand = "strata-guard"
	GuardQuit    = 'q'
)

var registerGuard sync.Once

func registerReexecs() {
	registerGuard.Do(func() { reexec.Register(GuardCommand, guardMain) })
}

type guard struct {
	w   *os.File
	cmd *exec.Cmd
}

// ensureGuard starts the guard for r unless it runs already (or r is a
// guard's own Runtime, or is closed). Only Execute makes what the guard
// cleans up (runtime containers, working containers, run directories), so
// it is the first Execute that starts it: a build whose every step is
// cached pays for no second process.
func (r *Runtime) ensureGuard() error {
	r.guardOnce.Do(func() {
		if r.guardFor != 0 {
			return
		}
		r.guard, r.guardErr = r.startGuard(r.store.GraphDriverName())
	})
	return r.guardErr
}

// startGuard starts the guard for r (see above). Its arguments name the
// store, so that a look at the process table shows whose guard it is.
func (r *Runtime) startGuard(driver string) (*guard, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting the build guard: %w", err)
	}
	cmd := reexec.Command(GuardCommand, strconv.Itoa(os.Getpid()), r.store.GraphRoot(), r.runRoot, driver, r.runtime)
	cmd.ExtraFiles = []*os.File{pr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		return nil, fmt.Errorf("starting the build guard: %w", err)
	}
	return &guard{w: pw, cmd: cmd}, nil
}

// stop tells the guard that the Runtime closed cleanly and waits for it.
func (g *guard) stop() {
	if g == nil {
		return
	}
	_, _ = g.w.Write([]byte{GuardQuit})
	g.w.Close()
	_ = g.cmd.Wait()
}

// guardMain is the guard process: argv is GuardCommand, the owner's PID,
// the graph root, the run root, the driver and the OCI runtime.
func guardMain() {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	if len(os.Args) != 6 {
		os.Exit(2)
	}
	owner, err := strconv.Atoi(os.Args[1])
	if err != nil {
		os.Exit(2)
	}
	pipe := os.NewFile(3, "guard")
	b := make([]byte, 1)
	if n, _ := pipe.Read(b); n == 1 && b[0] == GuardQuit {
		os.Exit(0)
	}
	// The owner is dying: the kernel closes its files one by one, so its
	// liveness lock may be released a moment after the pipe.
	runRoot := os.Args[3]
	for deadline := time.Now().Add(2 * time.Second); !lockFree(runRoot, owner) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	unlock, err := reapLock(runRoot)
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata guard: cleaning up after process %d: %v\n", owner, err)
		os.Exit(1)
	}
	defer unlock()
	rt, err := open(Config{GraphRoot: os.Args[2], RunRoot: runRoot, Driver: os.Args[4], Runtime: os.Args[5]}, owner)
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata guard: cleaning up after process %d: %v\n", owner, err)
		return
	}
	_ = rt.Close()
}

// removeRunDir removes the run directory Buildah made for a step that was
// killed (its OCI bundle, "<tmp>/buildahNNN"): first every mount below it
// (the step's root filesystem and bind mounts, still mounted in this mount
// namespace), deepest first and detached, so that nothing a mount shows is
// deleted; then the directory, never crossing onto another filesystem.
func removeRunDir(dir string) error {
	if base := filepath.Base(dir); !strings.HasPrefix(base, "buildah") && !strings.HasPrefix(base, runDirPrefix) {
		return fmt.Errorf("%s is not a Buildah or strata run directory", dir)
	}
	if mps, err := mountsBelow(dir); err == nil {
		for _, mp := range mps {
			_ = unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	return removeOnDevice(dir, st.Dev)
}

// mountsBelow lists the mount points under dir in this mount namespace,
// deepest first.
func mountsBelow(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out, sc.Err()
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeOnDevice removes p and everything below it that lies on device
// dev; a directory that is (or holds) another filesystem is left.
func removeOnDevice(p string, dev uint64) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Dev != dev {
		return fmt.Errorf("%s is on another filesystem", p)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		// Buildah makes some of these directories mode 0 or 0100.
		_ = unix.Chmod(p, 0o700)
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		var errs []error
		for _, e := range ents {
			errs = append(errs, removeOnDevice(filepath.Join(p, e.Name()), dev))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return os.Remove(p)
}
