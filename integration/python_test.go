package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/attest"
	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/layers"
)

// writeConfig runs inside the build container (RunFunction): the test
// binary is mounted there and re-executed, and what it writes becomes the
// step's layer.
var writeConfig = builder.RegisterFunction("write-config", "v1", func(ctx context.Context, args []string) error {
	content := strings.Join(args, "\n") + "\nmode=" + os.Getenv("APP_MODE") + "\n"
	return os.WriteFile("/etc/app.conf", []byte(content), 0o644)
})

func debianMirror() string {
	if m := os.Getenv("STRATA_DEBIAN_MIRROR"); m != "" {
		return m
	}
	return "http://deb.debian.org/debian"
}

// mirrorBase is the DebianSlim base made from this machine's Debian mirror.
// The mirror here serves a dated snapshot whose Release files have expired,
// hence the apt options.
func mirrorBase() builder.Image {
	return builder.DebianSlim("3.11", builder.UseDebianMirror("bookworm",
		builder.Mirror(debianMirror()),
		builder.AptOptions(`Acquire::Check-Valid-Until "false"`, `Acquire::Check-Date "false"`)))
}

func requireMmdebstrap(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("mmdebstrap not installed (make setup installs it)")
	}
}

// TestPythonAppOnDebianMirror builds a Python app image the way a Modal user
// would: DebianSlim from a Debian mirror, apt, pip from a local index (a
// wheel that needs an sdist), a Go function run inside the container, the
// app's source, and a final step that runs the app. The rebuild is fully
// cached; editing the app reruns only the steps from its source on.
func TestPythonAppOnDebianMirror(t *testing.T) {
	requireRootless(t)
	requireMmdebstrap(t)
	ctx := context.Background()

	ix := startPyIndex(t)
	ix.addWheel(t, pyDist{name: "strata-greet", version: "1.0", requires: []string{"strata-colors>=0.1"},
		files: map[string]string{"greet/__init__.py": "from colors import paint\n\ndef hello(x):\n    return paint('hello ' + x)\n"}})
	ix.addSdist(t, pyDist{name: "strata-colors", version: "0.2",
		files: map[string]string{"colors/__init__.py": "def paint(s):\n    return '*' + s + '*'\n"}})

	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app", "__init__.py"), "")
	writeFile(t, filepath.Join(src, "app", "__main__.py"),
		"import greet\nconf = open('/etc/app.conf').read().splitlines()\nprint(greet.hello(conf[0]))\n")
	writeFile(t, filepath.Join(src, "app", "notes.txt"), "not Python: left out\n")
	writeFile(t, filepath.Join(src, "app", "__pycache__", "x.pyc"), "junk")
	writeFile(t, filepath.Join(src, "app", ".hidden", "secret.py"), "left out\n")

	define := func() builder.Image {
		return mirrorBase().
			AptInstall([]string{"hello"}).
			PipInstall([]string{"strata-greet"}, builder.IndexURL(ix.URL), builder.ExtraOptions("--no-build-isolation")).
			RunFunction(writeConfig, []string{"world, from Go", "$HOME"}, builder.WithEnv(map[string]string{"APP_MODE": "test"})).
			AddLocalPythonSource([]string{"app"}, builder.PythonPath(src), builder.Copy()).
			Workdir("/root").
			RunCommands([]string{"python -m app > /out.txt", "hello > /hello.txt"}, builder.WithEnv(map[string]string{"PYTHONDONTWRITEBYTECODE": "1"}))
	}
	var log bytes.Buffer
	s := openSession(t)
	res, err := s.Build(ctx, define(), builder.WithOutput(&log))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, tailOf(log.String(), 60))
	}
	if got := readFromImage(t, s, res.ImageID, "out.txt"); got != "*hello world, from Go*\n" {
		t.Fatalf("the app printed %q", got)
	}
	if got := readFromImage(t, s, res.ImageID, "etc/app.conf"); got != "world, from Go\n$HOME\nmode=test\n" {
		t.Fatalf("RunFunction wrote %q (arguments must arrive unexpanded, WithEnv must reach the function)", got)
	}
	if got := readFromImage(t, s, res.ImageID, "hello.txt"); !strings.Contains(got, "Hello, world!") {
		t.Fatalf("apt-installed hello printed %q", got)
	}
	if !ix.requested("/files/strata-colors-0.2.tar.gz") {
		t.Fatal("the sdist was not fetched from the local index")
	}
	for _, p := range []string{"root/app/__main__.py", "root/app/__init__.py"} {
		if !hasFile(t, s, res.ImageID, p) {
			t.Fatalf("%s missing from the image", p)
		}
	}
	// Nothing of the build machinery, the default ignores or caches.
	eachEntry(t, s, res.ImageID, func(name string, _ *tar.Header, _ io.Reader) bool {
		for _, bad := range []string{".strata", "root/app/notes.txt", "root/app/__pycache__", "root/app/.hidden", "root/.cache/pip", "tmp/.strata"} {
			if name == bad || strings.HasPrefix(name, bad+"/") {
				t.Errorf("layer holds %s", name)
			}
		}
		return true
	})

	// A rebuild is fully cached.
	res2, err := s.Build(ctx, define())
	if err != nil {
		t.Fatal(err)
	}
	if got := cachedFlags(res2); strings.Contains(got, "R") || res2.ImageID != res.ImageID {
		t.Fatalf("rebuild: %s, image %s vs %s", got, res2.ImageID, res.ImageID)
	}
	// Its SBOM lists the apt and the pip packages with their versions;
	// its provenance, the base and the app's files by digest; neither
	// holds a host path.
	t.Run("SBOMAndProvenance", func(t *testing.T) {
		requireSBOMTool(t)
		layout := filepath.Join(t.TempDir(), "layout")
		res, err := s.Build(ctx, define(), builder.SBOM(), builder.ExportTo("oci:"+layout+":app"))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res.Exports[0].Attestations); n != 2 {
			t.Errorf("%d attestations, want the provenance and the SBOM", n)
		}
		doc := layoutPredicate(t, layout, "app", attest.PredicateSPDX)
		pkgs := sbomPackages(t, doc)
		for _, want := range []string{"strata-greet@1.0", "strata-colors@0.2"} {
			if !pkgs[want] {
				t.Errorf("the SBOM does not list %s", want)
			}
		}
		hello := false
		for p := range pkgs {
			hello = hello || strings.HasPrefix(p, "hello@2.")
		}
		if !hello {
			t.Error("the SBOM does not list the apt package hello with its version")
		}
		prov := layoutPredicate(t, layout, "app", attest.PredicateSLSAProvenance)
		var pv attest.Provenance
		if err := json.Unmarshal(prov, &pv); err != nil {
			t.Fatal(err)
		}
		var base, app bool
		for _, d := range pv.BuildDefinition.ResolvedDependencies {
			base = base || strings.HasPrefix(d.Name, "base") && len(d.Digest["sha256"]) == 64
			app = app || strings.Contains(d.Name, "AddLocalPythonSource") && len(d.Digest["sha256"]) == 64
		}
		if !base || !app {
			t.Errorf("the provenance lacks the base or the app files: %+v", pv.BuildDefinition.ResolvedDependencies)
		}
		for _, leak := range []string{src, ix.URL} {
			if strings.Contains(string(doc), leak) {
				t.Errorf("the SBOM holds %q", leak)
			}
		}
		if strings.Contains(string(prov), src) {
			t.Errorf("the provenance holds the host path %s", src)
		}
	})

	// Editing a non-Python file changes nothing; editing the app reruns its
	// steps only.
	writeFile(t, filepath.Join(src, "app", "notes.txt"), "edited\n")
	writeFile(t, filepath.Join(src, "app", "__main__.py"),
		"import greet\nconf = open('/etc/app.conf').read().splitlines()\nprint(greet.hello(conf[0]).upper())\n")
	res3, err := s.Build(ctx, define())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cachedFlags(res3), "CCCCCCRRR"; got != want {
		t.Fatalf("after editing the app: %s, want %s", got, want)
	}
	if got := readFromImage(t, s, res3.ImageID, "out.txt"); got != "*HELLO WORLD, FROM GO*\n" {
		t.Fatalf("the edited app printed %q", got)
	}

	// The same store (and so the cached base) for the other pip-family steps.
	base := mirrorBase().AptInstall([]string{"git"})
	t.Run("PipInstallPrivateRepos", func(t *testing.T) { testPrivateRepos(t, s, base) })
	t.Run("PoetryInstallFromFile", func(t *testing.T) { testPoetry(t, s, base, ix) })
	t.Run("PipInstallFromRequirementsAndPyproject", func(t *testing.T) { testRequirements(t, s, base, ix) })
	t.Run("UvAndMicromamba", func(t *testing.T) { testUvMicromamba(t, s, base, ix) })
}

