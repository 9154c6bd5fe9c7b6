package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// TestVolumes: a named volume (Modal's volumes=) persists between steps
// and builds that name it, is read-write, and is in no layer; another name
// is another directory.
func TestVolumes(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	mounts := t.TempDir()
	s := openSession(t, builder.WithCacheMountDir(mounts))
	bb := builder.FromArchive(busyboxTar(t))
	vol := builder.Volumes(map[string]string{"/data": "models"})
	res, err := s.Build(ctx, bb.RunCommands([]string{"echo weights > /data/model.bin"}, vol))
	if err != nil {
		t.Fatal(err)
	}
	if hasFile(t, s, res.ImageID, "data/model.bin") || hasFile(t, s, res.ImageID, "data") {
		t.Error("the volume's content or mount point is in the layer")
	}
	if b, err := os.ReadFile(filepath.Join(mounts, "volumes", "models", "model.bin")); err != nil || string(b) != "weights\n" {
		t.Errorf("the volume on the host: %q, %v", b, err)
	}
	// Another build reads it; another volume name does not see it.
	res2, err := s.Build(ctx, bb.RunCommands([]string{"cat /data/model.bin > /seen"}, vol))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res2.ImageID, "seen"); got != "weights\n" {
		t.Errorf("the second build read %q", got)
	}
	res3, err := s.Build(ctx, bb.RunCommands([]string{"ls /data > /listing"}, builder.Volumes(map[string]string{"/data": "other"})))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res3.ImageID, "listing"); got != "" {
		t.Errorf("another volume holds %q", got)
	}
}

// TestIgnoreFuncCopies: what IgnoreFunc drops is not copied, names with
// glob characters included, and what it keeps is.
func TestIgnoreFuncCopies(t *testing.T) {
	requireRootless(t)
	s := openSession(t)
	dir := t.TempDir()
	for p, c := range map[string]string{"app.py": "1", "app.pyc": "2", "a[1]*.txt": "3", "a1x.txt": "4", "cache/big.bin": "5"} {
		writeFile(t, filepath.Join(dir, p), c)
	}
	drop := func(p string) bool { return filepath.Ext(p) == ".pyc" || p == "cache" || p == "a[1]*.txt" }
	res, err := s.Build(context.Background(), builder.FromArchive(busyboxTar(t)).AddLocalDir(dir, "/app", builder.Copy(), builder.IgnoreFunc(drop)))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"app/app.py": true, "app/a1x.txt": true, "app/app.pyc": false, "app/a[1]*.txt": false, "app/cache": false, "app/cache/big.bin": false} {
		if got := hasFile(t, s, res.ImageID, p); got != want {
			t.Errorf("%s in the image: %v, want %v", p, got, want)
		}
	}
}
