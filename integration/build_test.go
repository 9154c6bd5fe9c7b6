package integration

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// fourSteps is the image the core tests build: a run step, a copied
// directory, a run step that reads it, and a non-copy file.
func fourSteps(base, src, conf string, opts ...builder.RunOption) builder.Image {
	return builder.FromArchive(base).
		RunCommands([]string{"mkdir -p /app", "echo one > /app/one"}).
		AddLocalDir(src, "/app/src", builder.Copy(), builder.Ignore("*.tmp")).
		RunCommands([]string{"cat /app/src/data.txt > /app/seen"}, opts...).
		AddLocalFile(conf, "/etc/app.conf").
		Cmd([]string{"cat", "/app/seen"})
}

func counts(t *testing.T, st storage.Store) (containers, images int) {
	t.Helper()
	cs, err := st.Containers()
	if err != nil {
		t.Fatal(err)
	}
	is, err := st.Images()
	if err != nil {
		t.Fatal(err)
	}
	return len(cs), len(is)
}

func TestCoreCaching(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := busyboxTar(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "data.txt"), "v1\n")
	writeFile(t, filepath.Join(src, "junk.tmp"), "ignored\n")
	conf := filepath.Join(dir, "app.conf")
	writeFile(t, conf, "setting=1\n")

	res, err := s.Build(ctx, fourSteps(base, src, conf), builder.WithTag("core-test"))
	if err != nil {
		t.Fatalf("cold build: %v", err)
	}
	// Plan order: base, run, add(copy), run, cmd, then the non-copy add last.
	wantMethods := []string{"FromArchive", "RunCommands", "AddLocalDir", "RunCommands", "Cmd", "AddLocalFile"}
	var got []string
	for _, st := range res.Steps {
		got = append(got, st.Method)
	}
	if strings.Join(got, ",") != strings.Join(wantMethods, ",") {
		t.Fatalf("steps %v, want %v", got, wantMethods)
	}
	if f := cachedFlags(res); f != "RRRRRR" {
		t.Fatalf("cold build cache states %s, want all run", f)
	}
	c, _ := counts(t, s.Store())
	if c != 0 {
		t.Fatalf("%d working containers left after a build", c)
	}

	// Rebuild: no container is created, every step is cached.
	st := s.Store()
	before, _ := st.Containers()
	res2, err := s.Build(ctx, fourSteps(base, src, conf))
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res2); f != "CCCCCC" {
		t.Fatalf("no-change rebuild cache states %s, want all cached", f)
	}
	if res2.ImageID != res.ImageID {
		t.Fatalf("no-change rebuild gave image %s, want %s", res2.ImageID, res.ImageID)
	}
	after, _ := st.Containers()
	if len(before) != 0 || len(after) != 0 {
		t.Fatalf("containers before/after rebuild: %d/%d", len(before), len(after))
	}

	// Editing an ignored file changes nothing.
	writeFile(t, filepath.Join(src, "junk.tmp"), "still ignored\n")
	res3, err := s.Build(ctx, fourSteps(base, src, conf))
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res3); f != "CCCCCC" {
		t.Fatalf("after editing an ignored file: %s, want all cached", f)
	}

	// Editing a non-copy file rebuilds no build step.
	writeFile(t, conf, "setting=2\n")
	res4, err := s.Build(ctx, fourSteps(base, src, conf))
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res4); f != "CCCCCR" {
		t.Fatalf("after editing a non-copy file: %s, want only the last (non-copy add) step run", f)
	}

	// Editing a copied file rebuilds that step and the ones after it.
	writeFile(t, filepath.Join(src, "data.txt"), "v2\n")
	res5, err := s.Build(ctx, fourSteps(base, src, conf))
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res5); f != "CCRRRR" {
		t.Fatalf("after editing a copied file: %s, want CCRRRR", f)
	}
	if got := readFromImage(t, s, res5.ImageID, "app/seen"); got != "v2\n" {
		t.Fatalf("/app/seen = %q, want the edited content", got)
	}
	if got := readFromImage(t, s, res5.ImageID, "etc/app.conf"); got != "setting=2\n" {
		t.Fatalf("/etc/app.conf = %q", got)
	}
	if hasFile(t, s, res5.ImageID, "app/src/junk.tmp") {
		t.Fatal("an ignored file was copied into the image")
	}

	// ForceBuild on step 3 re-runs it and everything after it.
	res6, err := s.Build(ctx, fourSteps(base, src, conf, builder.ForceBuild()))
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res6); f != "CCCRRR" {
		t.Fatalf("with ForceBuild on step 3: %s, want CCCRRR", f)
	}

	// The tag points at the first build's image; nothing else was tagged.
	img, err := st.Image("localhost/core-test:latest")
	if err != nil || img.ID != res.ImageID {
		t.Fatalf("tag: %v %v", img, err)
	}
	if c, _ := counts(t, st); c != 0 {
		t.Fatalf("%d containers left", c)
	}
}

