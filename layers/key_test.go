package layers

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestComputeIsDeterministicAndDocumented(t *testing.T) {
	t.Parallel()
	base, err := Compute("", Spec{Kind: KindBase, Args: []string{"sha256:" + strings.Repeat("ab", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := Compute(base, Spec{
		Kind: KindRun, Args: []string{"echo hi"}, Shell: []string{"/bin/sh", "-c"},
		Env: map[string]string{"B": "2", "A": "1"}, Secrets: []string{"tok/TOKEN"},
	})
	if err != nil {
		t.Fatal(err)
	}
	add, err := Compute(run, Spec{
		Kind: KindAdd, Args: []string{"/app"}, Ignore: []string{"*.tmp"},
		Inputs:  []Input{{Name: "src", Digest: "sha256:" + strings.Repeat("cd", 32)}},
		Options: map[string]string{"source": "dir"},
	})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encode(base, Spec{Kind: KindRun, Args: []string{"echo hi"}, Env: map[string]string{"B": "2", "A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join([]string{string(base), string(run), string(add), string(enc)}, "\n") + "\n"
	golden := filepath.Join("testdata", "keys.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create): %v", err)
	}
	if got != string(want) {
		t.Errorf("keys changed; if the recipe changed on purpose bump RecipeVersion and run with -update\ngot:\n%s\nwant:\n%s", got, want)
	}
	for _, k := range []Key{base, run, add} {
		if !k.Valid() {
			t.Errorf("key %q is not valid", k)
		}
	}
}

func TestComputeSensitivity(t *testing.T) {
	t.Parallel()
	ref := Spec{
		Kind: KindRun, Args: []string{"a", "b"}, Shell: []string{"/bin/sh", "-c"},
		Env: map[string]string{"K": "v"}, Ignore: []string{"x"}, Secrets: []string{"s/A"},
		Inputs: []Input{{Name: "src", Digest: "sha256:00"}}, Options: map[string]string{"o": "1"},
	}
	refKey, _ := Compute("sha256:p", ref)
	cases := []struct {
		name   string
		parent Key
		mut    func(*Spec)
	}{
		{"parent", "sha256:q", func(*Spec) {}},
		{"kind", "sha256:p", func(s *Spec) { s.Kind = KindCmd }},
		{"arg value", "sha256:p", func(s *Spec) { s.Args = []string{"a", "c"} }},
		{"arg order", "sha256:p", func(s *Spec) { s.Args = []string{"b", "a"} }},
		{"arg split", "sha256:p", func(s *Spec) { s.Args = []string{"a b"} }},
		{"shell", "sha256:p", func(s *Spec) { s.Shell = []string{"/bin/bash", "-c"} }},
		{"env value", "sha256:p", func(s *Spec) { s.Env = map[string]string{"K": "w"} }},
		{"env name", "sha256:p", func(s *Spec) { s.Env = map[string]string{"J": "v"} }},
		{"ignore", "sha256:p", func(s *Spec) { s.Ignore = []string{"y"} }},
		{"secret name", "sha256:p", func(s *Spec) { s.Secrets = []string{"s/B"} }},
		{"input digest", "sha256:p", func(s *Spec) { s.Inputs = []Input{{Name: "src", Digest: "sha256:01"}} }},
		{"option", "sha256:p", func(s *Spec) { s.Options = map[string]string{"o": "2"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := ref
			tc.mut(&s)
			k, err := Compute(tc.parent, s)
			if err != nil {
				t.Fatal(err)
			}
			if k == refKey {
				t.Errorf("changing %s did not change the key", tc.name)
			}
		})
	}
}

// TestEncodeRejectsInvalidUTF8 is the regression test for what
// FuzzEncodeInjective found: JSON turns every invalid byte into U+FFFD, so
// "\xff" and "\xfe" used to share a key.
func TestEncodeRejectsInvalidUTF8(t *testing.T) {
	for _, s := range []Spec{
		{Kind: KindRun, Args: []string{"echo \xff"}},
		{Kind: KindEnv, Env: map[string]string{"K": "\xfe"}},
		{Kind: KindAdd, Args: []string{"/app"}, Ignore: []string{"\xff*"}},
	} {
		if _, err := Compute("", s); err == nil {
			t.Errorf("spec %+v with invalid UTF-8 was encoded", s)
		}
	}
}
