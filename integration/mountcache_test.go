package integration

import (
	"archive/tar"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
)

// TestCacheMountsShared: runner A fills a pip cache mount while installing
// an sdist from the local index and saves it to a real registry; runner B,
// with an empty store and an empty cache directory, restores it and its pip
// step downloads nothing from the index. The mount's content is in no
// layer.
func TestCacheMountsShared(t *testing.T) {
	requireRootless(t)
	if testing.Short() {
		t.Skip("installs python3-pip from the mirror")
	}
	ctx := context.Background()
	reg := startRegistry(t)
	ix := startPyIndex(t)
	ix.addSdist(t, pyDist{name: "strata-cached", version: "1.0", files: map[string]string{"cachedmod/__init__.py": "OK = 'cached'\n"}})
	base := builder.FromArchive(minbaseTar(t)).RunCommands([]string{
		"apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false update -q",
		"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-pip python-is-python3",
		"rm -rf /var/lib/apt/lists/*",
	})
	img := func(force bool) builder.Image {
		opts := []builder.PackageOption{builder.IndexURL(ix.URL), builder.CacheMount("/root/.cache/pip"),
			builder.ExtraOptions("--no-build-isolation", "--break-system-packages")}
		if force {
			opts = append(opts, builder.ForceBuild())
		}
		return base.PipInstall([]string{"strata-cached"}, opts...).
			RunCommands([]string{"python -c 'import cachedmod; print(cachedmod.OK)' > /ok"})
	}
	layersRepo, mountsRepo := reg+"/cache/layers", reg+"/cache/mounts"
	downloads := func() int {
		ix.mu.Lock()
		defer ix.mu.Unlock()
		n := 0
		for _, h := range ix.hits {
			if strings.HasPrefix(h, "/files/") {
				n++
			}
		}
		ix.hits = nil
		return n
	}

	// Runner A.
	a := openSession(t, builder.WithInsecureRegistries(), builder.WithCacheMountDir(t.TempDir()))
	var outA strings.Builder
	resA, err := a.Build(ctx, img(false), builder.CacheTo(layersRepo), builder.CacheMountsTo(mountsRepo), builder.WithOutput(&outA))
	if err != nil {
		t.Fatalf("runner A: %v\n%s", err, outA.String())
	}
	if n := downloads(); n == 0 {
		t.Fatalf("runner A downloaded nothing from the index:\n%s", outA.String())
	}
	if !strings.Contains(outA.String(), "cache mount /root/.cache/pip: saved to "+mountsRepo) {
		t.Errorf("runner A did not save the cache mount:\n%s", outA.String())
	}
	if got := strings.TrimSpace(readFromImage(t, a, resA.ImageID, "ok")); got != "cached" {
		t.Errorf("/ok = %q", got)
	}
	// A second build on A is cached: the mount is not used, nothing is sent.
	outA.Reset()
	if _, err := a.Build(ctx, img(false), builder.CacheMountsTo(mountsRepo), builder.WithOutput(&outA)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(outA.String(), "cache mount") {
		t.Errorf("a fully cached build touched the cache mount:\n%s", outA.String())
	}

	// Runner B: empty store, empty cache directory; the pip step is forced
	// so that it runs with the restored cache.
	b := openSession(t, builder.WithInsecureRegistries(), builder.WithCacheMountDir(t.TempDir()))
	var outB strings.Builder
	start := time.Now()
	resB, err := b.Build(ctx, img(true), builder.CacheFrom(layersRepo), builder.CacheMountsFrom(mountsRepo), builder.CacheMountsTo(mountsRepo), builder.WithOutput(&outB))
	if err != nil {
		t.Fatalf("runner B: %v\n%s", err, outB.String())
	}
	t.Logf("runner B with the restored pip cache: %.2fs; pip step %.2fs", time.Since(start).Seconds(), resB.Steps[2].Duration.Seconds())
	if !strings.Contains(outB.String(), "cache mount /root/.cache/pip: restored from "+mountsRepo) {
		t.Errorf("runner B did not restore the mount:\n%s", outB.String())
	}
	if resB.Steps[2].Cached || resB.Steps[2].Remote {
		t.Errorf("runner B's pip step did not run")
	}
	for _, l := range strings.Split(outB.String(), "\n") {
		if strings.HasPrefix(l, "cache mount") {
			t.Logf("runner B: %s", l)
		}
	}
	if n := downloads(); n != 0 {
		t.Errorf("runner B's pip step downloaded %d files from the index, want 0:\n%s", n, outB.String())
	}
	// Runner C: same, without the restored cache, for comparison.
	c := openSession(t, builder.WithInsecureRegistries(), builder.WithCacheMountDir(t.TempDir()))
	resC, err := c.Build(ctx, img(true), builder.CacheFrom(layersRepo))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runner C without it: pip step %.2fs, %d index downloads", resC.Steps[2].Duration.Seconds(), downloads())

	// No layer holds the cache mount.
	for _, r := range []*builder.Result{resA, resB} {
		for _, st := range r.Steps {
			if st.ImageID == "" {
				continue
			}
			s := a
			if r == resB {
				s = b
			}
			eachEntry(t, s, st.ImageID, func(name string, _ *tar.Header, _ io.Reader) bool {
				if strings.HasPrefix(name, "root/.cache/pip/") {
					t.Errorf("step %d's layer holds %s", st.Index, name)
					return false
				}
				return true
			})
		}
	}
}

// TestCacheMountUnchangedSendsNothing: a step that runs again without
// changing its cache mount sends nothing on the second save; a changed
// mount sends its new layer.
func TestCacheMountUnchangedSendsNothing(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	repo := reg + "/cache/mounts"
	s := openSession(t, builder.WithInsecureRegistries(), builder.WithCacheMountDir(t.TempDir()))
	img := func(cmd string) builder.Image {
		return builder.FromArchive(busyboxTar(t)).RunCommands([]string{cmd}, builder.CacheMount("/cache"), builder.ForceBuild())
	}
	save := func(cmd string) string {
		t.Helper()
		var out strings.Builder
		if _, err := s.Build(ctx, img(cmd), builder.CacheMountsTo(repo), builder.WithOutput(&out)); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "cache mount /cache:") {
				return l
			}
		}
		t.Fatalf("no cache mount line:\n%s", out.String())
		return ""
	}
	if l := save("test -f /cache/data || echo data > /cache/data"); !strings.Contains(l, "saved to "+repo) {
		t.Errorf("first save: %q", l)
	}
	if l := save("test -f /cache/data || echo data > /cache/data"); l != "cache mount /cache: unchanged, nothing sent" {
		t.Errorf("unchanged mount: %q", l)
	}
	if l := save("echo more >> /cache/data"); !strings.Contains(l, "saved to "+repo) {
		t.Errorf("changed mount: %q", l)
	}
}
