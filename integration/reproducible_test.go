package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
)

// TestSourceDateEpochReproducible builds one definition in two empty
// stores, seconds apart, with SourceDateEpoch: the manifest digests must
// match.
func TestSourceDateEpochReproducible(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	base := busyboxTar(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app", "main.sh"), "echo hi\n")
	writeFile(t, filepath.Join(src, "app", "data", "x.txt"), "data\n")
	img := builder.FromArchive(base).
		RunCommands([]string{"mkdir -p /out && echo built > /out/built && touch /out/a /out/b"}).
		AddLocalDir(filepath.Join(src, "app"), "/app", builder.Copy()).
		Env(map[string]string{"MODE": "prod"}).
		Cmd([]string{"/bin/sh", "/app/main.sh"})
	epoch := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var digests []string
	for i := range 2 {
		s := openSession(t, builder.SourceDateEpoch(epoch))
		res, err := s.Build(ctx, img, builder.ExportTo(fmt.Sprintf("oci:/tmp/sde-%d", i)))
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		digests = append(digests, res.ManifestDigest)
		time.Sleep(1100 * time.Millisecond) // a different second for the second build
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds with SourceDateEpoch gave %s and %s", digests[0], digests[1])
	}
}
