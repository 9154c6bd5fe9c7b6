package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/builder"
)

// Signal tests: a build is stopped by a signal sent to the process the
// caller started (never its group), as a CI runner or a supervisor does,
// at three moments (a RUN step, a commit, a push), and then checked from
// the outside: every strata and step process gone 2 s later, no working
// container, no temp run directory, no tag pushed, the exit status a shell
// reports, and the same build afterwards reusing every step recorded
// before the signal. They need the real process structure (the caller's
// process and the user-namespace copy it starts), so they run from a test
// binary that stays outside the user namespace: make integration runs
// crash.test with STRATA_TEST_OUTSIDE_NS=1 for them.

// outsideNS is set when this test binary runs outside the user namespace.
var outsideNS = os.Getenv("STRATA_TEST_OUTSIDE_NS") == "1"

func requireOutsideNS(t *testing.T) {
	t.Helper()
	if !outsideNS {
		t.Skip("signal tests run outside the user namespace, as a CI runner starts strata: make integration runs them (crash.test, STRATA_TEST_OUTSIDE_NS=1)")
	}
	if os.Getuid() == 0 {
		t.Skip("signal tests run as an ordinary user (make integration runs them as the test user)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed (make setup installs it)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is needed to remove the test stores")
	}
}

// removeAsUser removes dir, whose files belong to sub-uids, inside a user
// namespace of the test user's own.
func removeAsUser(dir string) {
	_ = exec.Command("unshare", "--user", "--map-auto", "--map-root-user", "rm", "-rf", dir).Run()
}

// signalSubject is a program that builds the signal test's definition:
// the strata command on a spec file, or a Go program that embeds strata.
type signalSubject struct {
	name string
	// cmd returns the command that builds into root with env added.
	cmd func(root string) *exec.Cmd
	// stepStates reads the states of the steps ("CACHED" or "RUN", base
	// first) from a successful build's output.
	stepStates func(out string) []string
}

var (
	cliStepState   = regexp.MustCompile(`(?m)^#([0-9]+) .* (RUN|CACHED) [0-9]+\.[0-9]{2}s$`)
	childStepState = regexp.MustCompile(`(?m)^STEP ([0-9]+) (RUN|CACHED)$`)
)

func states(re *regexp.Regexp, out string) []string {
	var s []string
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		s = append(s, m[2])
	}
	return s
}

// signalSpec is the spec file the CLI builds: a step recorded before any
// signal, then a step that prints token and sleeps for as long as the
// secret PAUSE says ("pause-30s"; a secret, so not part of the key).
func signalSpec(base, token string) string {
	return fmt.Sprintf(`base: {from_archive: %q}
steps:
  - run_commands: ["echo one > /one"]
  - run_commands: ["echo start-%s; s=${PAUSE#pause-}; sleep ${s%%s}; echo end > /end"]
    secrets: [PAUSE]
`, base, token)
}

// signalDefinition is signalSpec in Go, for the embedding program.
func signalDefinition(base, token, pause string) builder.Image {
	return builder.FromArchive(base).
		RunCommands([]string{"echo one > /one"}).
		RunCommands([]string{"echo start-" + token + "; s=${PAUSE#pause-}; sleep ${s%s}; echo end > /end"},
			builder.WithSecrets(builder.SecretFromMap("pause", map[string]string{"PAUSE": pause})))
}

// signalChild is the embedding program: it builds signalDefinition with
// nothing but InitReexec done for signals (TestMain), printing its progress
// and then "STEP <index> RUN|CACHED" per step.
func signalChild() int {
	root := os.Getenv("STRATA_SIGNAL_ROOT")
	opts := []builder.BuildOption{builder.WithOutput(os.Stdout),
		builder.WithSession(builder.WithStore(filepath.Join(root, "graph"), filepath.Join(root, "run")), builder.WithInsecureRegistries())}
	if p := os.Getenv("STRATA_SIGNAL_PUSH"); p != "" {
		opts = append(opts, builder.Push(p))
	}
	res, err := builder.Build(context.Background(),
		signalDefinition(os.Getenv("STRATA_SIGNAL_BASE"), os.Getenv("STRATA_SIGNAL_TOKEN"), os.Getenv("PAUSE")), opts...)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	for _, st := range res.Steps {
		state := "RUN"
		if st.Cached {
			state = "CACHED"
		}
		fmt.Printf("STEP %d %s\n", st.Index, state)
	}
	return 0
}

// slowProxy forwards 127.0.0.1:PORT to target, sending what the client
// writes at about 256 KiB/s, and counts those bytes: a push through it
// takes seconds and can be caught half-sent.
type slowProxy struct {
	addr string
	up   atomic.Int64
}

