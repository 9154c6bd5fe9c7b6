package integration

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/imagediff"
	"github.com/stratabuild/strata/runners"
	"golang.org/x/sys/unix"
)

// TestDirectCopyMatchesBuildah: local COPY/ADD steps that strata writes
// itself give the image Buildah's Add gives (STRATA_BUILDAH_COPY=1): the
// same files with modes (setuid, an 0700 directory), owners (root, --chown
// by number and by name), symbolic and hard links, names with spaces,
// .dockerignore exclusions, and the same layer entries with the same
// file times, for a directory to a new path, a directory's contents into
// an existing one (files replaced, a directory's metadata updated), a file
// renamed, a file into a directory, several sources, a relative
// destination under WORKDIR, a destination through a symbolic link, and
// the chain's AddLocalDir and AddLocalFile (a copied symbolic link keeps
// its source's time, as BuildKit keeps it, where Buildah's Add gives it
// the time of the copy); and the cases it leaves to Buildah (a glob,
// --chmod) still copy.
func TestDirectCopyMatchesBuildah(t *testing.T) {
	requireRootless(t)
	src := t.TempDir()
	old := time.Date(2021, 5, 6, 7, 8, 9, 123456789, time.UTC)
	writeFile(t, filepath.Join(src, "t", "a.txt"), "a\n")
	writeFile(t, filepath.Join(src, "t", "sp ace"), "space\n")
	writeFile(t, filepath.Join(src, "t", "deep", "er", "x"), strings.Repeat("x", 100000))
	writeFile(t, filepath.Join(src, "t", "run.sh"), "#!/bin/sh\n")
	writeFile(t, filepath.Join(src, "t", "suid"), "s")
	writeFile(t, filepath.Join(src, "t", "skip.log"), "ignored\n")
	writeFile(t, filepath.Join(src, "t", "ignored-dir", "y"), "ignored\n")
	writeFile(t, filepath.Join(src, "t2", "a.txt"), "replaced\n")
	writeFile(t, filepath.Join(src, "t2", "deep", "new"), "new\n")
	writeFile(t, filepath.Join(src, "one"), "one\n")
	for p, m := range map[string]os.FileMode{"t/run.sh": 0o755, "t/suid": 0o755 | os.ModeSetuid, "t2/deep": 0o750} {
		if err := os.Chmod(filepath.Join(src, p), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(src, "t", "a.txt"), filepath.Join(src, "t", "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "t", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "t", "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	_ = filepath.Walk(src, func(p string, _ os.FileInfo, _ error) error {
		ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
		return nil
	})
	writeFile(t, filepath.Join(src, ".dockerignore"), "t/*.log\nt/ignored-dir\n")
	writeFile(t, filepath.Join(src, "Dockerfile"), `FROM base
RUN echo 'app:x:1000:1001::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1001:' >> /etc/group && mkdir /real && ln -s /real /via
COPY t /t
COPY --chown=1234:5678 t /owned
COPY --chown=app t/deep /byname
COPY t/a.txt /etc/a-file
COPY t/a.txt /etc/
COPY t/ /opt/more/
COPY t2/ /t/
COPY one t/run.sh /multi/
WORKDIR /w
COPY one rel/
COPY one renamed
COPY one /via/
COPY t/*.txt /globbed/
COPY --chmod=0640 one /chmodded
`)
	df := builder.FromDockerfile(filepath.Join(src, "Dockerfile"), builder.BuildContext("base", builder.FromArchive(busyboxTar(t))))
	chain := builder.FromArchive(busyboxTar(t)).
		AddLocalDir(filepath.Join(src, "t"), "/chain/dir", builder.Copy(), builder.Ignore("skip.log")).
		AddLocalFile(filepath.Join(src, "one"), "/chain/file", builder.Copy())

	for _, c := range []struct {
		name string
		img  builder.Image
	}{{"dockerfile", df}, {"chain", chain}} {
		t.Run(c.name, func(t *testing.T) {
			direct, plain, a, b := bothWays(t, c.img, runners.BuildahCopyEnv)
			if ds := imagediff.Compare(a, b, imagediff.Options{}); len(ds) > 0 {
				t.Errorf("direct and Buildah copies differ:\n%v", ds)
			}
			la, lb := layerEntries(t, direct), layerEntries(t, plain)
			ta, tb := layerTimes(t, direct), layerTimes(t, plain)
			if len(la) != len(lb) {
				t.Fatalf("%d layers direct, %d through Buildah", len(la), len(lb))
			}
			for i := range la {
				if strings.Join(la[i], "\n") != strings.Join(lb[i], "\n") {
					t.Errorf("layer %d's entries differ:\ndirect  %q\nbuildah %q", i, la[i], lb[i])
				}
				if i == 0 || (c.name == "dockerfile" && i == 1) {
					continue // the base, and the RUN layer written at each build's time
				}
				for name, tm := range ta[i] {
					if strings.HasSuffix(name, "/link") {
						// Buildah's Add leaves a copied symbolic link with
						// the time it made it; strata keeps the source's,
						// as BuildKit does.
						if !tm.Equal(old.Truncate(time.Second)) && !tm.Equal(old) {
							t.Errorf("layer %d: the symbolic link %s has time %v, not its source's %v", i, name, tm, old)
						}
						continue
					}
					if !tb[i][name].Equal(tm) {
						t.Errorf("layer %d: %s has time %v direct, %v through Buildah", i, name, tm, tb[i][name])
					}
				}
			}
			if c.name == "chain" {
				if _, ok := a.Files["chain/dir/skip.log"]; ok {
					t.Error("Ignore(skip.log) copied it")
				}
				return
			}
			// Which copies strata wrote itself (STRATA_PHASES notes
			// them): all but the glob and --chmod.
			r := runCLIEnv(t, strataCLI(t), []string{"STRATA_PHASES=1", runners.BuildahCopyEnv}, "build", "-f", filepath.Join(src, "Dockerfile"),
				"--build-context", "base=archive:"+busyboxTar(t), "--store", filepath.Join(storeRoot(t), "graph"), "--runroot", filepath.Join(storeRoot(t), "run"), src)
			if r.code != 0 {
				t.Fatalf("strata build: %d\n%s", r.code, r.stderr)
			}
			if n, m := strings.Count(r.stderr, "(copied by strata)"), strings.Count(r.stderr, "(copied by Buildah)"); n != 11 || m != 2 {
				t.Errorf("%d copies written by strata (want 11), %d by Buildah (want 2):\n%s", n, m, r.stderr)
			}
			checks := map[string]func(imagediff.File) bool{
				"t/suid":             func(f imagediff.File) bool { return f.Mode&os.ModeSetuid != 0 },
				"t/empty":            func(f imagediff.File) bool { return f.Type == 'd' && f.Mode.Perm() == 0o700 },
				"t/a.txt":            func(f imagediff.File) bool { return f.Digest == contentDigest("replaced\n") },
				"t/deep":             func(f imagediff.File) bool { return f.Mode.Perm() == 0o750 },
				"t/link":             func(f imagediff.File) bool { return f.Type == 'l' && f.Link == "a.txt" },
				"owned/deep/er/x":    func(f imagediff.File) bool { return f.UID == 1234 && f.GID == 5678 },
				"byname/er/x":        func(f imagediff.File) bool { return f.UID == 1000 && f.GID == 1001 },
				"etc/a-file":         func(f imagediff.File) bool { return f.Digest == contentDigest("a\n") },
				"etc/a.txt":          func(f imagediff.File) bool { return f.Type == 'f' },
				"opt/more/deep/er/x": func(f imagediff.File) bool { return f.Size == 100000 },
				"multi/run.sh":       func(f imagediff.File) bool { return f.Mode.Perm() == 0o755 },
				"w/rel/one":          func(f imagediff.File) bool { return f.Type == 'f' },
				"w/renamed":          func(f imagediff.File) bool { return f.Digest == contentDigest("one\n") },
				"real/one":           func(f imagediff.File) bool { return f.Type == 'f' },
				"globbed/a.txt":      func(f imagediff.File) bool { return f.Type == 'f' },
				"chmodded":           func(f imagediff.File) bool { return f.Mode.Perm() == 0o640 },
			}
			for p, ok := range checks {
				if f, there := a.Files[p]; !there || !ok(f) {
					t.Errorf("/%s is %+v (there: %v)", p, f, there)
				}
			}
			for _, gone := range []string{"t/skip.log", "t/ignored-dir", "owned/skip.log"} {
				if _, ok := a.Files[gone]; ok {
					t.Errorf("/%s was copied, though .dockerignore excludes it", gone)
				}
			}
		})
	}
}

// layerTimes maps, per layer of the only image in an OCI layout, each
// non-directory entry to its modification time.
func layerTimes(t *testing.T, layout string) []map[string]time.Time {
	t.Helper()
	var idx struct{ Manifests []struct{ Digest string } }
	readJSONFile(t, filepath.Join(layout, "index.json"), &idx)
	var m struct{ Layers []struct{ Digest string } }
	readJSONFile(t, filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:")), &m)
	var out []map[string]time.Time
	for _, l := range m.Layers {
		f, err := os.Open(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		times := map[string]time.Time{}
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag != tar.TypeDir {
				times[h.Name] = h.ModTime
			}
		}
		f.Close()
		out = append(out, times)
	}
	return out
}
