package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
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
	eachLayer(t, s, res.ImageID, func(r io.Reader) bool {
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err != nil {
				return true
			}
			name := strings.TrimPrefix(h.Name, "./")
			for _, bad := range []string{".strata", "root/app/notes.txt", "root/app/__pycache__", "root/app/.hidden", "root/.cache/pip", "tmp/.strata"} {
				if name == bad || strings.HasPrefix(name, bad+"/") {
					t.Errorf("layer holds %s", name)
				}
			}
		}
	})

	// A rebuild is fully cached.
	res2, err := s.Build(ctx, define())
	if err != nil {
		t.Fatal(err)
	}
	if got := cachedFlags(res2); strings.Contains(got, "R") || res2.ImageID != res.ImageID {
		t.Fatalf("rebuild: %s, image %s vs %s", got, res2.ImageID, res.ImageID)
	}
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
}

func tailOf(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
