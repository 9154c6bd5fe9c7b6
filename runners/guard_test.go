package runners

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUnescapeMountinfo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"/var/tmp/buildah1/mnt/rootfs", "/var/tmp/buildah1/mnt/rootfs"},
		{`/tmp/a\040b/c`, "/tmp/a b/c"},
		{`/tmp/tab\011x`, "/tmp/tab\tx"},
		{`/tmp/back\134slash`, `/tmp/back\slash`},
		{`/tmp/trailing\04`, `/tmp/trailing\04`},
	} {
		if got := unescapeMountinfo(c.in); got != c.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestRemoveRunDir: a Buildah run directory goes, with the mode-0
// directories Buildah makes in it; anything else is refused.
func TestRemoveRunDir(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "buildah123456")
	for _, d := range []string{"mnt/rootfs", "run", "mounts789/x"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"mnt/rootfs", "mnt"} {
		if err := os.Chmod(filepath.Join(dir, d), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeRunDir(dir); err != nil {
		t.Fatalf("removeRunDir: %v", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s is still there (%v)", dir, err)
	}
	other := filepath.Join(tmp, "home")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := removeRunDir(other); err == nil {
		t.Fatal("removeRunDir removed a directory that is not Buildah's")
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("%s is gone: %v", other, err)
	}
}
