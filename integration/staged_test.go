package integration

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/imagediff"
	"github.com/stratabuild/strata/runners"
	"go.podman.io/storage"
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
		setPlainCommit(t, plain)
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
	checkNoStrayLayers(t, ss.Store())
}

// checkNoStrayLayers: every layer of st belongs to an image.
func checkNoStrayLayers(t *testing.T, st storage.Store) {
	t.Helper()
	used := map[string]bool{}
	imgs, err := st.Images()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		for id := img.TopLayer; id != ""; {
			used[id] = true
			l, err := st.Layer(id)
			if err != nil {
				t.Fatal(err)
			}
			id = l.Parent
		}
	}
	ls, err := st.Layers()
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

// TestDirectCommitMatchesBuildah: a step's image written by strata (its
// layer the working container's own files, moved into the store; its
// manifest and config Buildah's, with the layer added) is the image
// Buildah's own commit gives (STRATA_NO_STAGED_LAYERS=1), in both formats:
// the same files, owners, modes and whiteouts, the same layer entries, the
// same config (env, user, working directory, labels, command, healthcheck)
// and the same history, entry for entry, but for the times; every step
// but the first is committed directly (STRATA_PHASES says "image"), the
// image reads back whole (exported, digests checked) and the store keeps
// no layer that no image uses.
func TestDirectCommitMatchesBuildah(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	base := busyboxTar(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app", "a.txt"), "a\n")
	writeFile(t, filepath.Join(src, "app", "sub", "b.txt"), "b\n")
	writeFile(t, filepath.Join(src, "Dockerfile"), "FROM base\n"+
		"ENV A=1 B=two\n"+
		"RUN mkdir -p /work /gone && echo 1 > /work/one && ln /work/one /work/hard && ln -s one /work/soft && rm -rf /etc/group /gone\n"+
		"LABEL org.example.step=direct\n"+
		"COPY app /app\n"+
		"WORKDIR /srv/data\n"+
		"RUN chown -R 1000:1000 /srv && chmod 4755 /work/one && echo x > rel.txt\n"+
		"USER 1000\n"+
		"RUN echo $A > /tmp/a\n"+
		"HEALTHCHECK --interval=5s CMD true\n"+
		"CMD [\"cat\", \"/work/one\"]\n")
	df := builder.FromDockerfile(filepath.Join(src, "Dockerfile"), builder.BuildContext("base", builder.FromArchive(base)))

	for _, format := range []string{"oci", "docker"} {
		t.Run(format, func(t *testing.T) {
			type built struct {
				layout  string
				config  map[string]any
				session *builder.Session
			}
			build := func(plain bool) built {
				t.Helper()
				setPlainCommit(t, plain)
				s := openSession(t)
				layout := filepath.Join(t.TempDir(), "layout")
				res, err := s.Build(ctx, df, builder.Format(format), builder.ExportTo("oci:"+layout+":latest"), builder.LayerCompression("none"))
				if err != nil {
					t.Fatalf("plain=%v: %v", plain, err)
				}
				raw, err := s.Store().ImageBigData(res.ImageID, "sha256:"+res.ImageID)
				if err != nil {
					t.Fatalf("plain=%v: the image's config: %v", plain, err)
				}
				var cfg map[string]any
				if err := json.Unmarshal(raw, &cfg); err != nil {
					t.Fatal(err)
				}
				return built{layout, cfg, s}
			}
			direct, plain := build(false), build(true)
			a, err := imagediff.Load(direct.layout, "latest")
			if err != nil {
				t.Fatalf("the directly committed image does not read back: %v", err)
			}
			b, err := imagediff.Load(plain.layout, "latest")
			if err != nil {
				t.Fatal(err)
			}
			if ds := imagediff.Compare(a, b, imagediff.Options{}); len(ds) > 0 {
				t.Errorf("direct and Buildah-committed images differ:\n%v", ds)
			}
			if _, ok := a.Files["etc/group"]; ok {
				t.Errorf("/etc/group, removed by a RUN step, is still there")
			}
			if f := a.Files["work/one"]; f.Mode&os.ModeSetuid == 0 {
				t.Errorf("/work/one lost its setuid bit: %v", f.Mode)
			}
			sa, sb := layerEntries(t, direct.layout), layerEntries(t, plain.layout)
			if len(sa) != len(sb) {
				t.Fatalf("%d layers direct, %d Buildah's", len(sa), len(sb))
			}
			for i := range sa {
				if !slices.Equal(sa[i], sb[i]) {
					t.Errorf("layer %d's entries differ:\ndirect   %q\nBuildah's %q", i, sa[i], sb[i])
				}
			}
			// The configs, as stored, are the same but for the times and
			// the working container's ID and host name (docker format).
			norm := func(c map[string]any) string {
				c = maps.Clone(c)
				delete(c, "created")
				delete(c, "container")
				for _, k := range []string{"config", "container_config"} {
					if cc, ok := c[k].(map[string]any); ok {
						cc = maps.Clone(cc)
						delete(cc, "Hostname")
						c[k] = cc
					}
				}
				if h, ok := c["history"].([]any); ok {
					for _, e := range h {
						delete(e.(map[string]any), "created")
					}
				}
				if r, ok := c["rootfs"].(map[string]any); ok {
					r = maps.Clone(r)
					r["diff_ids"] = len(r["diff_ids"].([]any))
					c["rootfs"] = r
				}
				out, _ := json.MarshalIndent(c, "", " ")
				return string(out)
			}
			if x, y := norm(direct.config), norm(plain.config); x != y {
				t.Errorf("configs differ:\ndirect:\n%s\nBuildah's:\n%s", x, y)
			}
			if format == "docker" && !strings.Contains(norm(direct.config), "Healthcheck") {
				t.Errorf("the docker-format config has no healthcheck:\n%s", norm(direct.config))
			}

			// Every layer of the store belongs to an image (the moved ones
			// were taken by their images; none is left over), and no
			// tar-split file of a commit is left in the run root.
			checkNoStrayLayers(t, direct.session.Store())
			if left, _ := filepath.Glob(filepath.Join(direct.session.Store().RunRoot(), "strata-tar-split-*")); len(left) > 0 {
				t.Errorf("tar-split files left behind: %v", left)
			}
		})
	}

	// The CLI says how each step was committed (STRATA_PHASES): directly,
	// every step of the Dockerfile (the ENV strata adds for a base
	// without PATH included).
	r := runCLIEnv(t, strataCLI(t), []string{"STRATA_PHASES=1", runners.NoStagingEnv}, "build", "-f", filepath.Join(src, "Dockerfile"),
		"--build-context", "base=archive:"+base, "--store", filepath.Join(storeRoot(t), "graph"), "--runroot", filepath.Join(storeRoot(t), "run"), src)
	if r.code != 0 {
		t.Fatalf("strata build: %d\n%s", r.code, r.stderr)
	}
	steps := strings.Count(r.stderr, "strata: phases ")
	direct := len(regexp.MustCompile(` image [0-9]+ms`).FindAllString(r.stderr, -1))
	if steps < 10 || direct != steps || strings.Contains(r.stderr, "committed by Buildah") {
		t.Errorf("%d of %d steps committed directly:\n%s", direct, steps, r.stderr)
	}
}

// checkLayersFoundByChainID checks that the store finds every complete
// layer by the ID containers/image derives for it from its parent's ID
// and its digest (what a copy of an image into the store looks layers up
// by): a layer strata made under another ID is named with that one.
func checkLayersFoundByChainID(t *testing.T, st storage.Store) {
	t.Helper()
	ls, err := st.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.UncompressedDigest == "" {
			continue
		}
		chain := l.UncompressedDigest.Encoded()
		if l.Parent != "" {
			chain = digest.Canonical.FromString(l.Parent + "+" + chain).Encoded()
		}
		got, err := st.Layer(chain)
		if err != nil || got.ID != l.ID {
			t.Errorf("layer %s (digest %s) is not found by its chain ID %s: %v %v", l.ID, l.UncompressedDigest, chain, got, err)
		}
	}
}

