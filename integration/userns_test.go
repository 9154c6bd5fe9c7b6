package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procInfo is what the test reads of a process in /proc.
type procInfo struct {
	pid, ppid int
	argv0     string
	userns    string // the /proc/PID/ns/user link
	threads   int
}

// processesUnder lists root and its descendants.
func processesUnder(root int) []procInfo {
	ents, _ := os.ReadDir("/proc")
	all := map[int]procInfo{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			continue
		}
		p := procInfo{pid: pid}
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "PPid":
				p.ppid, _ = strconv.Atoi(v)
			case "Threads":
				p.threads, _ = strconv.Atoi(v)
			}
		}
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		p.argv0, _, _ = strings.Cut(string(cmdline), "\x00")
		p.userns, _ = os.Readlink(filepath.Join(dir, "ns", "user"))
		all[pid] = p
	}
	var out []procInfo
	for _, p := range all {
		for q, ok := p, true; ok; q, ok = all[q.ppid] {
			if q.pid == root {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// TestCLIUserNamespace checks how the strata command enters its user
// namespace, started by an ordinary user as a CI runner starts it: by
// default the process itself moves into the namespace before its Go
// runtime starts (cmd/strata/userns.c), so no second copy of the program
// waits as its parent, and the build guard waits for the build in C (one
// thread); STRATA_GO_START=1 gives containers/storage's way (a copy
// "...-in-a-user-namespace" under a parent outside, a Go guard). Both
// build the same image, map the same IDs and report a failing step with
// the same exit status.
func TestCLIUserNamespace(t *testing.T) {
	requireOutsideNS(t)
	cli := tool(t, "STRATA_CLI", "./cmd/strata")
	base := busyboxTar(t)
	self, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	t.Cleanup(func() { removeAsUser(root) })
	ctxDir := filepath.Join(root, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM busybox\nRUN cat /proc/self/uid_map /proc/self/gid_map && sleep 3\n")
	write("Failing.Dockerfile", "FROM busybox\nRUN exit 3\n")
	build := func(mode, dockerfile string, watch func(pid int)) (string, int) {
		t.Helper()
		cmd := exec.Command(cli, "build", "--no-cache", "--progress=plain", "-f", filepath.Join(ctxDir, dockerfile),
			"--store", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run"),
			"--build-context", "busybox=archive:"+base, ctxDir)
		cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
		if mode == "go" {
			cmd.Env = append(cmd.Env, "STRATA_GO_START=1")
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if watch != nil {
			watch(cmd.Process.Pid)
		}
		err := cmd.Wait()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	// watchBuild looks at the build's processes while its RUN step sleeps.
	watchBuild := func(mode string) func(int) {
		return func(pid int) {
			var procs []procInfo
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				procs = processesUnder(pid)
				sleeping := false
				for _, p := range procs {
					sleeping = sleeping || p.argv0 == "sleep"
				}
				if sleeping {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			var top, copies, guards []procInfo
			for _, p := range procs {
				switch {
				case p.pid == pid:
					top = append(top, p)
				case strings.HasSuffix(p.argv0, "-in-a-user-namespace"):
					copies = append(copies, p)
				case p.argv0 == "strata-guard":
					guards = append(guards, p)
				}
			}
			if len(top) != 1 || len(guards) != 1 {
				t.Fatalf("%q: while the step ran: the command %v, guards %v (all: %v)", mode, top, guards, procs)
			}
			switch mode {
			case "":
				if top[0].userns == self {
					t.Errorf("the command is in the test's user namespace %s: it did not enter its own", self)
				}
				if len(copies) != 0 {
					t.Errorf("a copy of the command runs in the namespace (%v): the process was to enter it itself", copies)
				}
				if guards[0].threads != 1 {
					t.Errorf("the guard has %d threads: it was to wait in C, before the Go runtime", guards[0].threads)
				}
			case "go":
				if top[0].userns != self {
					t.Errorf("STRATA_GO_START=1: the command left the test's user namespace itself")
				}
				if len(copies) != 1 {
					t.Errorf("STRATA_GO_START=1: %d copies in the namespace, want 1 (%v)", len(copies), procs)
				}
				if guards[0].threads < 2 {
					t.Errorf("STRATA_GO_START=1: the guard has %d thread: want the Go guard", guards[0].threads)
				}
			}
		}
	}
	ids := map[string]string{}
	for _, mode := range []string{"", "go"} {
		out, code := build(mode, "Dockerfile", watchBuild(mode))
		if code != 0 {
			t.Fatalf("%q: build failed (%d):\n%s", mode, code, out)
		}
		ids[mode] = idMapLines(out)
		if !strings.Contains(ids[mode], "1001") && !strings.Contains(ids[mode], strconv.Itoa(os.Getuid())) {
			t.Errorf("%q: the step's ID maps do not map the user %d:\n%s", mode, os.Getuid(), ids[mode])
		}
		fout, fcode := build(mode, "Failing.Dockerfile", nil)
		if fcode == 0 || !strings.Contains(fout, "exit") {
			t.Errorf("%q: the failing build exited %d:\n%s", mode, fcode, fout)
		}
		ids[mode+" failing"] = strconv.Itoa(fcode)
	}
	if ids[""] != ids["go"] {
		t.Errorf("the step saw other ID maps: entered in place:\n%s\nthe Go way:\n%s", ids[""], ids["go"])
	}
	if ids[" failing"] != ids["go failing"] {
		t.Errorf("a failing step: exit status %s entered in place, %s the Go way", ids[" failing"], ids["go failing"])
	}
}

// idMapLines picks the lines of /proc/self/uid_map and gid_map out of a
// build's output (three numbers after the step output's "|").
func idMapLines(out string) string {
	var maps []string
	for _, line := range strings.Split(out, "\n") {
		_, rest, ok := strings.Cut(line, "|")
		f := strings.Fields(rest)
		if !ok || len(f) != 3 {
			continue
		}
		numeric := true
		for _, x := range f {
			if _, err := strconv.ParseUint(x, 10, 32); err != nil {
				numeric = false
			}
		}
		if numeric {
			maps = append(maps, strings.Join(f, " "))
		}
	}
	return strings.Join(maps, "\n")
}
