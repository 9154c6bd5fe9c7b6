package integration

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/imagediff"
	"github.com/stratabuild/strata/runners"
)

// TestStagedCopyLayer: a COPY step's layer is made of the working
// container's own files (no second write): the image it gives is the one
// the plain commit gives (STRATA_NO_STAGED_LAYERS=1), file for file, with
// modes, owners, setuid bits, symlinks and hard links, and its layers'
// tar entries are the same but for the times of the directories the copy
// made; the layer reads back whole (exported, digests checked); the
// store keeps no layer that no image uses.
func TestStagedCopyLayer(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	base := busyboxTar(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "t", "a.txt"), "a\n")
	writeFile(t, filepath.Join(src, "t", "sp ace"), "space\n")
	writeFile(t, filepath.Join(src, "t", "deep", "er", "x"), strings.Repeat("x", 1<<20))
	writeFile(t, filepath.Join(src, "t", "run.sh"), "#!/bin/sh\n")
	writeFile(t, filepath.Join(src, "t", "suid"), "s")
	for p, m := range map[string]os.FileMode{"run.sh": 0o755, "suid": 0o755 | os.ModeSetuid} {
		if err := os.Chmod(filepath.Join(src, "t", p), m); err != nil {
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
	writeFile(t, filepath.Join(src, "Dockerfile"), "FROM base\nCOPY t /t\nCOPY --chown=1234:5678 t /owned\nCOPY t/a.txt /etc/a-file\nCOPY t/ /opt/more/\n")
	df := builder.FromDockerfile(filepath.Join(src, "Dockerfile"), builder.BuildContext("base", builder.FromArchive(base)))

	build := func(plain bool) (string, *builder.Session) {
		t.Helper()
		if plain {
			t.Setenv(runners.NoStagingEnv, "1")
		} else {
			t.Setenv(runners.NoStagingEnv, "")
		}
		s := openSession(t)
		layout := filepath.Join(t.TempDir(), "layout")
		if _, err := s.Build(ctx, df, builder.ExportTo("oci:"+layout+":latest"), builder.LayerCompression("none")); err != nil {
			t.Fatalf("plain=%v: %v", plain, err)
		}
		return layout, s
	}
	staged, ss := build(false)
	plain, _ := build(true)
	a, err := imagediff.Load(staged, "latest")
	if err != nil {
		t.Fatalf("the staged image does not read back: %v", err)
	}
	b, err := imagediff.Load(plain, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if ds := imagediff.Compare(a, b, imagediff.Options{}); len(ds) > 0 {
		t.Errorf("staged and plain images differ:\n%v", ds)
	}
	if f := a.Files["owned/deep/er/x"]; f.UID != 1234 || f.GID != 5678 || f.Size != 1<<20 {
		t.Errorf("/owned/deep/er/x is %+v", f)
	}
	if f := a.Files["t/suid"]; f.Mode&os.ModeSetuid == 0 {
		t.Errorf("/t/suid lost its setuid bit: %v", f.Mode)
	}
	sa, sb := layerEntries(t, staged), layerEntries(t, plain)
	if len(sa) != len(sb) {
		t.Fatalf("%d layers staged, %d plain", len(sa), len(sb))
	}
	for i := range sa {
		if !slices.Equal(sa[i], sb[i]) {
			t.Errorf("layer %d's entries differ:\nstaged %q\nplain  %q", i, sa[i], sb[i])
		}
	}
	if !slices.ContainsFunc(sa[1], func(e string) bool { return strings.Contains(e, " 1 a.txt") || strings.Contains(e, " 1 t/") }) {
		t.Errorf("no hard link in the COPY layer: %q", sa[1])
	}

	// The CLI says which way each COPY went (STRATA_PHASES): staged.
	r := runCLIEnv(t, strataCLI(t), []string{"STRATA_PHASES=1", runners.NoStagingEnv}, "build", "-f", filepath.Join(src, "Dockerfile"),
		"--build-context", "base=archive:"+base, "--store", filepath.Join(storeRoot(t), "graph"), "--runroot", filepath.Join(storeRoot(t), "run"), src)
	if r.code != 0 {
		t.Fatalf("strata build: %d\n%s", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, " stage "); n != 4 || strings.Contains(r.stderr, "no-stage") {
		t.Errorf("%d of 4 COPY steps staged:\n%s", n, r.stderr)
	}

	// Every layer of the store belongs to an image (the staged ones were
	// taken by the commits; none is left over).
	used := map[string]bool{}
	imgs, err := ss.Store().Images()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		for id := img.TopLayer; id != ""; {
			used[id] = true
			l, err := ss.Store().Layer(id)
			if err != nil {
				t.Fatal(err)
			}
			id = l.Parent
		}
	}
	ls, err := ss.Store().Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if !used[l.ID] {
			t.Errorf("layer %s belongs to no image", l.ID)
		}
	}
}

// layerEntries lists each layer of the only image in an OCI layout (made
// with LayerCompression("none")) as "name type link mode uid gid size"
// lines, in order; the times are left out.
func layerEntries(t *testing.T, layout string) [][]string {
	t.Helper()
	var idx struct{ Manifests []struct{ Digest string } }
	readJSONFile(t, filepath.Join(layout, "index.json"), &idx)
	var m struct{ Layers []struct{ Digest string } }
	readJSONFile(t, filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:")), &m)
	var out [][]string
	for _, l := range m.Layers {
		f, err := os.Open(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(f)
		var ents []string
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			ents = append(ents, strings.Join([]string{h.Name, string(h.Typeflag), h.Linkname, strconv.FormatInt(h.Mode, 8), strconv.Itoa(h.Uid), strconv.Itoa(h.Gid), strconv.FormatInt(h.Size, 10)}, " "))
		}
		f.Close()
		out = append(out, ents)
	}
	return out
}
