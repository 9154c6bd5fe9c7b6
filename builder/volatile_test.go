package builder

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
)

// TestVolatileFilesVersion pins the ReproducibleCleanup list to the name
// it has in cache keys: changing the list without a new
// volatileFilesVersion would change results under unchanged keys.
func TestVolatileFilesVersion(t *testing.T) {
	t.Parallel()
	pinned := map[string]string{
		"volatile-v1": "3a0183ff1ee2d98658602bdd7f3295d3e158b3f6bf81d2aa66c6f2716c256d31",
	}
	got := fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(VolatileFiles(), "\n"))))
	want, ok := pinned[volatileFilesVersion]
	if !ok {
		t.Fatalf("no digest pinned for %s: add %q", volatileFilesVersion, got)
	}
	if got != want {
		t.Fatalf("VolatileFiles changed (digest %s) under the same key version %s: give the new list a new volatileFilesVersion and pin its digest here", got, volatileFilesVersion)
	}
	// Callers get a copy.
	VolatileFiles()[0] = "changed"
	if VolatileFiles()[0] == "changed" {
		t.Fatal("VolatileFiles hands out the list itself")
	}
}
