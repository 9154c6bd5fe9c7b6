package builder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// commandsOf plans img and returns the last step's commands.
func commandsOf(t *testing.T, img Image) []string {
	t.Helper()
	p, err := img.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p.Steps[len(p.Steps)-1].Spec.Args
}

func TestPackageCommands(t *testing.T) {
	dir := tempTree(t, map[string]string{
		"req.txt":               "numpy\n",
		"proj/pyproject.toml":   "[project]\nname='p'\ndependencies=['b>=1','a']\n[project.optional-dependencies]\ntest=['pytest']\n",
		"proj/uv.lock":          "lock",
		"proj/poetry.lock":      "lock",
		"env.yaml":              "name: base\n",
		"noproj/pyproject.toml": "[project]\nname='q'\n",
	})
	req := filepath.Join(dir, "req.txt")
	proj := filepath.Join(dir, "proj")
	gh := SecretFromMap("gh", map[string]string{"GITHUB_TOKEN": "t0k"})
	for _, tc := range []struct {
		name string
		img  Image
		want []string
	}{
		{"apt", Scratch().AptInstall([]string{"git", "curl", "git", "python3=3.11.2-1+b1"}),
			[]string{"apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y curl git python3=3.11.2-1+b1"}},
		{"pip", Scratch().PipInstall([]string{"numpy", "httpx~=0.23.3", "my pkg"}, IndexURL("http://127.0.0.1:9/simple"), Pre(), ExtraOptions("--no-deps")),
			[]string{"python -m pip install --no-cache-dir 'httpx~=0.23.3' 'my pkg' numpy --index-url http://127.0.0.1:9/simple --pre --no-deps"}},
		{"requirements", Scratch().PipInstallFromRequirements(req, FindLinks("/wheels")),
			[]string{"python -m pip install --no-cache-dir -r /.strata/in/requirements/req.txt --find-links /wheels"}},
		{"pyproject", Scratch().PipInstallFromPyproject(filepath.Join(proj, "pyproject.toml"), OptionalDependencies("test")),
			[]string{"python -m pip install --no-cache-dir a 'b>=1' pytest"}},
		{"private", Scratch().PipInstallPrivateRepos([]string{"github.com/ecorp/one@1.0"}, "erik", WithSecrets(gh)),
			[]string{`python -m pip install --no-cache-dir git+https://erik:"${GITHUB_TOKEN}"@github.com/ecorp/one@1.0`}},
		{"uv pip", Scratch().UvPipInstall([]string{"torch==2.7.1"}, Requirements(req), UvVersion("0.9.5"), Pre()),
			[]string{"python -m pip install --no-cache-dir uv==0.9.5",
				`uv pip install --python "$(command -v python)" --compile-bytecode --no-cache torch==2.7.1 --requirements /.strata/in/requirements-0/req.txt --prerelease allow`}},
		{"uv sync", Scratch().UvSync(proj, Groups("dev"), Extras("gpu")),
			[]string{"cp -R /.strata/in/uv-project /tmp/.strata-uv-project && UV_PROJECT_ENVIRONMENT=/.uv/.venv uv sync --project /tmp/.strata-uv-project --no-install-project --compile-bytecode --no-cache --frozen --group dev --extra gpu; rc=$?; rm -rf /tmp/.strata-uv-project; exit $rc"}},
		{"poetry", Scratch().PoetryInstallFromFile(filepath.Join(proj, "pyproject.toml"), PoetryWith("dev"), PoetryVersion("1.8.3")),
			[]string{"python -m pip install --no-cache-dir poetry==1.8.3",
				"cp -R /.strata/in/poetry-project /tmp/.strata-poetry-project && cd /tmp/.strata-poetry-project && POETRY_VIRTUALENVS_CREATE=false POETRY_CACHE_DIR=/tmp/.strata-poetry-cache poetry install --no-root --no-interaction --with dev; rc=$?; cd / && rm -rf /tmp/.strata-poetry-project /tmp/.strata-poetry-cache; exit $rc"}},
		{"micromamba", Scratch().MicromambaInstall([]string{"pytorch", "cudatoolkit=11.8"}, Channels("pytorch", "conda-forge"), SpecFile(filepath.Join(dir, "env.yaml"))),
			[]string{"micromamba install -y -n base -c pytorch -c conda-forge -f /.strata/in/spec/env.yaml cudatoolkit=11.8 pytorch && micromamba clean --all --yes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := commandsOf(t, tc.img); !slices.Equal(got, tc.want) {
				t.Fatalf("commands:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestPackageInputsAreKeyedByContent: a mounted file's content, not its
// path, enters the key; pyproject edits outside the dependencies do not.
func TestPackageInputsAreKeyedByContent(t *testing.T) {
	a := tempTree(t, map[string]string{"requirements.txt": "numpy\n", "pyproject.toml": "[project]\nname='a'\ndependencies=['x']\n"})
	b := tempTree(t, map[string]string{"requirements.txt": "numpy\n", "pyproject.toml": "[project]\nname='b'\ndescription='other'\ndependencies=['x']\n"})
	ka := lastKey(t, Scratch().PipInstallFromRequirements(filepath.Join(a, "requirements.txt")))
	if kb := lastKey(t, Scratch().PipInstallFromRequirements(filepath.Join(b, "requirements.txt"))); ka != kb {
		t.Fatal("same requirements content in two places gave two keys")
	}
	if err := os.WriteFile(filepath.Join(b, "requirements.txt"), []byte("numpy==2.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if kb := lastKey(t, Scratch().PipInstallFromRequirements(filepath.Join(b, "requirements.txt"))); ka == kb {
		t.Fatal("editing requirements.txt did not change the key")
	}
	pa := lastKey(t, Scratch().PipInstallFromPyproject(filepath.Join(a, "pyproject.toml")))
	if pb := lastKey(t, Scratch().PipInstallFromPyproject(filepath.Join(b, "pyproject.toml"))); pa != pb {
		t.Fatal("pyproject edits outside the dependencies changed the key")
	}
}

func TestPackageBadInput(t *testing.T) {
	dir := tempTree(t, map[string]string{"pyproject.toml": "[project]\nname='p'\ndependencies=['a']\n[project.optional-dependencies]\ndev=['b']\n"})
	for _, tc := range []struct {
		name string
		img  Image
		want string
	}{
		{"apt empty", Scratch().AptInstall(nil), "step 1 (AptInstall): no packages given"},
		{"apt injection", Scratch().AptInstall([]string{"x; rm -rf /"}), `step 1 (AptInstall): "x; rm -rf /" is not a Debian package name`},
		{"pip empty", Scratch().PipInstall([]string{}), "step 1 (PipInstall): no packages given"},
		{"pip option", Scratch().PipInstall([]string{"--index-url=http://evil"}), "looks like an option: pass options with ExtraOptions"},
		{"pip NUL", Scratch().PipInstall([]string{"a\x00b"}), "contains a NUL byte"},
		{"wrong option", Scratch().PipInstall([]string{"a"}, Groups("dev")), "step 1 (PipInstall): option Groups does not apply to PipInstall"},
		{"missing requirements", Scratch().PipInstallFromRequirements(filepath.Join(dir, "nope.txt")), "step 1 (PipInstallFromRequirements): input file"},
		{"missing group", Scratch().PipInstallFromPyproject(filepath.Join(dir, "pyproject.toml"), OptionalDependencies("test")), `has no optional dependency group "test" (it has: dev)`},
		{"private without token", Scratch().PipInstallPrivateRepos([]string{"github.com/a/b"}, "me"), "needs a secret holding GITHUB_TOKEN"},
		{"private bad repo", Scratch().PipInstallPrivateRepos([]string{"github.com/a b"}, "me"), "must look like host/owner/name"},
		{"python version", DebianSlim("2.7"), `step 0 (DebianSlim): unknown Python version "2.7"`},
		{"python of suite", DebianSlim("3.12", UseDebianMirror("bookworm")), "Python 3.12 is not the Python of Debian bookworm (3.11)"},
		{"suite name", DebianMirror("Bookworm; rm"), "is not a Debian suite name"},
		{"mirror option on registry", FromRegistry("debian", Snapshot(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))), "option Snapshot does not apply to FromRegistry"},
		{"module name", Scratch().AddLocalPythonSource([]string{"../etc"}), "is not a Python module name"},
		{"module missing", Scratch().AddLocalPythonSource([]string{"nosuchmod"}, PythonPath(dir)), "module nosuchmod not found in " + dir},
		{"function unregistered", Scratch().RunFunction(Function{}, nil), "function is not registered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.img.Plan(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestQuotedArgumentsSurviveTheShell runs the generated pip command through
// a real sh with a fake python that prints its arguments, one per line.
func TestQuotedArgumentsSurviveTheShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	bin := t.TempDir()
	fake := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n"
	if err := os.WriteFile(filepath.Join(bin, "python"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	pkgs := []string{"it's", `a "quoted" name`, "$HOME", "`id`", "x; rm -rf /", "sp ace", `back\slash`, "a>=1,<2"}
	cmd := commandsOf(t, Scratch().PipInstall(pkgs, ExtraOptions("--opt=$(id)")))[0]
	cmd = strings.Replace(cmd, "python", filepath.Join(bin, "python"), 1)
	out, err := exec.Command(sh, "-c", cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	want := append([]string{"-m", "pip", "install", "--no-cache-dir"}, sortedUnique(pkgs)...)
	want = append(want, "--opt=$(id)")
	if !slices.Equal(got, want) {
		t.Fatalf("arguments after the shell:\n got %q\nwant %q", got, want)
	}
}

func TestAddLocalPythonSourceDefaults(t *testing.T) {
	dir := tempTree(t, map[string]string{
		"pkg/__init__.py": "", "pkg/sub/mod.py": "", "pkg/data.json": "{}",
		"pkg/__pycache__/x.pyc": "", "pkg/.venv/lib.py": "", "single.py": "",
	})
	p, err := Scratch().AddLocalPythonSource([]string{"pkg", "single", "pkg.sub"}, PythonPath(dir), Copy()).Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps[1:] {
		got = append(got, s.Description)
	}
	want := []string{
		filepath.Join(dir, "pkg") + " -> /root/pkg",
		filepath.Join(dir, "single.py") + " -> /root/single.py",
		filepath.Join(dir, "pkg", "sub") + " -> /root/pkg/sub",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("steps %q, want %q", got, want)
	}
	// Only .py files count: editing data.json, the cache or a dot-dir
	// leaves the key alone; editing a .py file does not.
	k := lastKeyOf(t, dir)
	for _, f := range []string{"pkg/data.json", "pkg/__pycache__/x.pyc", "pkg/.venv/lib.py"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("changed"), 0o644); err != nil {
			t.Fatal(err)
		}
		if lastKeyOf(t, dir) != k {
			t.Fatalf("editing %s changed the key", f)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "pkg/sub/mod.py"), []byte("x = 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if lastKeyOf(t, dir) == k {
		t.Fatal("editing a .py file did not change the key")
	}
}

func lastKeyOf(t *testing.T, dir string) string {
	return string(lastKey(t, Scratch().AddLocalPythonSource([]string{"pkg"}, PythonPath(dir), Copy())))
}

// TestGPURequestKeysTheStep: the request, canonicalised, is in the key;
// spelling variants of one request share it.
func TestGPURequestKeysTheStep(t *testing.T) {
	key := func(opts ...RunOption) string {
		return string(lastKey(t, Scratch().RunCommands([]string{"nvidia-smi"}, opts...)))
	}
	plain, h100 := key(), key(GPU("H100"))
	if plain == h100 {
		t.Fatal("GPU(\"H100\") did not change the key")
	}
	if got := key(GPU("h100:1")); got != h100 {
		t.Fatal("h100:1 and H100 are one request but got two keys")
	}
	if key(GPU("A100")) == h100 || key(GPU("H100:2")) == h100 {
		t.Fatal("another model or count shares H100's key")
	}
}

func TestSecretFromDotenv(t *testing.T) {
	dir := tempTree(t, map[string]string{
		"good.env": "# comment\nexport TOKEN=\"abc def\"\nUSER=me\n\nEMPTY=\n",
		"bad.env":  "TOKEN=hunter2\nthis line is wrong hunter2\n",
	})
	s := SecretFromDotenv("app", filepath.Join(dir, "good.env"))
	if s.err != nil || s.env["TOKEN"] != "abc def" || s.env["USER"] != "me" || len(s.env) != 3 {
		t.Fatalf("parsed %v, %v", s.env, s.err)
	}
	bad := SecretFromDotenv("app", filepath.Join(dir, "bad.env"))
	if bad.err == nil || !strings.Contains(bad.err.Error(), "line 2") || strings.Contains(bad.err.Error(), "hunter2") {
		t.Fatalf("error %v: want one naming line 2 without the value", bad.err)
	}
	if err := Scratch().RunCommands([]string{"true"}, WithSecrets(bad)).Err(); err == nil {
		t.Fatal("a bad secret file did not fail the step")
	}
}

func TestInvalidUTF8ArgumentNamesTheStep(t *testing.T) {
	_, err := Scratch().RunCommands([]string{"echo \xff"}).Plan(context.Background())
	if err == nil || !strings.Contains(err.Error(), "step 1 (RunCommands)") || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("error %v", err)
	}
}

// TestSourceDateEpochKeysEveryStep: clamped timestamps change what a step
// commits, so the epoch is in every step's key (not the base's).
func TestSourceDateEpochKeysEveryStep(t *testing.T) {
	img := Scratch().RunCommands([]string{"true"}).Env(map[string]string{"A": "1"})
	plain := planKeys(t, img)
	t.Setenv(EnvSourceDateEpoch, "1700000000")
	withEnv := planKeys(t, img)
	if plain[0] != withEnv[0] {
		t.Fatal("the epoch changed the base's key")
	}
	for i := 1; i < len(plain); i++ {
		if plain[i] == withEnv[i] {
			t.Fatalf("step %d: the epoch did not change the key", i)
		}
	}
	t.Setenv(EnvSourceDateEpoch, "yesterday")
	if _, err := img.Plan(context.Background()); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Fatalf("bad SOURCE_DATE_EPOCH: %v", err)
	}
}
