package integration

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/runners"
)

// Child builds: this test binary, started again with STRATA_CRASH_CHILD,
// builds crashDefinition into the store named by STRATA_CRASH_STORE. The
// crash harness (crash_test.go) kills such children; the cross-process
// test runs two at once.

func init() {
	childMain = func() (int, bool) {
		switch {
		case os.Getenv("STRATA_CRASH_CHILD") != "":
			return crashChild(), true
		case os.Getenv("STRATA_SIGNAL_CHILD") != "":
			return signalChild(), true
		}
		return 0, false
	}
}

func crashDefinition(base, src string) builder.Image {
	return builder.FromArchive(base).
		RunCommands([]string{"mkdir -p /data && echo one > /data/1"}).
		RunCommands([]string{"sleep 1 && echo two > /data/2"}).
		AddLocalFile(filepath.Join(src, "conf.txt"), "/data/conf.txt", builder.Copy()).
		RunCommands([]string{"cat /data/1 /data/2 /data/conf.txt > /data/all && seq 1 2000 > /data/seq"}).
		Env(map[string]string{"CRASH": "test"}).
		RunCommands([]string{"sleep 1 && wc -l /data/seq > /data/count"})
}

// crashChild builds the crash definition, printing strata's progress (a
// "...: DONE" or "...: CACHED" line as each step is recorded), then
// "RESULT <image id>".
func crashChild() int {
	ctx := context.Background()
	root := os.Getenv("STRATA_CRASH_STORE")
	s, err := builder.Open(ctx, builder.WithStore(filepath.Join(root, "graph"), filepath.Join(root, "run")))
	if err != nil {
		fmt.Println("OPEN", err)
		return 3
	}
	defer s.Close()
	res, err := s.Build(ctx, crashDefinition(os.Getenv("STRATA_CRASH_BASE"), os.Getenv("STRATA_CRASH_SRC")),
		builder.WithTag("crash:latest"), builder.ExportTo("oci:"+filepath.Join(root, "export")+":latest"),
		builder.WithOutput(os.Stdout))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("RESULT", res.ImageID)
	return 0
}

type childRun struct {
	out      string
	killed   bool
	imageID  string
	duration time.Duration
}

// runChild runs the child build; failpoint names where it kills itself,
// and after > 0 makes the parent kill it after that long.
func runChild(t *testing.T, root, base, src, failpoint string, after time.Duration) childRun {
	t.Helper()
	exe, err := runners.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "STRATA_CRASH_CHILD=1", "STRATA_CRASH_STORE="+root,
		"STRATA_CRASH_BASE="+base, "STRATA_CRASH_SRC="+src, "STRATA_FAILPOINT="+failpoint)
	// Its own mount namespace, as every strata process run by an ordinary
	// user has (InitReexec makes one): its mounts die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if after > 0 {
		timer := time.AfterFunc(after, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	r := childRun{out: out.String(), duration: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		}
	} else if err != nil {
		t.Fatalf("child: %v", err)
	}
	for _, l := range strings.Split(r.out, "\n") {
		if id, ok := strings.CutPrefix(l, "RESULT "); ok {
			r.imageID = id
		}
	}
	if !r.killed && r.imageID == "" {
		t.Fatalf("child neither finished nor was killed:\n%s", r.out)
	}
	return r
}

// imageTree digests the image's file tree as a container sees it: every
// path with its type, mode and content, without times or owners' names.
func imageTree(t *testing.T, s *builder.Session, imageID string) string {
	t.Helper()
	var layersTopFirst [][]tarEntry
	eachLayer(t, s, imageID, func(r io.Reader) bool {
		layersTopFirst = append(layersTopFirst, readTarEntries(r))
		return true
	})
	tree := map[string]string{}
	for i := len(layersTopFirst) - 1; i >= 0; i-- {
		for _, e := range layersTopFirst[i] {
			dir, base := filepath.Split(e.name)
			if strings.HasPrefix(base, ".wh.") {
				gone := filepath.Join(dir, strings.TrimPrefix(base, ".wh."))
				for p := range tree {
					if p == gone || strings.HasPrefix(p, gone+"/") {
						delete(tree, p)
					}
				}
				continue
			}
			tree[e.name] = e.sum
		}
	}
	var paths []string
	for p := range tree {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s %s\n", p, tree[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

type tarEntry struct{ name, sum string }

func readTarEntries(r io.Reader) []tarEntry {
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		c := sha256.New()
		_, _ = io.Copy(c, tr)
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		out = append(out, tarEntry{name: name, sum: fmt.Sprintf("%c %o %s %s", h.Typeflag, h.Mode&0o7777, h.Linkname, hex.EncodeToString(c.Sum(nil)))})
	}
}

// stepsRecorded counts the progress lines of steps whose result was
// recorded (run, or taken from the cache).
func stepsRecorded(out string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "[") && !strings.Contains(l, " | ") &&
			(strings.Contains(l, ": DONE ") || strings.Contains(l, ": CACHED ")) {
			n++
		}
	}
	return n
}

// storeRoot returns a temp dir for a store, removed with rm -rf (images hold
// read-only directories that Go's cleanup cannot remove).
func storeRoot(t *testing.T) string {
	root := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
	return root
}

func openStoreAt(t *testing.T, root string) *builder.Session {
	t.Helper()
	s, err := builder.Open(context.Background(), builder.WithStore(filepath.Join(root, "graph"), filepath.Join(root, "run")))
	if err != nil {
		t.Fatalf("opening the store at %s: %v", root, err)
	}
	return s
}

// TestTwoProcessesBuildOneImage: two programs build the same image into one
// store at the same time; both succeed with the same image ID, and each
// step runs in only one of them (the other waits on the store-wide key
// lock and takes the result from the cache).
func TestTwoProcessesBuildOneImage(t *testing.T) {
	requireRootless(t)
	base := busyboxTar(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "conf.txt"), "configured\n")
	root := storeRoot(t)
	results := make(chan childRun, 2)
	for range 2 {
		go func() { results <- runChild(t, root, base, src, "", 0) }()
	}
	a, b := <-results, <-results
	if a.imageID == "" || a.imageID != b.imageID {
		t.Fatalf("image IDs %q and %q\nA:\n%s\nB:\n%s", a.imageID, b.imageID, a.out, b.out)
	}
	ranA, ranB := stepsRun(a.out), stepsRun(b.out)
	for i := range ranA {
		if ranA[i] && ranB[i] {
			t.Errorf("step %d ran in both processes", i)
		}
		if !ranA[i] && !ranB[i] {
			t.Errorf("step %d ran in neither process", i)
		}
	}
	t.Logf("steps run by A: %v, by B: %v", ranA, ranB)
}

// stepsRun reads progress output: for each step index, whether it ran
// (DONE) rather than came from the cache.
func stepsRun(out string) []bool {
	var ran []bool
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "[") || strings.Contains(l, " | ") {
			continue
		}
		var idx, total int
		if _, err := fmt.Sscanf(l, "[%d/%d]", &idx, &total); err != nil {
			continue
		}
		for len(ran) <= idx {
			ran = append(ran, false)
		}
		if strings.Contains(l, ": DONE ") {
			ran[idx] = true
		}
	}
	return ran
}