func TestFailingStepLeavesNothing(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := busyboxTar(t)
	good := builder.FromArchive(base).RunCommands([]string{"echo ok > /ok"})
	if _, err := s.Build(ctx, good); err != nil {
		t.Fatal(err)
	}
	_, imagesBefore := counts(t, s.Store())
	bad := good.RunCommands([]string{"echo about to fail", "for i in 1 2 3; do echo line $i; done; exit 7"}).
		RunCommands([]string{"echo never"})
	_, err := s.Build(ctx, bad, builder.WithTag("must-not-exist"))
	var se *builder.StepError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a *StepError", err)
	}
	if se.ExitCode != 7 || !strings.Contains(se.Step, "step 2 (RunCommands)") || !strings.Contains(se.Command, "exit 7") {
		t.Fatalf("step error %+v", se)
	}
	if n := len(se.Tail); n == 0 || se.Tail[n-1] != "line 3" {
		t.Fatalf("output tail %q, want it to end with the command's last line", se.Tail)
	}
	if !strings.Contains(err.Error(), "exited with code 7") {
		t.Fatalf("error text %q", err)
	}
	c, imagesAfter := counts(t, s.Store())
	if c != 0 || imagesAfter != imagesBefore {
		t.Fatalf("after a failed step: %d containers, %d images (was %d)", c, imagesAfter, imagesBefore)
	}
	if _, err := s.Store().Image("localhost/must-not-exist:latest"); err == nil {
		t.Fatal("a failed build tagged its image")
	}
	plan, err := s.Plan(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := layers.NewStoreCache(s.Store()).Get(ctx, plan.Steps[2].Key); !errors.Is(err, layers.ErrNotFound) {
		t.Fatalf("the failed step has a cache entry: %v", err)
	}
}

func TestBadInputFailsBeforeAnyContainer(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := busyboxTar(t)
	cases := []struct {
		name string
		img  builder.Image
		want string
	}{
		{"missing local dir", builder.FromArchive(base).AddLocalDir("/nonexistent/src", "/app", builder.Copy()), "step 1 (AddLocalDir): local path /nonexistent/src"},
		{"bad ignore pattern", builder.FromArchive(base).AddLocalDir(t.TempDir(), "/app", builder.Ignore("[")), "step 1 (AddLocalDir): ignore pattern"},
		{"bad reference", builder.FromRegistry("UPPER/Case::bad"), "step 0 (FromRegistry): bad image reference"},
		{"missing archive", builder.FromArchive("/nonexistent.tar"), "step 0 (FromArchive)"},
		{"empty commands", builder.FromArchive(base).RunCommands(nil), "step 1 (RunCommands): no commands given"},
		{"unreachable registry", builder.FromRegistry("127.0.0.1:1/nothing:latest"), "step 0 (FromRegistry): resolving"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Build(ctx, tc.img)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if c, _ := counts(t, s.Store()); c != 0 {
				t.Fatalf("%d containers after bad input", c)
			}
		})
	}
}

