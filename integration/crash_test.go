//go:build strata_failpoints

package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashHarness: a child build is killed with SIGKILL at a chosen phase
// (a failpoint compiled in with the tag strata_failpoints) or at a random
// time. After each kill the parent opens the store and checks: Open removes
// what strata left and nothing else (another tool's container stays), every
// image has all its layers, and the next build succeeds, reuses every step
// recorded before the kill and yields the same file tree as an
// uninterrupted build. STRATA_CRASH_RANDOM_KILLS sets the number of random
// kills (default 4; make crash runs 16).
func TestCrashHarness(t *testing.T) {
	requireRootless(t)
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Skip("the buildah command is needed to make another tool's container (make setup installs it)")
	}
	base := busyboxTar(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "conf.txt"), "configured\n")
	// The image as an uninterrupted build makes it.
	refRoot := storeRoot(t)
	ref := runChild(t, refRoot, base, src, "", 0)
	refStore := openStoreAt(t, refRoot)
	want := imageTree(t, refStore, ref.imageID)
	_ = refStore.Close()
	t.Logf("uninterrupted build: %s", ref.duration.Round(time.Millisecond))

	phases := []string{"step+300", "commit+5", "commit", "staged", "before-record", "after-record", "tag", "export+5", "export"}
	random := 4
	if n, err := strconv.Atoi(os.Getenv("STRATA_CRASH_RANDOM_KILLS")); err == nil {
		random = n
	}
	type kill struct {
		point, hit string
	}
	var kills []kill
	rng := rand.New(rand.NewPCG(1, 2))
	runs := len(phases) + random
	for i := range runs {
		root := storeRoot(t)
		// Another tool's container in the same store, which strata must
		// leave alone.
		other := exec.Command("buildah", "--root", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run"),
			"--storage-driver", "overlay", "from", "--name", "other-tool-ctr", "scratch")
		other.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		if out, err := other.CombinedOutput(); err != nil {
			t.Fatalf("buildah from: %v\n%s", err, out)
		}
		// Some steps finished before: a first build killed halfway.
		point, after := "", time.Duration(0)
		if i < len(phases) {
			point = phases[i]
		} else {
			after = time.Duration(rng.Int64N(int64(ref.duration)))
			point = "random " + after.Round(time.Millisecond).String()
		}
		fp := point
		if after > 0 {
			fp = ""
		}
		r := runChild(t, root, base, src, fp, after)
		done := stepsRecorded(r.out)
		hit := "killed"
		if !r.killed {
			hit = "finished before the kill"
		}
		kills = append(kills, kill{point, hit})

		s := openStoreAt(t, root)
		// Open removed strata's leftovers and nothing else.
		cs, err := s.Store().Containers()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Names...)
		}
		if len(names) != 1 || names[0] != "other-tool-ctr" {
			t.Fatalf("%s: containers after reopening: %v (reaped %v)", point, names, s.Reaped().Containers)
		}
		// Every cache entry names a complete image.
		imgs, err := s.Store().Images()
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			for id := img.TopLayer; id != ""; {
				l, err := s.Store().Layer(id)
				if err != nil {
					t.Fatalf("%s: image %v has a missing layer %s: %v", point, img.Names, id, err)
				}
				id = l.Parent
			}
		}
		// No image layer is left looking mounted (only the other tool's
		// container layer may be), and no layer strata staged for a
		// commit the kill stopped is left (the reaper removes them; they
		// carry a working-container name until the commit takes them).
		// (A kill inside containers/image's commit can leave an unnamed
		// layer whose image was not written yet: that is the library's,
		// and not checked here.)
		used := map[string]bool{cs[0].LayerID: true}
		for _, img := range imgs {
			for id := img.TopLayer; id != ""; {
				used[id] = true
				l, err := s.Store().Layer(id)
				if err != nil {
					break
				}
				id = l.Parent
			}
		}
		if ls, err := s.Store().Layers(); err == nil {
			for _, l := range ls {
				if l.MountCount > 0 && l.ID != cs[0].LayerID {
					t.Errorf("%s: layer %s still counts %d mounts after reopening", point, l.ID, l.MountCount)
				}
				if !used[l.ID] && slices.ContainsFunc(l.Names, func(n string) bool { return strings.HasPrefix(n, "strata-w") }) {
					t.Errorf("%s: layer %s %v belongs to no image after reopening (reaped %v)", point, l.ID, l.Names, s.Reaped().Layers)
				}
			}
		}
		// The next build succeeds, reuses what had finished, and makes the
		// same files.
		if err := s.Close(); err != nil {
			t.Errorf("%s: closing the store: %v", point, err)
		}
		again := runChild(t, root, base, src, "", 0)
		if again.killed || again.imageID == "" {
			t.Fatalf("%s: the build after the kill failed:\n%s", point, again.out)
		}
		cached := strings.Count(again.out, ": CACHED ")
		if cached < done {
			t.Errorf("%s: %d steps had finished, the next build reused %d", point, done, cached)
		}
		s = openStoreAt(t, root)
		if got := imageTree(t, s, again.imageID); got != want {
			t.Errorf("%s: the resumed image's files differ from an uninterrupted build's", point)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: closing the store: %v", point, err)
		}
	}
	var b strings.Builder
	for _, k := range kills {
		fmt.Fprintf(&b, "\n  %-22s %s", k.point, k.hit)
	}
	t.Logf("%d kills tried:%s", len(kills), b.String())
}
