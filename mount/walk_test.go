package mount

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// writeTree creates files (path -> content) under a new temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func files(tr *Tree) []string {
	var out []string
	for _, e := range tr.Entries {
		if e.Type == "file" {
			out = append(out, e.Path)
		}
	}
	return out
}

func TestIgnorePatterns(t *testing.T) {
	t.Parallel()
	tree := map[string]string{
		"main.py":               "m",
		"README.md":             "r",
		"build/out.o":           "o",
		"build/keep.txt":        "k",
		"src/a.tmp":             "t",
		"src/deep/b.tmp":        "t",
		"src/deep/c.py":         "c",
		"docs/x.md":             "x",
		"sub/README.md":         "s",
		".git/config":           "g",
		"node_modules/m/i.js":   "j",
		"a/node_modules/m/i.js": "j",
	}
	cases := []struct {
		name     string
		patterns []string
		want     []string
	}{
		{"none", nil, []string{".git/config", "README.md", "a/node_modules/m/i.js", "build/keep.txt", "build/out.o", "docs/x.md", "main.py", "node_modules/m/i.js", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py", "sub/README.md"}},
		{"directory", []string{"build"}, []string{".git/config", "README.md", "a/node_modules/m/i.js", "docs/x.md", "main.py", "node_modules/m/i.js", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py", "sub/README.md"}},
		{"single star stays in one dir", []string{"*.tmp"}, []string{".git/config", "README.md", "a/node_modules/m/i.js", "build/keep.txt", "build/out.o", "docs/x.md", "main.py", "node_modules/m/i.js", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py", "sub/README.md"}},
		{"double star spans dirs", []string{"**/*.tmp"}, []string{".git/config", "README.md", "a/node_modules/m/i.js", "build/keep.txt", "build/out.o", "docs/x.md", "main.py", "node_modules/m/i.js", "src/deep/c.py", "sub/README.md"}},
		{"re-include with bang", []string{"build", "!build/keep.txt"}, []string{".git/config", "README.md", "a/node_modules/m/i.js", "build/keep.txt", "docs/x.md", "main.py", "node_modules/m/i.js", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py", "sub/README.md"}},
		{"later pattern wins", []string{"!build/keep.txt", "build"}, []string{".git/config", "README.md", "a/node_modules/m/i.js", "docs/x.md", "main.py", "node_modules/m/i.js", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py", "sub/README.md"}},
		{"leading slash is the root", []string{"/README.md"}, []string{".git/config", "a/node_modules/m/i.js", "build/keep.txt", "build/out.o", "docs/x.md", "main.py", "node_modules/m/i.js", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py", "sub/README.md"}},
		{"any depth name", []string{"**/node_modules"}, []string{".git/config", "README.md", "build/keep.txt", "build/out.o", "docs/x.md", "main.py", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py", "sub/README.md"}},
		{"dot dir", []string{".*"}, []string{"README.md", "a/node_modules/m/i.js", "build/keep.txt", "build/out.o", "docs/x.md", "main.py", "node_modules/m/i.js", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py", "sub/README.md"}},
		{"everything but", []string{"*", "!main.py", "!src"}, []string{"main.py", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py"}},
		{"markdown anywhere except docs", []string{"**/*.md", "!docs/**"}, []string{".git/config", "a/node_modules/m/i.js", "build/keep.txt", "build/out.o", "docs/x.md", "main.py", "node_modules/m/i.js", "src/a.tmp", "src/deep/b.tmp", "src/deep/c.py"}},
	}
	root := writeTree(t, tree)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, err := Walk(root, tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if got := files(tr); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("patterns %q:\n got  %q\n want %q", tc.patterns, got, tc.want)
			}
		})
	}
}

func TestBadPattern(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"[", "!", "a/[b"} {
		if _, err := NewMatcher([]string{p}); err == nil {
			t.Errorf("pattern %q: want an error", p)
		}
	}
}

func TestDigestSensitivity(t *testing.T) {
	t.Parallel()
	base := map[string]string{"a.txt": "hello", "d/b.txt": "world", "skip.tmp": "x"}
	digestOf := func(t *testing.T, mutate func(root string), patterns ...string) string {
		root := writeTree(t, base)
		if mutate != nil {
			mutate(root)
		}
		tr, err := Walk(root, patterns)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Digest
	}
	ref := digestOf(t, nil, "*.tmp")
	if again := digestOf(t, nil, "*.tmp"); again != ref {
		t.Fatalf("same tree, two digests: %s %s", ref, again)
	}
	same := []struct {
		name string
		mut  func(string)
	}{
		{"mtime", func(r string) {
			_ = os.Chtimes(filepath.Join(r, "a.txt"), time0, time0)
		}},
		{"ignored file edited", func(r string) { _ = os.WriteFile(filepath.Join(r, "skip.tmp"), []byte("y"), 0o644) }},
		{"ignored file added", func(r string) { _ = os.WriteFile(filepath.Join(r, "new.tmp"), []byte("y"), 0o644) }},
	}
	for _, tc := range same {
		if d := digestOf(t, tc.mut, "*.tmp"); d != ref {
			t.Errorf("%s changed the digest", tc.name)
		}
	}
	diff := []struct {
		name string
		mut  func(string)
	}{
		{"content byte", func(r string) { _ = os.WriteFile(filepath.Join(r, "a.txt"), []byte("hellp"), 0o644) }},
		{"mode", func(r string) { _ = os.Chmod(filepath.Join(r, "a.txt"), 0o755) }},
		{"rename", func(r string) { _ = os.Rename(filepath.Join(r, "a.txt"), filepath.Join(r, "c.txt")) }},
		{"file added", func(r string) { _ = os.WriteFile(filepath.Join(r, "n.txt"), nil, 0o644) }},
		{"file removed", func(r string) { _ = os.Remove(filepath.Join(r, "d/b.txt")) }},
		{"empty dir added", func(r string) { _ = os.Mkdir(filepath.Join(r, "e"), 0o755) }},
		{"symlink added", func(r string) { _ = os.Symlink("a.txt", filepath.Join(r, "l")) }},
	}
	for _, tc := range diff {
		if d := digestOf(t, tc.mut, "*.tmp"); d == ref {
			t.Errorf("%s did not change the digest", tc.name)
		}
	}
	if d := digestOf(t, nil, "*.txt"); d == ref {
		t.Error("a different ignore pattern did not change the digest")
	}
}

func TestSymlinkNotFollowed(t *testing.T) {
	t.Parallel()
	outside := writeTree(t, map[string]string{"secret": "s"})
	root := writeTree(t, map[string]string{"a": "a"})
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	tr, err := Walk(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tr.Entries {
		if e.Path == "out" && (e.Type != "symlink" || e.Target != outside) {
			t.Errorf("symlink recorded as %+v", e)
		}
		if e.Path == "out/secret" {
			t.Error("walk followed a symlink out of the source")
		}
	}
}

func TestMissingAndUnreadable(t *testing.T) {
	t.Parallel()
	if _, err := Walk(filepath.Join(t.TempDir(), "nope"), nil); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing source: got %v", err)
	}
	if os.Geteuid() == 0 {
		t.Skip("unreadable-file case needs an unprivileged user (root reads everything)")
	}
	root := writeTree(t, map[string]string{"locked": "x"})
	p := filepath.Join(root, "locked")
	_ = os.Chmod(p, 0)
	_, err := Walk(root, nil)
	if err == nil || !contains(err.Error(), p) {
		t.Errorf("unreadable file: got %v, want an error naming %s", err, p)
	}
}