func TestExportOCILayout(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := busyboxTar(t)
	out := filepath.Join(t.TempDir(), "layout")
	img := builder.FromArchive(base).
		RunCommands([]string{"echo hello-from-layer > /hello"}).
		Env(map[string]string{"GREETING": "hi"}).
		Cmd([]string{"cat", "/hello"})
	res, err := s.Build(ctx, img, builder.ExportTo("oci:"+out+":latest"))
	if err != nil {
		t.Fatal(err)
	}
	m := checkLayout(t, out)
	if m.config.Config.Cmd == nil || strings.Join(m.config.Config.Cmd, " ") != "cat /hello" {
		t.Fatalf("config Cmd %v", m.config.Config.Cmd)
	}
	if !contains(m.config.Config.Env, "GREETING=hi") {
		t.Fatalf("config Env %v", m.config.Config.Env)
	}
	// Config-only steps add history entries but no layers.
	if len(m.layers) != 2 {
		t.Fatalf("%d layers, want 2 (base + one run step)", len(m.layers))
	}
	// The run step's layer holds /hello and nothing the runtime created.
	files := m.layerFiles[1]
	if !contains(files, "hello") {
		t.Fatalf("run layer files %v lack hello", files)
	}
	for _, f := range files {
		if f != "hello" {
			t.Errorf("run layer holds %q, which the step did not create", f)
		}
	}
	// The image runs its Cmd: a second build step runs it.
	res2, err := s.Build(ctx, builder.FromID(res.ImageID).RunCommands([]string{"cat /hello > /out"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res2.ImageID, "out"); got != "hello-from-layer\n" {
		t.Fatalf("second build read %q", got)
	}
}

func TestConcurrentBuilds(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := busyboxTar(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	ids := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			img := builder.FromArchive(base).RunCommands([]string{fmt.Sprintf("echo %d > /who", i)})
			res, err := s.Build(ctx, img)
			errs[i] = err
			if err == nil {
				ids[i] = res.ImageID
			}
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
	}
	for i, id := range ids {
		if got := readFromImage(t, s, id, "who"); got != fmt.Sprintf("%d\n", i) {
			t.Fatalf("build %d: /who = %q", i, got)
		}
	}
}

// --- image inspection helpers ---

// readFromImage reads a file from an image's layers (top layer first).
func readFromImage(t *testing.T, s *builder.Session, imageID, name string) string {
	t.Helper()
	content, ok := findInImage(t, s, imageID, name)
	if !ok {
		t.Fatalf("%s not found in image %s", name, imageID)
	}
	return content
}

func hasFile(t *testing.T, s *builder.Session, imageID, name string) bool {
	t.Helper()
	_, ok := findInImage(t, s, imageID, name)
	return ok
}

func findInImage(t *testing.T, s *builder.Session, imageID, name string) (string, bool) {
	t.Helper()
	var content string
	found := false
	// Directories are named with a trailing slash in layer tars.
	name = strings.TrimSuffix(name, "/")
	eachEntry(t, s, imageID, func(n string, _ *tar.Header, r io.Reader) bool {
		if strings.TrimSuffix(n, "/") == name {
			b, _ := io.ReadAll(r)
			content, found = string(b), true
			return false
		}
		return true
	})
	return content, found
}

// eachEntry calls fn with every entry of every layer of the image, top layer
// first: its name without "./", its header and its content, until fn
// returns false.
func eachEntry(t *testing.T, s *builder.Session, imageID string, fn func(name string, h *tar.Header, r io.Reader) bool) {
	t.Helper()
	eachLayer(t, s, imageID, func(r io.Reader) bool {
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err != nil {
				return true
			}
			if !fn(strings.TrimPrefix(h.Name, "./"), h, tr) {
				return false
			}
		}
	})
}

// eachLayer calls fn with each layer's uncompressed tar, top layer first,
// until fn returns false.
func eachLayer(t *testing.T, s *builder.Session, imageID string, fn func(r io.Reader) bool) {
	t.Helper()
	st := s.Store()
	img, err := st.Image(imageID)
	if err != nil {
		t.Fatal(err)
	}
	for id := img.TopLayer; id != ""; {
		l, err := st.Layer(id)
		if err != nil {
			t.Fatal(err)
		}
		// Uncompressed: by default a layer pulled from a registry comes
		// back compressed as it was pulled.
		unc := archive.Uncompressed
		rc, err := st.Diff("", id, &storage.DiffOptions{Compression: &unc})
		if err != nil {
			t.Fatal(err)
		}
		more := fn(rc)
		// Drain before closing: closing storage's diff stream early races
		// inside its decompressor (seen with the race detector).
		_, _ = io.Copy(io.Discard, rc)
		rc.Close()
		if !more {
			return
		}
		id = l.Parent
	}
}

type layoutImage struct {
	config struct {
		Config struct {
			Cmd []string `json:"Cmd"`
			Env []string `json:"Env"`
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	layers     []string
	layerFiles [][]string
}

// checkLayout verifies every blob of an OCI layout against its digest and
// the diff IDs against the uncompressed layers, and returns the image.
func checkLayout(t *testing.T, dir string) layoutImage {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	ents, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(blobs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != e.Name() {
			t.Errorf("blob %s does not match its digest", e.Name())
		}
	}
	readJSON := func(p string, v any) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	readJSON(filepath.Join(dir, "index.json"), &idx)
	// One image; a tagged layout also lists its provenance's referrers
	// index, named sha256-<hex of the image's manifest> (an untagged one
	// keeps one manifest).
	if n := len(idx.Manifests); n < 1 || n > 2 {
		t.Fatalf("index has %d manifests", n)
	}
	if len(idx.Manifests) == 2 && idx.Manifests[1].Annotations["org.opencontainers.image.ref.name"] != "sha256-"+strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:") {
		t.Fatalf("index.json lists %+v: want the image and its referrers index", idx.Manifests)
	}
	blob := func(d string) string { return filepath.Join(blobs, strings.TrimPrefix(d, "sha256:")) }
	var man struct {
		Config struct{ Digest string } `json:"config"`
		Layers []struct {
			Digest    string `json:"digest"`
			MediaType string `json:"mediaType"`
		} `json:"layers"`
	}
	readJSON(blob(idx.Manifests[0].Digest), &man)
	var li layoutImage
	readJSON(blob(man.Config.Digest), &li.config)
	if len(li.config.RootFS.DiffIDs) != len(man.Layers) {
		t.Fatalf("%d diff IDs for %d layers", len(li.config.RootFS.DiffIDs), len(man.Layers))
	}
	for i, l := range man.Layers {
		li.layers = append(li.layers, l.Digest)
		f, err := os.Open(blob(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(l.MediaType, "gzip") {
			gz, err := newGzip(f)
			if err != nil {
				t.Fatal(err)
			}
			r = gz
		}
		h := sha256.New()
		tr := tar.NewReader(io.TeeReader(r, h))
		var names []string
		for {
			hd, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(hd.Name, "./"), "/"))
		}
		_, _ = io.Copy(io.Discard, r)
		f.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != li.config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diff ID %s, config says %s", i, got, li.config.RootFS.DiffIDs[i])
		}
		li.layerFiles = append(li.layerFiles, names)
	}
	return li
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestVFSDriver(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t, builder.WithStorageDriver("vfs"))
	if d := s.Store().GraphDriverName(); d != "vfs" {
		t.Fatalf("driver %s, want vfs", d)
	}
	img := builder.FromArchive(busyboxTar(t)).RunCommands([]string{"echo vfs > /v"})
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "v"); got != "vfs\n" {
		t.Fatalf("/v = %q", got)
	}
	res2, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res2); f != "CC" {
		t.Fatalf("rebuild on vfs: %s", f)
	}
}