// testPrivateRepos installs a package from a git repository served over
// (dumb) HTTP with basic auth on 127.0.0.1; the token comes from a secret
// and must appear in no layer, config or log.
func testPrivateRepos(t *testing.T, s *builder.Session, base builder.Image) {
	const token = "glpat-private-token-canary"
	repo := t.TempDir()
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed on the host (make setup installs it)")
	}
	work := filepath.Join(repo, "work")
	writeFile(t, filepath.Join(work, "pyproject.toml"), "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"strata-private\"\nversion = \"0.3\"\n")
	writeFile(t, filepath.Join(work, "private_mod", "__init__.py"), "SECRET_SAUCE = 42\n")
	git(work, "init", "-q", "-b", "main")
	git(work, "add", ".")
	git(work, "commit", "-q", "-m", "first")
	bare := filepath.Join(repo, "srv", "ecorp", "private.git")
	git(repo, "clone", "-q", "--bare", work, bare)
	git(bare, "update-server-info")
	files := http.FileServer(http.Dir(filepath.Join(repo, "srv")))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "builder" || p != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "auth needed", http.StatusUnauthorized)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	sec := builder.SecretFromMap("git", map[string]string{"GIT_TOKEN": token})
	img := base.
		PipInstallPrivateRepos([]string{host + "/ecorp/private.git@main"}, "builder", builder.WithSecrets(sec), builder.ExtraOptions("--no-build-isolation")).
		RunCommands([]string{"python -c 'import private_mod; print(private_mod.SECRET_SAUCE)' > /private.txt"})
	var log bytes.Buffer
	res, err := s.Build(context.Background(), img, builder.WithOutput(&lockedWriter{w: &log}))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, tailOf(log.String(), 40))
	}
	if got := readFromImage(t, s, res.ImageID, "private.txt"); got != "42\n" {
		t.Fatalf("/private.txt = %q", got)
	}
	if holdsSecret(log.String(), token) {
		t.Fatal("the build log shows the token")
	}
	assertNotInImage(t, s, res.ImageID, token)
}

