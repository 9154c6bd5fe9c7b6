package runners

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRemoveInRootStaysInside: symlinks in the image (absolute or climbing)
// never lead a removal out of the root filesystem.
func TestRemoveInRootStaysInside(t *testing.T) {
	outside := t.TempDir()
	keep := filepath.Join(outside, "dpkg.log")
	if err := os.WriteFile(keep, []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var", "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /var/log -> the host directory, /var/cache/x -> ../../../..
	if err := os.Symlink(outside, filepath.Join(root, "var", "log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../..", filepath.Join(root, "var", "cache", "up")); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(root, "var", "cache", "aux-cache")
	if err := os.WriteFile(inside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := removeInRoot(root, []string{"/var/log/dpkg.log", "/var/cache/up/" + filepath.Base(outside) + "/*", "/var/cache/aux-cache"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("a file outside the root was removed: %v", err)
	}
	if _, err := os.Stat(inside); !os.IsNotExist(err) {
		t.Errorf("%s was not removed: %v", inside, err)
	}
}

func TestEnvSetKeepsPlace(t *testing.T) {
	t.Parallel()
	base := []string{"PATH=/bin", "A=1"}
	for _, c := range []struct {
		k, v string
		want []string
	}{
		{"PATH", "/opt:/bin", []string{"PATH=/opt:/bin", "A=1"}},
		{"B", "2", []string{"PATH=/bin", "A=1", "B=2"}},
		{"A", "", []string{"PATH=/bin", "A="}},
	} {
		if got := envSet(base, c.k, c.v); !slices.Equal(got, c.want) {
			t.Errorf("envSet(%s=%s) = %q, want %q", c.k, c.v, got, c.want)
		}
	}
	if base[0] != "PATH=/bin" {
		t.Error("envSet changed its argument")
	}
}
