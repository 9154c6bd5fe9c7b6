package spec

import (
	"archive/tar"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden parses each file in testdata/cases and compares the Go chain
// it maps onto (or its error) with testdata/golden/<file>.golden.
func TestGolden(t *testing.T) {
	t.Setenv("SPEC_TEST_TOKEN", "t0ken")
	t.Setenv("GITHUB_TOKEN", "gh")
	t.Setenv("PYTHONPATH", "")
	files, err := filepath.Glob("testdata/cases/*.*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		ext := filepath.Ext(f)
		if ext != ".yaml" && ext != ".json" {
			continue
		}
		n++
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parse(data, name, "testdata/cases")
			var got string
			if err != nil {
				var se *Error
				if !errors.As(err, &se) {
					t.Errorf("error is not a *spec.Error: %T %v", err, err)
				}
				got = "error: " + err.Error() + "\n"
			} else {
				got = c.goChain()
				if ierr := c.image().Err(); ierr != nil {
					t.Errorf("parsed without error, but the image has one: %v", ierr)
				}
			}
			if strings.HasPrefix(name, "err_") != (err != nil) {
				t.Errorf("err_ files must fail and others must parse; got %q", got)
			}
			golden := filepath.Join("testdata/golden", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./spec -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d cases found", n)
	}
}

// TestErrorsNameStepAndKey checks the parts of error messages that users
// rely on: the step number, the method, the key and the line.
func TestErrorsNameStepAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string
		line       int
	}{
		{"unknown key", "base: {scratch: true}\nsteps:\n  - run_commands: [a]\n  - apt_install: [git]\n    bogus: 1\n",
			[]string{"x.yaml: step 2 (apt_install): line 5:", `unknown key "bogus"`}, 5},
		{"unknown top key", "base: {scratch: true}\nstep: []\n", []string{`x.yaml: line 2: unknown key "step"`}, 2},
		{"unknown base", "base: {from_nowhere: x}\n", []string{"x.yaml: base: line 1:", `unknown key "from_nowhere"`}, 1},
		{"bad base value", "base: {from_archive: [a]}\n", []string{"x.yaml: base (from_archive): line 1:", "from_archive must be a string"}, 1},
		{"no method", "base: {scratch: true}\nsteps:\n  - force_build: true\n", []string{"x.yaml: step 1: line 3: no step method"}, 3},
		{"not a mapping", "base: {scratch: true}\nsteps:\n  - echo hi\n", []string{"x.yaml: step 1: line 3: a step must be a mapping"}, 3},
		{"duplicate key", "base: {scratch: true}\nsteps:\n  - cmd: [a]\n    force_build: true\n    force_build: false\n",
			[]string{"step 1 (cmd): line 5:", `key "force_build" given twice`}, 5},
		{"bool", "base: {scratch: true}\nsteps:\n  - cmd: [a]\n    force_build: maybe\n", []string{"step 1 (cmd): line 4: force_build must be true or false"}, 4},
		{"builder error", "base: {scratch: true}\nsteps:\n  - workdir: relative\n", []string{`step 1 (workdir): line 3: working directory "relative" must be an absolute path`}, 3},
		{"env option not on config", "base: {scratch: true}\nsteps:\n  - cmd: [a]\n    env: {A: b}\n", []string{`step 1 (cmd): line 4: unknown key "env" (known: cmd, force_build)`}, 4},
		{"env option not on dockerfile_commands", "base: {scratch: true}\nsteps:\n  - dockerfile_commands: [\"RUN echo\"]\n    env: {A: b}\n",
			[]string{`step 1 (dockerfile_commands): line 4: unknown key "env"`}, 4},
		{"secret unset", "base: {scratch: true}\nsteps:\n  - run_commands: [a]\n    secrets: [SPEC_TEST_UNSET_VAR]\n", []string{"step 1 (run_commands): line 3:", "SPEC_TEST_UNSET_VAR is not set"}, 3},
		{"json syntax", "{\n  \"base\": {\"scratch\": true},\n  \"steps\": [}\n", []string{"x.yaml: line 3: column", "invalid JSON"}, 3},
		{"two documents", "base: {scratch: true}\n---\nbase: {scratch: true}\n", []string{"one YAML document"}, 0},
		{"empty", "", []string{"x.yaml: the spec is empty"}, 0},
		{"recursive alias", "base: &a {scratch: *a}\n", []string{"x.yaml"}, 0},
		{"steps not a list", "base: {scratch: true}\nsteps: {a: b}\n", []string{"line 2: steps must be a list"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.spec), "x.yaml", t.TempDir())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var se *Error
			if errors.As(err, &se) && tc.line != 0 && se.Line != tc.line {
				t.Errorf("line %d, want %d", se.Line, tc.line)
			}
		})
	}
}