func TestOpenWithoutReexecIsExplained(t *testing.T) {
	// Checked in-process through the marker InitReexec sets: unset it and
	// Open must refuse with ErrNoReexec.
	requireRootless(t)
	t.Setenv(runners.EnvReexecMarker, "")
	_, err := builder.Open(context.Background(), builder.WithStore(filepath.Join(t.TempDir(), "g"), filepath.Join(t.TempDir(), "r")))
	if !errors.Is(err, builder.ErrNoReexec) || !strings.Contains(err.Error(), "InitReexec") {
		t.Fatalf("got %v, want ErrNoReexec", err)
	}
}

func TestSecretsStayOut(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	const value = "s3cr3t-v4lue-for-test"
	sec := builder.SecretFromMap("deploy", map[string]string{"TOKEN": value})
	var out strings.Builder
	img := builder.FromArchive(busyboxTar(t)).
		RunCommands([]string{`test ${#TOKEN} -eq 21`, `echo "token is $TOKEN"`, "echo used > /used"}, builder.WithSecrets(sec))
	res, err := s.Build(ctx, img, builder.WithOutput(&lockedWriter{w: &out}))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if !strings.Contains(out.String(), "token is ***") || holdsSecret(out.String(), value) {
		t.Fatalf("step output not redacted:\n%s", out.String())
	}
	// A failing command that echoes the secret: the error is redacted too.
	_, err = s.Build(ctx, img.RunCommands([]string{`echo "leak $TOKEN"; exit 3`}, builder.WithSecrets(sec)))
	if err == nil || holdsSecret(err.Error(), value) || !strings.Contains(err.Error(), "leak ***") {
		t.Fatalf("failing step error: %v", err)
	}
	// Nothing in any layer, the config or the history.
	assertNotInImage(t, s, res.ImageID, value)
	p, err := s.Plan(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range p.Steps {
		enc, _ := layers.Encode("", ps.Spec)
		if holdsSecret(string(enc), value) {
			t.Errorf("%s: cache key input holds the secret", ps.Name())
		}
	}
}

// secretForms are the ways a secret's bytes could appear: as they are,
// base64 (standard and URL alphabets) and URL-encoded.
func secretForms(value string) []string {
	return []string{value, base64.StdEncoding.EncodeToString([]byte(value)),
		base64.RawURLEncoding.EncodeToString([]byte(value)), url.QueryEscape(value)}
}

// holdsSecret reports whether text holds value in any of its forms.
func holdsSecret(text, value string) bool {
	for _, f := range secretForms(value) {
		if strings.Contains(text, f) {
			return true
		}
	}
	return false
}

// assertNotInImage fails when any layer, the config, the manifest or the
// history of the image holds value, as it is, base64 or URL-encoded.
func assertNotInImage(t *testing.T, s *builder.Session, imageID, value string) {
	t.Helper()
	st := s.Store()
	imgRec, err := st.Image(imageID)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range imgRec.BigDataNames {
		b, err := st.ImageBigData(imageID, key)
		if err != nil {
			t.Fatal(err)
		}
		if holdsSecret(string(b), value) {
			t.Errorf("image data %q holds the secret", key)
		}
	}
	eachLayer(t, s, imageID, func(r io.Reader) bool {
		b, _ := io.ReadAll(r)
		if holdsSecret(string(b), value) {
			t.Error("a layer holds the secret")
		}
		return true
	})
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// String returns what was written so far, when w can say it (a
// *bytes.Buffer or *strings.Builder).
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.w.(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}

func TestCancelStopsTheStep(t *testing.T) {
	requireRootless(t)
	s := openSession(t)
	base := busyboxTar(t)
	if _, err := s.Build(context.Background(), builder.FromArchive(base)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(1500 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	_, err := s.Build(ctx, builder.FromArchive(base).RunCommands([]string{"sleep 120"}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Fatalf("cancellation took %s: the step was not stopped", d)
	}
	if c, _ := counts(t, s.Store()); c != 0 {
		t.Fatalf("%d containers left after cancellation", c)
	}
}

func TestConcurrentSameStepsRunOnce(t *testing.T) {
	requireRootless(t)
	s := openSession(t)
	base := busyboxTar(t)
	prefix := builder.FromArchive(base).
		RunCommands([]string{"echo shared-1 > /s1"}).
		RunCommands([]string{"echo shared-2 > /s2"})
	const n = 8
	var wg sync.WaitGroup
	results := make([]*builder.Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = s.Build(context.Background(), prefix.RunCommands([]string{fmt.Sprintf("echo %d > /own", i)}))
		}(i)
	}
	wg.Wait()
	ran := map[int]int{} // step index -> executions
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
		for _, st := range results[i].Steps {
			if !st.Cached {
				ran[st.Index]++
			}
		}
		if got := readFromImage(t, s, results[i].ImageID, "own"); got != fmt.Sprintf("%d\n", i) {
			t.Fatalf("build %d: /own = %q", i, got)
		}
	}
	// The base and the two shared steps ran once; each own step once per build.
	if ran[0] != 1 || ran[1] != 1 || ran[2] != 1 || ran[3] != n {
		t.Fatalf("executions per step %v, want base/1/2 once and step 3 %d times", ran, n)
	}
}

// TestExportUncompressed: LayerCompression("none") writes an OCI layout whose
// layers are plain tars (each blob is its own diff ID), and refuses a push.
func TestExportUncompressed(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	out := filepath.Join(t.TempDir(), "layout")
	img := builder.FromArchive(busyboxTar(t)).RunCommands([]string{"echo plain > /plain"})
	if _, err := s.Build(ctx, img, builder.ExportTo("oci:"+out), builder.LayerCompression("none")); err != nil {
		t.Fatal(err)
	}
	m := checkLayout(t, out)
	for i, l := range m.layers {
		if l != m.config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d is %s, its diff ID %s: not uncompressed", i, l, m.config.RootFS.DiffIDs[i])
		}
	}
	if !contains(m.layerFiles[1], "plain") {
		t.Errorf("layer files %v", m.layerFiles[1])
	}
	_, err := s.Build(ctx, img, builder.Push("127.0.0.1:1/x:y"), builder.LayerCompression("none"))
	if err == nil || !strings.Contains(err.Error(), "local outputs") {
		t.Errorf("a push with no compression: %v", err)
	}
}
