package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// strataCLI returns the strata binary: $STRATA_CLI (make integration
// builds it), or one built now with go build.
func strataCLI(t *testing.T) string {
	t.Helper()
	return tool(t, "STRATA_CLI", "./cmd/strata")
}

// tool returns the binary named by the variable env, or builds pkg (a
// main package of this module) into a temp dir with the extra go build
// flags.
func tool(t *testing.T, env, pkg string, flags ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go is not installed to build %s, and %s is not set", pkg, env)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	args := append([]string{"build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs seccomp", "-o", out}, flags...)
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Dir = repoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s (set %s to a built binary instead): %v\n%s", pkg, env, err, b)
	}
	return out
}

// repoRoot is the checkout these tests were compiled from.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, bin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return cliResult{code, stdout.String(), stderr.String()}
}

var (
	imageIDLine = regexp.MustCompile(`^[0-9a-f]{64}\n$`)
	stepLine    = regexp.MustCompile(`(?m)^#([0-9]+) (.*) (RUN|CACHED|REMOTE) [0-9]+\.[0-9]{2}s$`)
)

// TestCLI drives the strata binary as a CI job would: build twice, JSON
// progress, a failing step, a bad flag, cache ls and prune.
func TestCLI(t *testing.T) {
	requireRootless(t)
	bin := strataCLI(t)
	busybox := busyboxTar(t)
	root := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
	graph, run := filepath.Join(root, "graph"), filepath.Join(root, "run")
	store := []string{"--store", graph, "--runroot", run}
	bbCtx := "busybox=archive:" + busybox

	ctxDir := filepath.Join(root, "ctx")
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"),
		"FROM busybox\nRUN echo one > /one\nRUN echo two > /two && echo hello-output\nCMD [\"cat\", \"/one\"]\n")
	build := func(extra ...string) cliResult {
		args := append([]string{"build", "--build-context", bbCtx}, store...)
		return runCLI(t, bin, append(args, extra...)...)
	}

	// A cold build: one line per step, output indented, the ID on stdout.
	r := build("--progress=plain", "--tag", "x", ctxDir)
	if r.code != 0 {
		t.Fatalf("build exited %d\nstderr:\n%s", r.code, r.stderr)
	}
	if !imageIDLine.MatchString(r.stdout) {
		t.Fatalf("stdout is not an image ID: %q", r.stdout)
	}
	id := strings.TrimSpace(r.stdout)
	steps := stepLine.FindAllStringSubmatch(r.stderr, -1)
	// The base, ENV PATH (the busybox archive sets none; Docker's default
	// is added), and the file's 3 instructions.
	if len(steps) != 5 {
		t.Fatalf("want 5 step lines (base + PATH + 3), got %d:\n%s", len(steps), r.stderr)
	}
	for i, s := range steps {
		if s[1] != string(rune('0'+i)) {
			t.Errorf("step line %d is #%s", i, s[1])
		}
		if i > 0 && s[3] != "RUN" {
			t.Errorf("cold build: step %s is %s, want RUN", s[1], s[3])
		}
	}
	if !strings.Contains(steps[2][2], "RUN echo one > /one") {
		t.Errorf("step 2 line does not describe the instruction: %q", steps[2][0])
	}
	if !strings.Contains(r.stderr, "    | hello-output\n") {
		t.Errorf("the step's output is not indented under it:\n%s", r.stderr)
	}

	// The same build again: every step CACHED, the same image.
	r = build("--progress=plain", "--tag", "x", ctxDir)
	if r.code != 0 {
		t.Fatalf("second build exited %d\n%s", r.code, r.stderr)
	}
	if strings.TrimSpace(r.stdout) != id {
		t.Errorf("second build gave %s, first %s", strings.TrimSpace(r.stdout), id)
	}
	steps = stepLine.FindAllStringSubmatch(r.stderr, -1)
	if len(steps) != 5 {
		t.Fatalf("want 5 step lines, got %d:\n%s", len(steps), r.stderr)
	}
	for _, s := range steps {
		if s[3] != "CACHED" {
			t.Errorf("rebuild: %s", s[0])
		}
	}

	// explain: a dry run says nothing would run; after an edit of the
	// Dockerfile it names the changed argument.
	explain := func() cliResult {
		args := append([]string{"explain", "--build-context", bbCtx, "--tag", "x"}, store...)
		return runCLI(t, bin, append(args, ctxDir)...)
	}
	if r := explain(); r.code != 0 || !strings.Contains(r.stdout, "0 of 5 steps would run") {
		t.Errorf("explain after the build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"),
		"FROM busybox\nRUN echo one > /one\nRUN echo three > /two && echo hello-output\nCMD [\"cat\", \"/one\"]\n")
	r = explain()
	if r.code != 0 || !strings.Contains(r.stdout, `#3 RUN echo three > /two && echo hello-output: RUN (argument changed ["echo two > /two && echo hello-output"] -> ["echo three > /two && echo hello-output"])`) ||
		!strings.Contains(r.stdout, "#4 CMD [\"cat\", \"/one\"]: RUN (parent changed (step 3 rebuilt))") {
		t.Errorf("explain after an edit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"),
		"FROM busybox\nRUN echo one > /one\nRUN echo two > /two && echo hello-output\nCMD [\"cat\", \"/one\"]\n")

	// JSON progress: every line is an object; done events and the result.
	r = build("--progress=json", ctxDir)
	if r.code != 0 {
		t.Fatalf("json build exited %d\n%s", r.code, r.stderr)
	}
	done, result := 0, ""
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("progress line is not JSON: %q: %v", line, err)
		}
		switch ev["kind"] {
		case "done":
			done++
			if ev["state"] != "CACHED" {
				t.Errorf("json rebuild: %v", ev)
			}
		case "result":
			result, _ = ev["image_id"].(string)
		}
	}
	if done != 5 || result != id {
		t.Errorf("json: %d done events (want 5), result %q (want %s)\n%s", done, result, id, r.stderr)
	}

	// A failing RUN exits 1 and names the step.
	failDir := filepath.Join(root, "fail")
	writeFile(t, filepath.Join(failDir, "Dockerfile"), "FROM busybox\nRUN echo one > /one\nRUN echo about-to-fail && exit 3\n")
	r = build("--progress=plain", failDir)
	if r.code != 1 {
		t.Fatalf("failing build exited %d, want 1\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "step 3 (RUN)") || !strings.Contains(r.stderr, "about-to-fail") {
		t.Errorf("the error does not name the step and its output:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("failed build printed %q on stdout", r.stdout)
	}

	// Usage errors exit 2: a bad flag, a Dockerfile syntax error.
	if r = runCLI(t, bin, "build", "--no-such-flag", ctxDir); r.code != 2 {
		t.Errorf("bad flag exited %d, want 2\n%s", r.code, r.stderr)
	}
	badDir := filepath.Join(root, "bad")
	writeFile(t, filepath.Join(badDir, "Dockerfile"), "FROM busybox\nNOTANINSTRUCTION x\n")
	if r = build(badDir); r.code != 2 {
		t.Errorf("Dockerfile syntax error exited %d, want 2\n%s", r.code, r.stderr)
	}

	// An untagged image on its own branch, for prune to delete.
	otherDir := filepath.Join(root, "other")
	writeFile(t, filepath.Join(otherDir, "Dockerfile"), "FROM busybox\nRUN echo other > /other\n")
	r = build("--progress=plain", otherDir)
	if r.code != 0 {
		t.Fatalf("other build exited %d\n%s", r.code, r.stderr)
	}
	otherID := strings.TrimSpace(r.stdout)

	// cache ls lists the entries.
	r = runCLI(t, bin, append([]string{"cache", "ls", "--json"}, store...)...)
	if r.code != 0 {
		t.Fatalf("cache ls exited %d\n%s", r.code, r.stderr)
	}
	var entries []struct {
		Key     string   `json:"key"`
		ImageID string   `json:"image_id"`
		Size    int64    `json:"size"`
		Tags    []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		t.Fatalf("cache ls --json: %v\n%s", err, r.stdout)
	}
	// base, 3 steps of ctx, 1 of fail, 1 of other (CMD may share an image).
	if len(entries) < 5 {
		t.Errorf("cache ls --json lists %d entries:\n%s", len(entries), r.stdout)
	}
	r = runCLI(t, bin, append([]string{"cache", "ls"}, store...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "KEY") || !strings.Contains(r.stdout, "entries") {
		t.Errorf("cache ls exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("cache ls:\n%s", r.stdout)

	// prune --max-size 0 removes every entry but keeps the tagged image.
	r = runCLI(t, bin, append([]string{"cache", "prune", "--max-size", "0"}, store...)...)
	if r.code != 0 {
		t.Fatalf("prune exited %d\n%s", r.code, r.stderr)
	}
	t.Logf("prune: %s", r.stdout)
	r = runCLI(t, bin, append([]string{"cache", "ls", "--json"}, store...)...)
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 0 {
		t.Errorf("after prune: %v, %d entries:\n%s", err, len(entries), r.stdout)
	}
	s, err := builder.Open(context.Background(), builder.WithStore(graph, run))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Store().Image("localhost/x:latest")
	if err != nil || img.ID != id {
		t.Errorf("the tagged image is gone after prune: %v", err)
	} else if _, err := s.Store().Layer(img.TopLayer); err != nil {
		t.Errorf("the tagged image's layer is gone after prune: %v", err)
	}
	if _, err := s.Store().Image(otherID); err == nil {
		t.Errorf("the untagged image %s was not deleted by prune", otherID[:12])
	}
	_ = s.Close()

	// A build after the prune works (and runs its steps again).
	r = build("--progress=plain", "--tag", "x", ctxDir)
	if r.code != 0 || !imageIDLine.MatchString(r.stdout) {
		t.Fatalf("build after prune exited %d\n%s", r.code, r.stderr)
	}
	// prune needs a limit.
	if r = runCLI(t, bin, append([]string{"cache", "prune"}, store...)...); r.code != 2 {
		t.Errorf("prune without limits exited %d, want 2", r.code)
	}
}
