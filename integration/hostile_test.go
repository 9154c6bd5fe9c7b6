package integration

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// TestHostileLocalTree: links that point outside the source are copied as
// links and never followed; an unreadable file is a clear error naming it,
// before any container exists; names with newlines survive.
func TestHostileLocalTree(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	writeFile(t, filepath.Join(outside, "secret.txt"), "outside-the-source\n")
	src := filepath.Join(root, "src")
	writeFile(t, filepath.Join(src, "ok.txt"), "fine\n")
	writeFile(t, filepath.Join(src, "new\nline.txt"), "odd name\n")
	for name, target := range map[string]string{"abs": filepath.Join(outside, "secret.txt"), "up": "../outside/secret.txt", "etc": "/etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	s := openSession(t)
	base := builder.FromArchive(busyboxTar(t))
	res, err := s.Build(ctx, base.AddLocalDir(src, "/app", builder.Copy()))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	links := map[string]string{}
	eachLayer(t, s, res.ImageID, func(r io.Reader) bool {
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err != nil {
				return true
			}
			b, _ := io.ReadAll(tr)
			if strings.Contains(string(b), "outside-the-source") || strings.Contains(string(b), "root:x:0:0") {
				t.Errorf("%s holds a followed link's content", h.Name)
			}
			if h.Typeflag == tar.TypeSymlink {
				links[strings.TrimPrefix(h.Name, "./")] = h.Linkname
			}
		}
	})
	for name, target := range map[string]string{"app/abs": filepath.Join(outside, "secret.txt"), "app/up": "../outside/secret.txt", "app/etc": "/etc/passwd"} {
		if links[name] != target {
			t.Errorf("%s: link %q, want %q (links: %v)", name, links[name], target, links)
		}
	}
	if got := readFromImage(t, s, res.ImageID, "app/new\nline.txt"); got != "odd name\n" {
		t.Errorf("file with a newline in its name: %q", got)
	}

	// An unreadable file: a clear error that names it, no container. Inside
	// strata's user namespace the user's own files are root's and always
	// readable; a file of another user (here root's, made by make setup)
	// is not.
	const fixture = "/var/lib/strata-test-fixtures/unreadable"
	locked := filepath.Join(fixture, "locked.txt")
	if _, err := os.Lstat(locked); err != nil {
		t.Skipf("%s missing: make setup creates it (a root-owned mode-600 file)", locked)
	}
	if f, err := os.Open(locked); err == nil {
		f.Close()
		t.Skipf("this user can read %s (running as real root?)", locked)
	}
	_, err = s.Build(ctx, base.AddLocalDir(fixture, "/app", builder.Copy()))
	if err == nil || !strings.Contains(err.Error(), "step 1 (AddLocalDir)") || !strings.Contains(err.Error(), "locked.txt") {
		t.Fatalf("unreadable file: %v", err)
	}
	t.Logf("unreadable file: %v", err)
	if c, _ := counts(t, s.Store()); c != 0 {
		t.Fatalf("%d containers left", c)
	}
}