func startSlowProxy(t *testing.T, target string) *slowProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(c, u); c.Close() }()
				buf := make([]byte, 8<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := u.Write(buf[:n]); werr != nil {
							return
						}
						p.up.Add(int64(n))
						time.Sleep(30 * time.Millisecond)
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// strataProcesses lists the processes whose command line names mark (the
// test's store directory, or the step's token): strata, its user-namespace
// copy, its guard, and the step's shell.
func strataProcesses(marks ...string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		for _, m := range marks {
			if strings.Contains(cmd, m) {
				out = append(out, e.Name()+": "+cmd)
				break
			}
		}
	}
	return out
}

// workingContainers returns the names of the containers in the store at
// graph (containers/storage's own records, read without opening it).
func workingContainers(t *testing.T, graph string) []string {
	t.Helper()
	var names []string
	for _, f := range []string{"containers.json", "volatile-containers.json"} {
		b, err := os.ReadFile(filepath.Join(graph, "overlay-containers", f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var cs []struct {
			Names []string `json:"names"`
		}
		if err := json.Unmarshal(b, &cs); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range cs {
			names = append(names, strings.Join(c.Names, ","))
		}
	}
	return names
}

func manifestStatus(t *testing.T, reg, name, tag string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+reg+"/v2/"+name+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSignals: SIGINT, SIGTERM, SIGHUP and SIGKILL to the top process of
// the strata command and of a Go program that embeds strata, during a RUN
// step, a commit (paused there by a failpoint) and a push.
func TestSignals(t *testing.T) {
	requireOutsideNS(t)
	cli := tool(t, "STRATA_CLI_FAILPOINTS", "./cmd/strata", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs seccomp strata_failpoints")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base := busyboxTar(t)

	subjects := []signalSubject{
		{
			name: "strata build",
			cmd: func(root string) *exec.Cmd {
				spec := filepath.Join(root, "strata.yaml")
				return exec.Command(cli, "build", "--spec", spec, "--progress=plain", "--insecure-registry",
					"--store", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run"))
			},
			stepStates: func(out string) []string { return states(cliStepState, out) },
		},
		{
			name: "embedding program",
			cmd: func(root string) *exec.Cmd {
				// The store path in argv, so that the process table shows
				// whose the processes are; childMain ignores it.
				return exec.Command(self, "signal-child", filepath.Join(root, "graph"))
			},
			stepStates: func(out string) []string { return states(childStepState, out) },
		},
	}
	type moment struct {
		name string
		// pause is the secret PAUSE; failpoint STRATA_FAILPOINT; push
		// makes the build push through the slow proxy.
		pause, failpoint string
		push             bool
		// interrupted is the index of the step the signal stops (its
		// entry must not exist afterwards); -1 when every step was
		// recorded before it (the push).
		interrupted int
	}
	moments := []moment{
		{name: "run", pause: "pause-30s", interrupted: 2},
		{name: "commit", pause: "pause-0s", failpoint: "commit~3000", interrupted: 1},
		{name: "push", pause: "pause-0s", push: true, interrupted: -1},
	}
	sigs := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL}
	words := map[syscall.Signal]string{syscall.SIGINT: "interrupted", syscall.SIGTERM: "terminated", syscall.SIGHUP: "hangup"}

	for _, sub := range subjects {
		for _, mo := range moments {
			for _, sig := range sigs {
				t.Run(fmt.Sprintf("%s/%s/%s", sub.name, mo.name, strings.ToUpper(unix.SignalName(sig))), func(t *testing.T) {
					root := t.TempDir()
					t.Cleanup(func() { removeAsUser(root) })
					// TMPDIR holds only what the build makes (Buildah's run
					// directories); runc's state lives in XDG_RUNTIME_DIR.
					tmp, xdg := filepath.Join(root, "tmp"), filepath.Join(root, "xdg")
					for _, d := range []string{tmp, xdg} {
						if err := os.MkdirAll(d, 0o700); err != nil {
							t.Fatal(err)
						}
					}
					tb := make([]byte, 6)
					_, _ = rand.Read(tb)
					token := "sigtest-" + hex.EncodeToString(tb)
					writeFile(t, filepath.Join(root, "strata.yaml"), signalSpec(base, token))
					repo := "signals/" + strings.ReplaceAll(strings.ToLower(sub.name), " ", "-") + "-" + mo.name
					tag := strings.ToLower(unix.SignalName(sig))
					mark := filepath.Join(root, "failpoint-reached")
					env := func(pause, failpoint, push string) []string {
						e := []string{"TMPDIR=" + tmp, "XDG_RUNTIME_DIR=" + xdg, "PAUSE=" + pause, "STRATA_FAILPOINT=" + failpoint, "STRATA_FAILPOINT_MARK=" + mark,
							"STRATA_SIGNAL_CHILD=1", "STRATA_SIGNAL_ROOT=" + root, "STRATA_SIGNAL_BASE=" + base,
							"STRATA_SIGNAL_TOKEN=" + token, "STRATA_SIGNAL_PUSH=" + push}
						var out []string
						for _, kv := range os.Environ() {
							if !strings.HasPrefix(kv, "STRATA_TEST_OUTSIDE_NS=") {
								out = append(out, kv)
							}
						}
						return append(out, e...)
					}
					start := func(pause, failpoint, push string) (*exec.Cmd, *lockedWriter) {
						c := sub.cmd(root)
						if push != "" && sub.name == "strata build" {
							c.Args = append(c.Args, "--push", push)
						}
						c.Env = env(pause, failpoint, push)
						out := &lockedWriter{w: &bytes.Buffer{}}
						c.Stdout, c.Stderr = out, out
						if err := c.Start(); err != nil {
							t.Fatal(err)
						}
						return c, out
					}

					// A registry of its own: one that already holds the
					// layers would take them without an upload.
					var reg string
					var proxy *slowProxy
					pushTo := ""
					if mo.push {
						reg = startRegistry(t)
						proxy = startSlowProxy(t, reg)
						pushTo = proxy.addr + "/" + repo + ":" + tag
					}
					c, out := start(mo.pause, mo.failpoint, pushTo)
					// Wait for the moment.
					reached := func() bool {
						switch mo.name {
						case "run":
							return strings.Contains(out.String(), "| start-"+token)
						case "commit":
							_, err := os.Stat(mark)
							return err == nil
						default:
							return proxy.up.Load() > 300<<10
						}
					}
					exited := make(chan error, 1)
					go func() { exited <- c.Wait() }()
					deadline := time.Now().Add(60 * time.Second)
					for !reached() {
						select {
						case err := <-exited:
							t.Fatalf("the build ended (%v) before the %s moment:\n%s", err, mo.name, out.String())
						case <-time.After(20 * time.Millisecond):
						}
						if time.Now().After(deadline) {
							_ = c.Process.Kill()
							t.Fatalf("the %s moment never came:\n%s", mo.name, out.String())
						}
					}
					if err := c.Process.Signal(sig); err != nil {
						t.Fatal(err)
					}
					signalled := time.Now()
					var werr error
					select {
					case werr = <-exited:
					case <-time.After(30 * time.Second):
						_ = c.Process.Kill()
						t.Fatalf("still running 30 s after %v:\n%s", sig, out.String())
					}
					took := time.Since(signalled)
					ws := c.ProcessState.Sys().(syscall.WaitStatus)
					switch {
					case sig == syscall.SIGKILL:
						if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
							t.Errorf("SIGKILL: wait status %v (%v)", ws, werr)
						}
					case ws.ExitStatus() != 128+int(sig):
						t.Errorf("exit status %d, want %d (%v)\n%s", ws.ExitStatus(), 128+int(sig), werr, out.String())
					}
					if w, ok := words[sig]; ok && sub.name == "strata build" && !strings.Contains(out.String(), "strata: "+w+"\n") {
						t.Errorf("no 'strata: %s' line:\n%s", w, out.String())
					}
					// Nothing of the build is alive 2 s after the caller saw
					// the process end.
					var left []string
					for wait := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
						if left = strataProcesses(root, token); len(left) == 0 || time.Now().After(wait) {
							break
						}
					}
					if len(left) > 0 {
						t.Errorf("processes alive 2 s after the build ended:\n%s", strings.Join(left, "\n"))
					}
					t.Logf("%v: the caller saw the end after %v", sig, took.Round(time.Millisecond))
					if wc := workingContainers(t, filepath.Join(root, "graph")); len(wc) > 0 {
						t.Errorf("working containers left: %v", wc)
					}
					if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
						var names []string
						for _, e := range ents {
							names = append(names, e.Name())
						}
						t.Errorf("temp run directories left in TMPDIR: %v", names)
					}
					if mo.push {
						if st := manifestStatus(t, reg, repo, tag); st != http.StatusNotFound {
							t.Errorf("the interrupted push left a tag (HEAD manifest: %d)", st)
						}
					}

					// The same build again succeeds and reuses every step
					// recorded before the signal.
					pushTo = ""
					if mo.push {
						pushTo = reg + "/" + repo + ":" + tag
					}
					c, out = start("pause-0s", "", pushTo)
					if err := c.Wait(); err != nil {
						t.Fatalf("the build after the signal failed: %v\n%s", err, out.String())
					}
					got := sub.stepStates(out.String())
					if len(got) != 3 {
						t.Fatalf("step states %v, want 3:\n%s", got, out.String())
					}
					for i, s := range got {
						want := "CACHED"
						if mo.interrupted >= 0 && i >= mo.interrupted {
							want = "RUN"
						}
						if s != want {
							t.Errorf("after the signal, step %d is %s, want %s (states %v)", i, s, want, got)
						}
					}
					if mo.push {
						if st := manifestStatus(t, reg, repo, tag); st != http.StatusOK {
							t.Errorf("the push after the signal left no tag (HEAD manifest: %d)", st)
						}
					}
				})
			}
		}
	}
}
