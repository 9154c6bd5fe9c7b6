package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/runners"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "10GB": 10e9, "10gb": 10e9, "2GiB": 2 << 30, "500MB": 500e6, "1.5K": 1500, "7B": 7} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "10XB", "1e30GB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
	if d, err := parseDuration("7d"); err != nil || d != 7*24*time.Hour {
		t.Errorf("parseDuration(7d) = %v, %v", d, err)
	}
	if _, err := parseDuration("-1h"); err == nil {
		t.Error("negative duration accepted")
	}
}

func TestPlainProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &plain{w: &buf}
	p.event(builder.ProgressEvent{Kind: "start", Index: 3, Method: "RUN", Description: "RUN apt-get install -y git", State: "RUN"})
	p.event(builder.ProgressEvent{Kind: "output", Index: 3, Line: "Reading package lists..."})
	p.event(builder.ProgressEvent{Kind: "done", Index: 3, Method: "RUN", Description: "RUN apt-get install -y git", State: "RUN", Duration: 1234 * time.Millisecond})
	p.event(builder.ProgressEvent{Kind: "done", Index: 4, Method: "RunCommands", Description: "echo hi", State: "CACHED"})
	want := "#3 RUN apt-get install -y git\n    | Reading package lists...\n#3 RUN apt-get install -y git RUN 1.23s\n#4 RunCommands echo hi CACHED 0.00s\n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestUsageErrors exit 2 before any store is opened.
