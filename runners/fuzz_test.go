package runners

import "testing"

// FuzzParseRegistryRef: any string is refused or parsed, never a panic;
// a parsed reference's string form parses to the same reference.
func FuzzParseRegistryRef(f *testing.F) {
	for _, s := range []string{"debian", "debian:bookworm", "127.0.0.1:5000/a/b:1", "docker://x/y@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "UPPER/case", "a/../b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseRegistryRef(s)
		if err != nil {
			return
		}
		again, err := ParseRegistryRef(n.String())
		if err != nil || again.String() != n.String() {
			t.Fatalf("%q -> %q -> %v, %v", s, n.String(), again, err)
		}
	})
}
