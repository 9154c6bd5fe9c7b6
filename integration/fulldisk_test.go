package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/layers"
)

// smallDisk is a size-limited tmpfs that make setup mounts for this test.
const smallDisk = "/var/lib/strata-test-fixtures/smalldisk"

// TestFullDisk: with the store on a nearly full filesystem, the step that
// hits ENOSPC fails with a clear error, records nothing and leaves no
// working container; once space is freed the same build succeeds.
func TestFullDisk(t *testing.T) {
	requireRootless(t)
	var fs syscall.Statfs_t
	if err := syscall.Statfs(smallDisk, &fs); err != nil || fs.Type != 0x01021994 { // TMPFS_MAGIC
		t.Skipf("%s is not a tmpfs: make setup mounts a small one for this test", smallDisk)
	}
	ctx := context.Background()
	// A run that died midway left its store (and filler) behind.
	if old, _ := filepath.Glob(filepath.Join(smallDisk, "store-*")); len(old) > 0 {
		_ = exec.Command("rm", append([]string{"-rf"}, old...)...).Run()
	}
	root, err := os.MkdirTemp(smallDisk, "store-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
	base := busyboxTar(t)
	s, err := builder.Open(ctx, builder.WithStore(filepath.Join(root, "graph"), filepath.Join(root, "run")))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Import the base while there is room, then fill the disk but 4 MiB.
	if _, err := s.Build(ctx, builder.FromArchive(base)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Statfs(smallDisk, &fs); err != nil {
		t.Fatal(err)
	}
	free := int64(fs.Bavail) * fs.Bsize
	filler := filepath.Join(root, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for written := int64(0); written < free-4<<20; written += int64(len(chunk)) {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	img := builder.FromArchive(base).RunCommands([]string{"head -c 16777216 /dev/zero > /big && echo wrote"})
	_, err = s.Build(ctx, img)
	if err == nil {
		t.Fatal("a 16 MiB write on a disk with 4 MiB free succeeded")
	}
	t.Logf("full disk: %v", err)
	if !strings.Contains(err.Error(), "step 1 (RunCommands)") ||
		!strings.Contains(err.Error(), "filesystem is full") && !strings.Contains(strings.ToLower(err.Error()), "no space left") {
		t.Fatalf("the error should name the step and say the disk is full: %v", err)
	}
	p, err := s.Plan(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := layers.NewStoreCache(s.Store()).Get(ctx, p.Steps[1].Key); !errors.Is(err, layers.ErrNotFound) {
		t.Fatalf("the failed step has a cache entry (%v)", err)
	}
	// Space freed: the same build succeeds on the same store, and the
	// working container that a full store could not even delete is gone.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("after freeing space: %v", err)
	}
	if res.Steps[0].Cached != true {
		t.Fatal("the base was not reused")
	}
	if c, _ := counts(t, s.Store()); c != 0 {
		t.Fatalf("%d working containers left", c)
	}
}
