package mount

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzPatterns: any pattern list either is refused or gives a matcher that
// answers for any path without panicking; normalising is idempotent.
func FuzzPatterns(f *testing.F) {
	f.Add("**/*.py", "a/b/c.py")
	f.Add("!x", "x")
	f.Add("/abs/../..", "../etc/passwd")
	f.Add("[", "a")
	f.Add("a\\", "a\x00b")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		pats := []string{pattern, "!" + pattern}
		n := NormalizePatterns(pats)
		if again := NormalizePatterns(n); !slices.Equal(again, n) {
			t.Fatalf("normalising twice changed %q to %q", n, again)
		}
		m, err := NewMatcher(pats)
		if err != nil {
			return
		}
		_, _ = m.Ignored(path)
	})
}

// FuzzNamesDigestApart: two directories whose only file names differ
// never digest alike, whatever bytes the names hold.
func FuzzNamesDigestApart(f *testing.F) {
	f.Add("a\xff", "a\xfe")
	f.Add("x", "y")
	f.Add("new\nline", "new line")
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b || !okName(a) || !okName(b) {
			return
		}
		da, db := t.TempDir(), t.TempDir()
		if os.WriteFile(filepath.Join(da, a), nil, 0o644) != nil || os.WriteFile(filepath.Join(db, b), nil, 0o644) != nil {
			return
		}
		ta, err := Walk(da, nil)
		if err != nil {
			t.Fatal(err)
		}
		tb, err := Walk(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ta.Digest == tb.Digest {
			t.Fatalf("files %q and %q digest alike", a, b)
		}
	})
}

func okName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) < 200 && !containsAny(s, "/\x00")
}

func containsAny(s, chars string) bool {
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return true
			}
		}
	}
	return false
}