// TestWorkingContainerIsItsLayer: a step committed the direct way runs in
// a working container that is only a layer of the store, which then
// becomes the step's layer: no container record is ever made (the store
// is watched through the whole build), no layer is left that no image
// uses, every layer is found by the ID containers/image would give it,
// and the layers are the plain commit's, entry for entry. With the
// plain commit (STRATA_NO_STAGED_LAYERS=1) the same watch does see
// working containers: it can tell.
func TestWorkingContainerIsItsLayer(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	base := busyboxTar(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app", "a.txt"), "a\n")
	writeFile(t, filepath.Join(src, "Dockerfile"), "FROM base\n"+
		"ENV WHO=layer\n"+
		"RUN mkdir /work && echo $WHO > /work/who && rm -f /etc/group\n"+
		"COPY app /app\n"+
		"WORKDIR /work\n"+
		"LABEL step=config-only\n"+
		"RUN cat /app/a.txt >> who\n"+
		"CMD [\"cat\", \"/work/who\"]\n")
	df := builder.FromDockerfile(filepath.Join(src, "Dockerfile"), builder.BuildContext("base", builder.FromArchive(base)))
	build := func(plain bool) (string, int) {
		t.Helper()
		setPlainCommit(t, plain)
		s := openSession(t)
		stop, seen := make(chan struct{}), make(chan int)
		go func() {
			most := 0
			for {
				if cs, err := s.Store().Containers(); err == nil && len(cs) > most {
					most = len(cs)
				}
				select {
				case <-stop:
					seen <- most
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		layout := filepath.Join(t.TempDir(), "layout")
		_, err := s.Build(ctx, df, builder.ExportTo("oci:"+layout+":latest"), builder.LayerCompression("none"))
		close(stop)
		most := <-seen
		if err != nil {
			t.Fatalf("plain=%v: %v", plain, err)
		}
		if cs, err := s.Store().Containers(); err != nil || len(cs) > 0 {
			t.Errorf("plain=%v: containers left: %v %v", plain, cs, err)
		}
		checkNoStrayLayers(t, s.Store())
		checkLayersFoundByChainID(t, s.Store())
		return layout, most
	}
	direct, most := build(false)
	if most != 0 {
		t.Errorf("%d working container(s) in the store during the direct build; want none", most)
	}
	plain, most := build(true)
	if most == 0 {
		t.Errorf("the watch saw no working container during the plain build either: it cannot tell")
	}
	sa, sb := layerEntries(t, direct), layerEntries(t, plain)
	if len(sa) != len(sb) {
		t.Fatalf("%d layers direct, %d plain", len(sa), len(sb))
	}
	for i := range sa {
		if !slices.Equal(sa[i], sb[i]) {
			t.Errorf("layer %d's entries differ:\ndirect %q\nplain  %q", i, sa[i], sb[i])
		}
	}
	a, err := imagediff.Load(direct, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := a.Files["work/who"]; !ok || f.Size != int64(len("layer\na\n")) {
		t.Errorf("/work/who: %+v (present %v), want the two steps' lines", f, ok)
	}
	if _, ok := a.Files["etc/group"]; ok {
		t.Errorf("/etc/group, removed by a RUN step, is still there")
	}
}

// setPlainCommit makes the sessions the test opens next commit the plain
// way, through Buildah's working containers and commit
// (STRATA_NO_STAGED_LAYERS=1), or, with plain false, the direct way.
func setPlainCommit(t *testing.T, plain bool) {
	t.Helper()
	v := ""
	if plain {
		v = "1"
	}
	t.Setenv(runners.NoStagingEnv, v)
}