func TestUsageErrors(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	if code := run([]string{"build", "--ssh", "default", "."}, &bytes.Buffer{}, &bytes.Buffer{}); code != exitUsage {
		t.Errorf("--ssh default without SSH_AUTH_SOCK exited %d", code)
	}
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"build", "--no-such-flag"},
		{"build", "--progress=fancy", "."},
		{"build", "--spec", "x.yaml", "-f", "Dockerfile"},
		{"build", "--spec", "../../spec/testdata/cases/err_unknown_key.yaml"},
		{"build", "--spec", "../../spec/testdata/cases/full.yaml", "--gpu", "any"},
		{"build", "--output", "tar:/x", "-f", "../../spec/testdata/cases/Dockerfile", "."},
		{"build", "a", "b"},
		{"build", "--pull=sometimes", "."},
		{"build", "--network=bridge", "."},
		{"build", "--secret", "src=/x", "."},
		{"build", "--secret", "id=a,kind=env", "."},
		{"build", "--secret", "id=a,type=ssh", "."},
		{"build", "--spec", "../../spec/testdata/cases/full.yaml", "--network", "none"},
		{"build", "-tag"},
		{"build", "--ssh", "deploy=/nonexistent/agent.sock", "."},
		{"build", "--annotation", "index:a=b", "."},
		{"build", "--annotation", "novalue", "."},
		{"build", "--platform", "linux/arm64,not/a/platform/really", "."},
		{"cache"},
		{"cache", "prune"},
		{"cache", "prune", "--max-size", "lots"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitUsage {
			t.Errorf("%q exited %d, want %d\n%s", args, code, exitUsage, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "130") {
		t.Errorf("help exited %d:\n%s", code, out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"build", "--help"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "-t, --tag stringArray") || !strings.Contains(errb.String(), "--no-cache") {
		t.Errorf("build --help exited %d:\n%s", code, errb.String())
	}
}

// TestNormalizeArgs: GNU-style flags pass through; the single-dash long
// spelling strata took before gets its second dash; values that look
// like flags stay values.
func TestNormalizeArgs(t *testing.T) {
	fs := newFlagSet("build", "", &bytes.Buffer{})
	var tags []string
	var file, pull string
	var quiet, force bool
	fs.StringArrayVarP(&tags, "tag", "t", nil, "")
	fs.StringVarP(&file, "file", "f", "", "")
	fs.BoolVarP(&quiet, "quiet", "q", false, "")
	fs.BoolVar(&force, "force-build", false, "")
	fs.StringVar(&pull, "pull", "missing", "")
	fs.Lookup("pull").NoOptDefVal = "always"
	for _, c := range []struct{ in, want string }{
		{"-tag app -force-build .", "--tag app --force-build ."},
		{"--tag app -t b -qt c .", "--tag app -t b -qt c ."},
		{"-f - -tapp .", "-f - -tapp ."},
		{"--file -tag .", "--file -tag ."},
		{"-file=Dockerfile -pull .", "--file=Dockerfile --pull ."},
		{"ctx -- -tag", "ctx -- -tag"},
		{"-unknown x", "-unknown x"},
	} {
		if got := strings.Join(normalizeArgs(fs, strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("normalizeArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	pos, err := parseFlags(fs, strings.Fields("-qt app ctx -f x.df --pull"))
	if err != nil {
		t.Fatal(err)
	}
	if !quiet || file != "x.df" || pull != "always" || len(pos) != 1 || pos[0] != "ctx" || tags[len(tags)-1] != "app" {
		t.Errorf("parsed quiet=%v file=%q pull=%q tags=%q pos=%q", quiet, file, pull, tags, pos)
	}
}

// TestParseSecret: docker buildx's --secret forms; the value comes from
// the file or variable they name, and never appears in an error.
func TestParseSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tok")
	if err := os.WriteFile(f, []byte("from-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_TEST_TOK", "from-env")
	t.Setenv("tok2", "from-env-by-id")
	for _, c := range []struct{ in, want string }{
		{"id=tok,src=" + f, "from-file"},
		{"id=tok,source=" + f + ",type=file", "from-file"},
		{"id=tok,env=STRATA_TEST_TOK", "from-env"},
		{"type=env,id=STRATA_TEST_TOK", "from-env"},
		{"id=tok2", "from-env-by-id"},
		{"id=" + f, "from-file"},
	} {
		_, v, err := parseSecret(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if v != c.want {
			t.Errorf("%s: value %q, want %q", c.in, v, c.want)
		}
	}
	t.Setenv("STRATA_TEST_TOK", "s3cret-never-shown")
	for _, bad := range []string{"id=x,src=" + filepath.Join(dir, "missing"), "id=x,env=STRATA_TEST_UNSET", "id=x,src=a,env=STRATA_TEST_TOK", "id=STRATA_TEST_TOK,type=file"} {
		_, _, err := parseSecret(bad)
		if err == nil {
			t.Errorf("%s accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the value: %v", bad, err)
		}
	}
}

func TestDefaultDockerfile(t *testing.T) {
	dir := t.TempDir()
	if got := defaultDockerfile(dir); got != filepath.Join(dir, "Dockerfile") {
		t.Errorf("no file: %s", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := defaultDockerfile(dir); got != filepath.Join(dir, "Containerfile") {
		t.Errorf("with a Containerfile: %s", got)
	}
}

// TestBuildExitCode: an unreachable registry is the environment (3), a
// Dockerfile the translation refuses is usage (2), the rest a failed
// build (1), however deeply wrapped.
func TestBuildExitCode(t *testing.T) {
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("step 0 (FromRegistry): resolving x: %w", netErr), exitEnv},
		{fmt.Errorf("step 0: %w", &net.DNSError{Err: "no such host", Name: "registry.example"}), exitEnv},
		{fmt.Errorf("step 0 (FromDockerfile): %w", &dockerfile.Error{Pos: dockerfile.Pos{File: "Dockerfile", Line: 2}, Err: dockerfile.ErrUnsupported}), exitUsage},
		{fmt.Errorf("step 2 (COPY): Dockerfile:2:1: missing.txt: no such file or directory in the build context"), exitBuildFailed},
	} {
		if got := buildExitCode(c.err); got != c.want {
			t.Errorf("%v: exit %d, want %d", c.err, got, c.want)
		}
	}
}

// The guard's name and quit byte that userns.c waits with are runners'.
func TestUsernsGuardConstants(t *testing.T) {
	name, quit := cGuard()
	if name != runners.GuardCommand || quit != runners.GuardQuit {
		t.Fatalf("userns.h has the guard as %q, quit %q; runners has %q, quit %q", name, quit, runners.GuardCommand, runners.GuardQuit)
	}
}

// userns.c reads /etc/subuid and /etc/subgid as containers/storage does
// (lines of name or uid, comments and blank lines skipped, sorted by
// start), and leaves to the Go code every file it cannot read that way.
func TestUsernsReadRanges(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       [][2]uint64
		ok         bool
	}{
		{"by name", "alice:100000:65536\n", [][2]uint64{{100000, 65536}}, true},
		{"by uid", "1001:200000:1000\n", [][2]uint64{{200000, 1000}}, true},
		{"others skipped, sorted", "# ranges\n\nbob:1:2\n  alice:300000:10  \n1001:100000:5\n", [][2]uint64{{100000, 5}, {300000, 10}}, true},
		{"none", "bob:100000:65536\n", nil, true},
		{"no newline at the end", "alice:5:6", [][2]uint64{{5, 6}}, true},
		{"two fields", "alice:100000\n", nil, false},
		{"four fields", "alice:1:2:3\n", nil, false},
		{"not a number", "alice:x:10\n", nil, false},
		{"a sign", "alice:-1:10\n", nil, false},
		{"an empty count", "alice:1:\n", nil, false},
		{"a line too long", "alice:1:" + strings.Repeat("1", 600) + "\n", nil, false},
		{"another's malformed line", "bob:oops\nalice:1:2\n", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "subuid")
			if err := os.WriteFile(p, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok := cReadRanges(p, "alice", "1001")
			if ok != tc.ok || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := cReadRanges(filepath.Join(t.TempDir(), "missing"), "alice", "1001"); ok {
		t.Error("a missing file was read")
	}
}
