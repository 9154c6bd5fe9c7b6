package mount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// settled waits until files written now are older than RacyMargin, so a
// walk may remember their digests.
func settled() { time.Sleep(RacyMargin + 50*time.Millisecond) }

// TestDigestCacheSameTree: a walk through the cache gives the tree the
// plain walk gives, before and after the cache is saved and read back, and
// the second walk reads no file (an entry planted with a wrong digest is
// what it returns).
func TestDigestCacheSameTree(t *testing.T) {
	files := map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n", "sub/deep/c.txt": strings.Repeat("c", 100000)}
	for i := range 40 {
		files[filepath.Join("many", string(rune('a'+i%26))+strings.Repeat("x", i))] = strings.Repeat("m", i)
	}
	dir := writeTree(t, files)
	settled()
	plain, err := Walk(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cachePath := filepath.Join(t.TempDir(), "digests")
	c := OpenDigestCache(cachePath)
	first, err := Walk(dir, nil, WithDigestCache(c))
	if err != nil {
		t.Fatal(err)
	}
	if first.Digest != plain.Digest {
		t.Fatalf("through the cache %s, plain %s", first.Digest, plain.Digest)
	}
	if c.Len() != 43 {
		t.Errorf("the cache holds %d digests, want 43", c.Len())
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c2 := OpenDigestCache(cachePath)
	if c2.Len() != 43 {
		t.Fatalf("read back: %d digests", c2.Len())
	}
	again, err := Walk(dir, nil, WithDigestCache(c2))
	if err != nil || again.Digest != plain.Digest {
		t.Fatalf("second walk %v %v", again, err)
	}
	// Plant a wrong digest for a.txt under its real stat: the walk takes
	// it, so it did not read the file.
	abs, _ := filepath.Abs(filepath.Join(dir, "a.txt"))
	c2.mu.Lock()
	e := c2.entries[abs]
	e.Digest = "sha256:planted"
	c2.entries[abs] = e
	c2.mu.Unlock()
	planted, err := Walk(dir, nil, WithDigestCache(c2))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range planted.Entries {
		if e.Path == "a.txt" && e.Digest != "sha256:planted" {
			t.Errorf("a.txt's digest %q: the walk read the file instead of the cache", e.Digest)
		}
	}
}

// TestDigestCacheSeesChanges: a change of content (same size, the
// modification time put back), a replaced file and a chmod each give the
// new digest; a file written just now is read but not remembered.
func TestDigestCacheSeesChanges(t *testing.T) {
	dir := writeTree(t, map[string]string{"same-size.txt": "aaaa", "replaced.txt": "old", "mode.txt": "m"})
	settled()
	c := OpenDigestCache(filepath.Join(t.TempDir(), "digests"))
	if _, err := Walk(dir, nil, WithDigestCache(c)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "same-size.txt")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("bbbb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "replaced.tmp")
	if err := os.WriteFile(tmp, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "replaced.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "mode.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Walk(dir, nil, WithDigestCache(c))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Walk(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != want.Digest {
		for i := range got.Entries {
			t.Logf("%s: cached %s, read %s", got.Entries[i].Path, got.Entries[i].Digest, want.Entries[i].Digest)
		}
		t.Fatal("the cache hid a change")
	}

	// Just written: read, not remembered.
	fresh := writeTree(t, map[string]string{"new.txt": "new"})
	c2 := OpenDigestCache(filepath.Join(t.TempDir(), "digests"))
	if _, err := Walk(fresh, nil, WithDigestCache(c2)); err != nil {
		t.Fatal(err)
	}
	if c2.Len() != 0 {
		t.Errorf("a file written within RacyMargin was remembered")
	}
}

// TestDigestCacheBadFile: a cache file that does not decode is an empty
// cache, and Save replaces it.
func TestDigestCacheBadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "digests")
	if err := os.WriteFile(p, []byte("not gob"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := OpenDigestCache(p)
	if c.Len() != 0 {
		t.Fatalf("%d entries from a bad file", c.Len())
	}
	dir := writeTree(t, map[string]string{"f": "f"})
	settled()
	if _, err := Walk(dir, nil, WithDigestCache(c)); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if n := OpenDigestCache(p).Len(); n != 1 {
		t.Errorf("after Save: %d entries", n)
	}
}
