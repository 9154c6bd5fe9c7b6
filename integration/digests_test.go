package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/mount"
)

// TestDigestCacheSeesEdits: the store remembers the context files'
// digests by their stat, so a rebuild of an unchanged tree reads none of
// them; an edit that keeps the size and puts the modification time back
// (as `touch -r` or a careless sync tool does) still reruns the COPY and
// the image gets the new content; so does a Dockerfile's COPY of the
// same tree.
func TestDigestCacheSeesEdits(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := busyboxTar(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "conf.txt"), "aaaa\n")
	writeFile(t, filepath.Join(src, "sub", "other.txt"), "other\n")
	writeFile(t, filepath.Join(src, "Dockerfile"), "FROM base\nCOPY conf.txt /df-conf.txt\n")
	time.Sleep(mount.RacyMargin + 100*time.Millisecond) // old enough to be remembered
	img := builder.FromArchive(base).AddLocalDir(src, "/app", builder.Copy())
	df := builder.FromDockerfile(filepath.Join(src, "Dockerfile"), builder.BuildContext("base", builder.FromArchive(base)))
	for _, i := range []builder.Image{img, df} {
		if _, err := s.Build(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := os.Stat(filepath.Join(s.Store().GraphRoot(), "strata-file-digests")); err != nil || st.Size() == 0 {
		t.Fatalf("the store keeps no file digests: %v", err)
	}
	for _, i := range []builder.Image{img, df} {
		res, err := s.Build(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Steps[len(res.Steps)-1].Cached {
			t.Errorf("no-change rebuild ran the copy")
		}
	}
	p := filepath.Join(src, "conf.txt")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, "bbbb\n")
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[1].Cached {
		t.Errorf("the edit (same size, same mtime) was hidden: AddLocalDir cached")
	}
	if got := readFromImage(t, s, res.ImageID, "app/conf.txt"); got != "bbbb\n" {
		t.Errorf("/app/conf.txt = %q", got)
	}
	res, err = s.Build(ctx, df)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "df-conf.txt"); got != "bbbb\n" {
		t.Errorf("the Dockerfile's /df-conf.txt = %q", got)
	}
}
