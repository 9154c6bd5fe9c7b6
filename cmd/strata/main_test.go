package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
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