func writeRootfs(t *testing.T, p string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestPlanKeysMatchGo: a spec and the Go chain it maps onto plan to the
// same steps with the same cache keys.
func TestPlanKeysMatchGo(t *testing.T) {
	ctx := context.Background()
	t.Setenv("SPEC_TEST_TOKEN", "t0ken")
	dir := t.TempDir()
	base := filepath.Join(dir, "rootfs.tar")
	writeRootfs(t, base)
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app/main.sh", "echo app\n")
	write("app/junk.pyc", "x")
	write("requirements.txt", "numpy==2.0\n")
	write("config.toml", "a = 1\n")
	for _, tc := range []struct {
		name, spec string
		goImg      builder.Image
	}{
		{"runs and config", `
base: {from_archive: rootfs.tar}
steps:
  - run_commands: ["mkdir -p /app", "echo hi > /hi"]
    env: {MODE: ci}
  - env: {A: "1", B: "2"}
  - workdir: /app
  - entrypoint: ["/bin/sh", "-c"]
  - cmd: ["/app/main.sh"]
`, builder.FromArchive(base).
			RunCommands([]string{"mkdir -p /app", "echo hi > /hi"}, builder.WithEnv(map[string]string{"MODE": "ci"})).
			Env(map[string]string{"A": "1", "B": "2"}).
			Workdir("/app").
			Entrypoint([]string{"/bin/sh", "-c"}).
			Cmd([]string{"/app/main.sh"})},
		{"packages and secrets", `
base: {from_archive: rootfs.tar}
steps:
  - apt_install: [git, curl]
  - pip_install: [numpy]
    index_url: https://pypi.example.com/simple
  - pip_install_from_requirements: requirements.txt
  - run_commands: [echo]
    secrets: [SPEC_TEST_TOKEN]
    gpu: H100
`, builder.FromArchive(base).
			AptInstall([]string{"git", "curl"}).
			PipInstall([]string{"numpy"}, builder.IndexURL("https://pypi.example.com/simple")).
			PipInstallFromRequirements(filepath.Join(dir, "requirements.txt")).
			RunCommands([]string{"echo"}, builder.WithSecrets(builder.SecretFromEnv("SPEC_TEST_TOKEN")), builder.GPU("H100"))},
		{"local files and dockerfile commands", `
base: {from_archive: rootfs.tar}
steps:
  - add_local_dir: {local: app, remote: /app, copy: true, ignore: ["*.pyc"]}
  - shell: ["/bin/sh", "-ec"]
  - run_commands: ["sh /app/main.sh"]
  - dockerfile_commands: ["RUN echo hi", "ENV X=1"]
  - add_local_file: {local: config.toml, remote: /etc/config.toml}
`, builder.FromArchive(base).
			AddLocalDir(filepath.Join(dir, "app"), "/app", builder.Copy(), builder.Ignore("*.pyc")).
			Shell([]string{"/bin/sh", "-ec"}).
			RunCommands([]string{"sh /app/main.sh"}).
			DockerfileCommands([]string{"RUN echo hi", "ENV X=1"}).
			AddLocalFile(filepath.Join(dir, "config.toml"), "/etc/config.toml")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Parse([]byte(tc.spec), "spec.yaml", dir)
			if err != nil {
				t.Fatal(err)
			}
			sp, err := img.Plan(ctx)
			if err != nil {
				t.Fatalf("spec plan: %v", err)
			}
			gp, err := tc.goImg.Plan(ctx)
			if err != nil {
				t.Fatalf("Go plan: %v", err)
			}
			if len(sp.Steps) != len(gp.Steps) {
				t.Fatalf("spec plan has %d steps, Go plan %d", len(sp.Steps), len(gp.Steps))
			}
			for i := range sp.Steps {
				s, g := sp.Steps[i], gp.Steps[i]
				if s.Key != g.Key || s.Method != g.Method {
					t.Errorf("step %d: spec %s %s, Go %s %s", i, s.Method, s.Key.Short(), g.Method, g.Key.Short())
				}
			}
		})
	}
}

// TestChangedSpecChangesKeys guards against a parser that drops options:
// changing an option's value in the spec changes the step's key.
func TestChangedSpecChangesKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeRootfs(t, filepath.Join(dir, "rootfs.tar"))
	keys := map[string]string{}
	for _, variant := range []string{
		"  - run_commands: [echo]\n",
		"  - run_commands: [echo]\n    env: {A: b}\n",
		"  - run_commands: [echo]\n    gpu: any\n",
		"  - pip_install: [numpy]\n",
		"  - pip_install: [numpy]\n    pre: true\n",
		"  - pip_install: [numpy]\n    extra_index_url: https://x.example.com\n",
	} {
		img, err := Parse([]byte("base: {from_archive: rootfs.tar}\nsteps:\n"+variant), "s.yaml", dir)
		if err != nil {
			t.Fatal(err)
		}
		p, err := img.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		k := string(p.Steps[len(p.Steps)-1].Key)
		if prev, ok := keys[k]; ok {
			t.Errorf("%q and %q have the same key", prev, variant)
		}
		keys[k] = variant
	}
}
