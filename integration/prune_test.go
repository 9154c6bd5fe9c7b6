package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
)

// TestPruneWhileBuilding prunes the whole cache over and over while builds
// that reuse and extend it run: every build succeeds (prune never removes
// an entry a build holds, nor a layer a build stands on), and prune does
// remove what no build uses.
func TestPruneWhileBuilding(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := builder.FromArchive(busyboxTar(t)).
		RunCommands([]string{"echo one > /one"}).
		RunCommands([]string{"echo two > /two"})
	var removed, busy, deleted int
	buildWhilePruning(t, s, base, func() error {
		rep, err := s.PruneCache(ctx, builder.PruneOptions{MaxSize: 0})
		if err != nil {
			return err
		}
		removed += len(rep.Removed)
		busy += len(rep.Busy)
		deleted += len(rep.DeletedImages)
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	t.Logf("%d builds while pruning: %d entries removed, %d skipped as in use, %d images deleted", pruneBuilds, removed, busy, deleted)
	if removed == 0 {
		t.Error("prune removed nothing")
	}
}

// TestPruneFromAnotherProcess: `strata cache prune --max-size 0` runs over
// and over in other processes while this one builds images that reuse and
// extend the cache in the same store: every build succeeds with the right
// files, and the pruning processes do remove what no build uses.
func TestPruneFromAnotherProcess(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	bin := strataCLI(t)
	root := storeRoot(t)
	graph, run := filepath.Join(root, "graph"), filepath.Join(root, "run")
	s, err := builder.Open(ctx, builder.WithStore(graph, run))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := builder.FromArchive(busyboxTar(t)).
		RunCommands([]string{"echo one > /one"}).
		RunCommands([]string{"echo two > /two"})
	removedLine := regexp.MustCompile(`^removed ([0-9]+) entries, deleted ([0-9]+) images`)
	var prunes, removed, deleted int
	buildWhilePruning(t, s, base, func() error {
		out, err := exec.Command(bin, "cache", "prune", "--max-size", "0", "--store", graph, "--runroot", run).CombinedOutput()
		if err != nil {
			return fmt.Errorf("strata cache prune: %v\n%s", err, out)
		}
		prunes++
		if m := removedLine.FindStringSubmatch(string(out)); m != nil {
			r, _ := strconv.Atoi(m[1])
			d, _ := strconv.Atoi(m[2])
			removed, deleted = removed+r, deleted+d
		}
		return nil
	})
	t.Logf("%d builds while %d prune processes ran: %d entries removed, %d images deleted", pruneBuilds, prunes, removed, deleted)
	if prunes == 0 || removed == 0 {
		t.Errorf("%d prune processes removed %d entries; want some removed", prunes, removed)
	}
}

// pruneBuilds is how many builds run while pruning: five reuse the chain
// (n = 0, 1, 2, 0, 1) as eight did, at two thirds of the time.
const pruneBuilds = 5

// buildWhilePruning runs pruneBuilds builds that reuse and extend base while prune
// runs over and over on another goroutine until they end; each build must
// succeed with the right files. Each build tags its image, as a user who
// keeps an image does: an untagged result is the cache's to prune as soon
// as Build returns, so a prune could delete it before it is read. prune's
// first error stops it and fails the test.
func buildWhilePruning(t *testing.T, s *builder.Session, base builder.Image, prune func() error) {
	t.Helper()
	ctx := context.Background()
	done := make(chan struct{})
	var pruneErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := prune(); err != nil {
				pruneErr = err
				return
			}
		}
	}()
	for i := 0; i < pruneBuilds; i++ {
		img := base.RunCommands([]string{fmt.Sprintf("echo %d > /n", i%3)}).RunCommands([]string{"cat /one /two /n > /all"})
		res, err := s.Build(ctx, img, builder.WithTag(fmt.Sprintf("localhost/prune-test:%d", i)))
		if err != nil {
			close(done)
			wg.Wait()
			t.Fatalf("build %d while pruning: %v", i, err)
		}
		if got := readFromImage(t, s, res.ImageID, "all"); got != fmt.Sprintf("one\ntwo\n%d\n", i%3) {
			t.Errorf("build %d: /all = %q", i, got)
		}
	}
	close(done)
	wg.Wait()
	if pruneErr != nil {
		t.Fatalf("prune: %v", pruneErr)
	}
}