// testPoetry installs a poetry project's dependencies with Debian's poetry
// (PoetryVersion("") uses the poetry on PATH) from the local index.
func testPoetry(t *testing.T, s *builder.Session, base builder.Image, ix *pyIndex) {
	ix.addWheel(t, pyDist{name: "strata-poetrydep", version: "2.1",
		files: map[string]string{"poetrydep/__init__.py": "VALUE = 'from poetry'\n"}})
	proj := t.TempDir()
	writeFile(t, filepath.Join(proj, "pyproject.toml"), `[tool.poetry]
name = "app"
version = "0.1.0"
description = ""
authors = ["t <t@example.com>"]

[tool.poetry.dependencies]
python = "^3.11"
strata-poetrydep = "2.1"

[[tool.poetry.source]]
name = "local"
url = "`+ix.URL+`/"
default = true

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
`)
	img := base.AptInstall([]string{"python3-poetry"}).
		PoetryInstallFromFile(filepath.Join(proj, "pyproject.toml"), builder.IgnoreLockfile(), builder.PoetryVersion("")).
		RunCommands([]string{"python -c 'import poetrydep; print(poetrydep.VALUE)' > /poetry.txt"})
	var log bytes.Buffer
	res, err := s.Build(context.Background(), img, builder.WithOutput(&lockedWriter{w: &log}))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, tailOf(log.String(), 40))
	}
	if got := readFromImage(t, s, res.ImageID, "poetry.txt"); got != "from poetry\n" {
		t.Fatalf("/poetry.txt = %q", got)
	}
	for _, p := range []string{"tmp/.strata-poetry-project", "tmp/.strata-poetry-cache", ".strata"} {
		if hasFile(t, s, res.ImageID, p+"/") || hasFile(t, s, res.ImageID, p) {
			t.Errorf("the image holds %s", p)
		}
	}
}

