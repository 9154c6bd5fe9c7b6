package runners

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	godigest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// TestLinkTree: the staged layer's directory holds the upper directory's
// files as hard links (the same inodes: nothing is written again) and
// directories made anew with the same mode, owner, times and extended
// attributes (an overlay opaque marker among them).
func TestLinkTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "d", "e"), 0o755))
	must(os.WriteFile(filepath.Join(src, "d", "f"), []byte("f"), 0o640))
	must(os.WriteFile(filepath.Join(src, "top"), []byte("top"), 0o600))
	must(os.Symlink("d/f", filepath.Join(src, "link")))
	must(os.Link(filepath.Join(src, "top"), filepath.Join(src, "d", "hard")))
	must(os.Chmod(filepath.Join(src, "d", "e"), 0o1777))
	xattr := true
	if err := unix.Lsetxattr(filepath.Join(src, "d"), "user.overlay.opaque", []byte("y"), 0); err != nil {
		xattr = false
		t.Logf("no user xattrs on this filesystem (%v): not checked", err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	must(os.Chtimes(filepath.Join(src, "d"), old, old))

	must(linkTree(src, dst))

	for _, name := range []string{"top", "d/f", "link", "d/hard"} {
		a, err := os.Lstat(filepath.Join(src, name))
		must(err)
		b, err := os.Lstat(filepath.Join(dst, name))
		must(err)
		if a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
			t.Errorf("%s: not a hard link of the original", name)
		}
	}
	for _, name := range []string{"d", "d/e"} {
		a, err := os.Lstat(filepath.Join(src, name))
		must(err)
		b, err := os.Lstat(filepath.Join(dst, name))
		must(err)
		if !b.IsDir() || a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: %v %v, want %v %v", name, b.Mode(), b.ModTime(), a.Mode(), a.ModTime())
		}
		as, bs := a.Sys().(*syscall.Stat_t), b.Sys().(*syscall.Stat_t)
		if as.Uid != bs.Uid || as.Gid != bs.Gid || as.Ino == bs.Ino {
			t.Errorf("%s: owner %d:%d (inode %d), want %d:%d in a directory of its own", name, bs.Uid, bs.Gid, bs.Ino, as.Uid, as.Gid)
		}
	}
	if xattr {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dst, "d"), "user.overlay.opaque", buf)
		if err != nil || string(buf[:n]) != "y" {
			t.Errorf("the opaque marker did not follow: %q %v", buf[:n], err)
		}
	}
}

// TestStagedLayerID is containers/image's layer ID for a diff on a parent,
// which the commit looks up to reuse the staged layer.
func TestStagedLayerID(t *testing.T) {
	d := godigest.FromString("layer")
	if got := stagedLayerID("", d); got != d.Encoded() {
		t.Errorf("no parent: %s", got)
	}
	if got, want := stagedLayerID("abc", d), godigest.FromString("abc+"+d.Encoded()).Encoded(); got != want {
		t.Errorf("on a parent: %s, want %s", got, want)
	}
	if got := splitNul([]byte("user.a\x00user.b\x00")); len(got) != 2 || got[0] != "user.a" || got[1] != "user.b" {
		t.Errorf("splitNul: %q", got)
	}
}
