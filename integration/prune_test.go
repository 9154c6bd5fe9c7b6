package integration

import (
	"context"
	"fmt"
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
	done := make(chan struct{})
	var removed, busy, deleted int
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
			rep, err := s.PruneCache(ctx, builder.PruneOptions{MaxSize: 0})
			if err != nil {
				pruneErr = err
				return
			}
			removed += len(rep.Removed)
			busy += len(rep.Busy)
			deleted += len(rep.DeletedImages)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for i := 0; i < 8; i++ {
		img := base.RunCommands([]string{fmt.Sprintf("echo %d > /n", i%3)}).RunCommands([]string{"cat /one /two /n > /all"})
		res, err := s.Build(ctx, img)
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
	t.Logf("8 builds while pruning: %d entries removed, %d skipped as in use, %d images deleted", removed, busy, deleted)
	if removed == 0 {
		t.Error("prune removed nothing")
	}
}