// testRequirements: a requirements file and a pyproject, each keyed by
// content and mounted; an unreachable index fails the step, caching
// nothing.
func testRequirements(t *testing.T, s *builder.Session, base builder.Image, ix *pyIndex) {
	ix.addWheel(t, pyDist{name: "strata-req", version: "1.0", files: map[string]string{"reqmod/__init__.py": "OK = 'req'\n"}})
	ix.addWheel(t, pyDist{name: "strata-extra", version: "1.0", files: map[string]string{"extramod/__init__.py": "OK = 'extra'\n"}})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "requirements.txt"), "strata-req==1.0\n")
	writeFile(t, filepath.Join(dir, "pyproject.toml"), "[project]\nname = 'x'\nversion = '1'\ndependencies = []\n\n[project.optional-dependencies]\nextra = ['strata-extra']\n")
	img := base.
		PipInstallFromRequirements(filepath.Join(dir, "requirements.txt"), builder.IndexURL(ix.URL)).
		PipInstallFromPyproject(filepath.Join(dir, "pyproject.toml"), builder.OptionalDependencies("extra"), builder.IndexURL(ix.URL)).
		RunCommands([]string{"python -c 'import reqmod, extramod; print(reqmod.OK, extramod.OK)' > /req.txt"})
	res, err := s.Build(context.Background(), img)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if got := readFromImage(t, s, res.ImageID, "req.txt"); got != "req extra\n" {
		t.Fatalf("/req.txt = %q", got)
	}
	// An index nobody serves: the step fails with pip's output, and a
	// later build with a good index is not fooled by any cache entry.
	bad := base.PipInstall([]string{"strata-req"}, builder.IndexURL("http://127.0.0.1:9/simple"))
	_, err = s.Build(context.Background(), bad)
	var se *builder.StepError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "(PipInstall)") {
		t.Fatalf("unreachable index: %v", err)
	}
	p, err := s.Plan(context.Background(), bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := layers.NewStoreCache(s.Store()).Get(context.Background(), p.Steps[len(p.Steps)-1].Key); !errors.Is(err, layers.ErrNotFound) {
		t.Fatalf("the failed step has a cache entry (%v)", err)
	}
}

// testUvMicromamba runs uv for real where its binary is on the base;
// Debian packages neither uv nor micromamba and no PyPI or conda channel is
// reachable here, so each says what is missing and skips.
func testUvMicromamba(t *testing.T, s *builder.Session, base builder.Image, ix *pyIndex) {
	res, err := s.Build(context.Background(), base.RunCommands([]string{"(command -v uv || echo none) > /uv.txt; (command -v micromamba || echo none) > /mm.txt"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("uv", func(t *testing.T) {
		if strings.TrimSpace(readFromImage(t, s, res.ImageID, "uv.txt")) == "none" {
			t.Skip("uv is not on the base (no Debian package; PyPI unreachable): UvPipInstall and UvSync are covered by unit tests of their commands only")
		}
		img := base.UvPipInstall([]string{"strata-req"}, builder.IndexURL(ix.URL)).
			RunCommands([]string{"python -c 'import reqmod'"})
		if _, err := s.Build(context.Background(), img); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("micromamba", func(t *testing.T) {
		if strings.TrimSpace(readFromImage(t, s, res.ImageID, "mm.txt")) == "none" {
			t.Skip("micromamba is not on the base and no conda channel is reachable here: MicromambaInstall is covered by unit tests of its commands only")
		}
		t.Skip("micromamba found, but no conda channel is reachable here to install from")
	})
}

func tailOf(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestAddPythonOnRegistryBase: a Debian image without Python, pulled from a
// real registry, gets Python from its own packages; asking for a version
// the distribution does not have fails the step, naming both.
func TestAddPythonOnRegistryBase(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	s := openSession(t, builder.WithInsecureRegistries())
	if _, err := s.Build(ctx, builder.FromArchive(minbaseTar(t)), builder.ExportTo("docker://"+reg+"/debian:minbase")); err != nil {
		t.Fatalf("push: %v", err)
	}
	img := builder.FromRegistry(reg+"/debian:minbase", builder.AddPython("3.11")).
		RunCommands([]string{"python -c 'import sys, pip; print(sys.version_info[:2])' > /py.txt"})
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if got := readFromImage(t, s, res.ImageID, "py.txt"); got != "(3, 11)\n" {
		t.Fatalf("/py.txt = %q", got)
	}
	_, err = s.Build(ctx, builder.FromRegistry(reg+"/debian:minbase", builder.AddPython("3.12")))
	var se *builder.StepError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "step 1 (AddPython)") ||
		!strings.Contains(err.Error(), "offers Python 3.11, not 3.12") {
		t.Fatalf("AddPython(3.12) on bookworm: %v", err)
	}
}
