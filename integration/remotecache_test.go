package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// remoteRecipe is a 5-step chain on busybox; last is what the last step
// writes to /w/last.
func remoteRecipe(base, last string) builder.Image {
	return builder.FromArchive(base).
		RunCommands([]string{"mkdir -p /w && echo one > /w/1"}).
		RunCommands([]string{"seq 1 500 > /w/seq"}).
		Env(map[string]string{"STAGE": "two"}).
		RunCommands([]string{"sha256sum /w/seq > /w/sum"}).
		RunCommands([]string{"echo " + last + " > /w/last"})
}

// stepFlags gives one letter per step: C cached, M remote, R ran.
func stepFlags(res *builder.Result) string {
	s := ""
	for _, st := range res.Steps {
		switch {
		case st.Remote && st.Cached:
			s += "?"
		case st.Remote:
			s += "M"
		case st.Cached:
			s += "C"
		default:
			s += "R"
		}
	}
	return s
}

// layerDigests lists the uncompressed digests of an image's layers, top
// first.
func layerDigests(t *testing.T, s *builder.Session, imageID string) []string {
	t.Helper()
	img, err := s.Store().Image(imageID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for id := img.TopLayer; id != ""; {
		l, err := s.Store().Layer(id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.UncompressedDigest.String())
		id = l.Parent
	}
	return out
}

// registryGet GETs path from the registry (basic auth when user is set)
// and decodes the JSON answer into v.
func registryGet(t *testing.T, reg, path, user, password string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+reg+path, nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// topLayerBlob returns the path of the data file of the last layer of the
// entry tagged hex in reg's repository name.
func topLayerBlob(t *testing.T, reg, data, name, hex string) string {
	t.Helper()
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	registryGet(t, reg, "/v2/"+name+"/manifests/"+hex, "", "", &m)
	if len(m.Layers) == 0 {
		t.Fatalf("entry %s has no layers", hex)
	}
	d := strings.TrimPrefix(m.Layers[len(m.Layers)-1].Digest, "sha256:")
	return filepath.Join(data, "docker", "registry", "v2", "blobs", "sha256", d[:2], d, "data")
}

// notes returns the progress lines that start with prefix.
func notes(out, prefix string) []string {
	var n []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			n = append(n, l)
		}
	}
	return n
}

// TestRemoteCacheTwoStores: runner A pushes every step to a cache
// repository; runner B, with an empty store, takes every step from it,
// runs none and ends with A's layers. Then a changed last step runs alone.
func TestRemoteCacheTwoStores(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	repo := reg + "/cache/app"
	base := busyboxTar(t)
	img := remoteRecipe(base, "v1")

	a := openSession(t, builder.WithInsecureRegistries())
	var outA bytes.Buffer
	resA, err := a.Build(ctx, img, builder.CacheTo(repo), builder.WithOutput(&outA))
	if err != nil {
		t.Fatalf("runner A: %v", err)
	}
	if f := stepFlags(resA); f != "RRRRRR" {
		t.Fatalf("runner A: %s, want RRRRRR", f)
	}
	if n := notes(outA.String(), "cache-"); len(n) != 0 {
		t.Fatalf("runner A printed notes: %q", n)
	}
	// Every step has its tag in the registry.
	var tags struct {
		Tags []string `json:"tags"`
	}
	registryGet(t, reg, "/v2/cache/app/tags/list", "", "", &tags)
	for _, st := range resA.Steps {
		if !contains(tags.Tags, st.Key.Hex()) {
			t.Errorf("no tag for step %d (%s) in %v", st.Index, st.Key.Hex(), tags.Tags)
		}
	}

	b := openSession(t, builder.WithInsecureRegistries())
	var outB bytes.Buffer
	resB, err := b.Build(ctx, img, builder.CacheFrom(repo), builder.WithOutput(&outB))
	if err != nil {
		t.Fatalf("runner B: %v", err)
	}
	if f := stepFlags(resB); f != "MMMMMM" {
		t.Fatalf("runner B: %s, want every step from the remote cache\n%s", f, outB.String())
	}
	if !strings.Contains(outB.String(), ": REMOTE ") {
		t.Fatalf("runner B's progress shows no REMOTE step:\n%s", outB.String())
	}
	if c, _ := counts(t, b.Store()); c != 0 {
		t.Fatalf("runner B left %d containers", c)
	}
	la, lb := layerDigests(t, a, resA.ImageID), layerDigests(t, b, resB.ImageID)
	if strings.Join(la, ",") != strings.Join(lb, ",") {
		t.Fatalf("layers differ:\nA %v\nB %v", la, lb)
	}
	if resA.ImageID != resB.ImageID {
		t.Errorf("image IDs differ: A %s, B %s", resA.ImageID, resB.ImageID)
	}
	for name, want := range map[string]string{"w/last": "v1\n", "w/1": "one\n"} {
		if got := readFromImage(t, b, resB.ImageID, name); got != want {
			t.Fatalf("runner B: /%s = %q, want %q", name, got, want)
		}
	}
	if got, want := readFromImage(t, b, resB.ImageID, "w/sum"), readFromImage(t, a, resA.ImageID, "w/sum"); got != want {
		t.Fatalf("runner B: /w/sum = %q, A has %q", got, want)
	}

	// Again on B: everything is local now.
	res, err := b.Build(ctx, img, builder.CacheFrom(repo))
	if err != nil {
		t.Fatal(err)
	}
	if f := stepFlags(res); f != "CCCCCC" {
		t.Fatalf("runner B again: %s, want CCCCCC", f)
	}
	// A changed last step: only it runs (its key misses remotely, silently).
	outB.Reset()
	res, err = b.Build(ctx, remoteRecipe(base, "v2"), builder.CacheFrom(repo), builder.WithOutput(&outB))
	if err != nil {
		t.Fatal(err)
	}
	if f := stepFlags(res); f != "CCCCCR" {
		t.Fatalf("runner B after a change: %s, want CCCCCR", f)
	}
	if n := notes(outB.String(), "cache-"); len(n) != 0 {
		t.Fatalf("a miss printed notes: %q", n)
	}
	if got := readFromImage(t, b, res.ImageID, "w/last"); got != "v2\n" {
		t.Fatalf("/w/last = %q", got)
	}
}

// TestRemoteCacheConcurrentWriters: two runners with empty stores build
// the same image at the same time, both reading and writing one cache
// repository, so each key's tag is pushed twice at once. Both succeed
// without a cache note, and a third empty runner then takes every step
// from the registry (every blob checked against its digest) and gets the
// same files.
func TestRemoteCacheConcurrentWriters(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	repo := reg + "/cache/shared"
	img := remoteRecipe(busyboxTar(t), "v1")
	type run struct {
		res *builder.Result
		out bytes.Buffer
		err error
	}
	runs := make([]*run, 2)
	sessions := make([]*builder.Session, 2)
	var wg sync.WaitGroup
	for i := range runs {
		runs[i] = &run{}
		sessions[i] = openSession(t, builder.WithInsecureRegistries())
		wg.Add(1)
		go func(r *run, s *builder.Session) {
			defer wg.Done()
			r.res, r.err = s.Build(ctx, img, builder.CacheFrom(repo), builder.CacheTo(repo), builder.WithOutput(&r.out))
		}(runs[i], sessions[i])
	}
	wg.Wait()
	for i, r := range runs {
		if r.err != nil {
			t.Fatalf("runner %d: %v\n%s", i, r.err, r.out.String())
		}
		if n := notes(r.out.String(), "cache-"); len(n) != 0 {
			t.Errorf("runner %d printed cache notes: %q", i, n)
		}
		t.Logf("runner %d: %s", i, stepFlags(r.res))
	}
	c := openSession(t, builder.WithInsecureRegistries())
	var outC bytes.Buffer
	resC, err := c.Build(ctx, img, builder.CacheFrom(repo), builder.WithOutput(&outC))
	if err != nil {
		t.Fatalf("runner C: %v\n%s", err, outC.String())
	}
	if f := stepFlags(resC); f != "MMMMMM" {
		t.Fatalf("runner C: %s, want every step from the registry\n%s", f, outC.String())
	}
	for _, name := range []string{"w/1", "w/seq", "w/sum", "w/last"} {
		if got, want := readFromImage(t, c, resC.ImageID, name), readFromImage(t, sessions[0], runs[0].res.ImageID, name); got != want {
			t.Errorf("runner C: /%s = %q, runner 0 has %q", name, got, want)
		}
	}
}

// TestRemoteCacheAuth: credentials from CacheAuth work for both
// directions; wrong ones make the build run locally with one note per
// direction, and no password is printed.
func TestRemoteCacheAuth(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	const user, password, wrong = "cache-user", "cache-pass-5150", "wrong-pass-8086"
	reg := startRegistryAuth(t, user, password)
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "none.json"))
	repo := reg + "/private/cache"
	good := builder.SecretFromMap("registry", map[string]string{"REGISTRY_USERNAME": user, "REGISTRY_PASSWORD": password})
	bad := builder.SecretFromMap("registry", map[string]string{"REGISTRY_USERNAME": user, "REGISTRY_PASSWORD": wrong})
	base := busyboxTar(t)
	img := remoteRecipe(base, "auth")

	a := openSession(t, builder.WithInsecureRegistries())
	var out bytes.Buffer
	if _, err := a.Build(ctx, img, builder.CacheTo(repo), builder.CacheAuth(good), builder.WithOutput(&out)); err != nil {
		t.Fatalf("runner A: %v", err)
	}
	if n := notes(out.String(), "cache-"); len(n) != 0 {
		t.Fatalf("runner A printed notes: %q", n)
	}
	b := openSession(t, builder.WithInsecureRegistries())
	res, err := b.Build(ctx, img, builder.CacheFrom(repo), builder.CacheAuth(good), builder.WithOutput(&out))
	if err != nil {
		t.Fatalf("runner B: %v", err)
	}
	if f := stepFlags(res); f != "MMMMMM" {
		t.Fatalf("runner B: %s, want MMMMMM", f)
	}

	// Wrong password: everything runs locally, one note each way.
	c := openSession(t, builder.WithInsecureRegistries())
	out.Reset()
	res, err = c.Build(ctx, img, builder.CacheFrom(repo), builder.CacheTo(repo), builder.CacheAuth(bad), builder.WithOutput(&out))
	if err != nil {
		t.Fatalf("wrong password: the build failed: %v", err)
	}
	if f := stepFlags(res); f != "RRRRRR" {
		t.Fatalf("wrong password: %s, want RRRRRR", f)
	}
	from, to := notes(out.String(), "cache-from "+repo), notes(out.String(), "cache-to "+repo)
	if len(from) != 1 || len(to) != 1 {
		t.Fatalf("want one cache-from and one cache-to note, got %q and %q\n%s", from, to, out.String())
	}
	if !strings.Contains(from[0], "credentials refused") {
		t.Errorf("cache-from note: %s", from[0])
	}
	for _, p := range []string{password, wrong} {
		if holdsSecret(out.String(), p) {
			t.Fatalf("the output shows a password:\n%s", out.String())
		}
	}
	t.Logf("notes:\n%s\n%s", from[0], to[0])
}

// TestRemoteCacheUnreachable: a cache repository nobody listens on costs
// one note and nothing else.
func TestRemoteCacheUnreachable(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t, builder.WithInsecureRegistries())
	var out bytes.Buffer
	res, err := s.Build(ctx, remoteRecipe(busyboxTar(t), "x"), builder.CacheFrom("127.0.0.1:1/cache"),
		builder.WithOutput(&out))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if f := stepFlags(res); f != "RRRRRR" {
		t.Fatalf("%s, want RRRRRR", f)
	}
	n := notes(out.String(), "cache-from 127.0.0.1:1/cache")
	if len(n) != 1 || !strings.Contains(n[0], "unreachable") || !strings.HasSuffix(n[0], "running steps locally") {
		t.Fatalf("want one note saying unreachable, got %q\n%s", n, out.String())
	}
	t.Logf("note: %s", n[0])
}

// TestRemoteCacheCorruptBlob: a layer blob whose bytes no longer match its
// digest is never used: the step runs locally, with one note. A blob
// deleted from the registry is a plain miss.
func TestRemoteCacheCorruptBlob(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg, data := startRegistryData(t, "", "")
	base := busyboxTar(t)
	img := remoteRecipe(base, "c")
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		note   bool
	}{
		{"corrupted", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i := len(b) / 3; i < len(b)/3+64 && i < len(b); i++ {
				b[i] ^= 0xff
			}
			return os.WriteFile(p, b, 0o644)
		}, true},
		{"deleted", func(p string) error { return os.RemoveAll(filepath.Dir(p)) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := reg + "/cache/" + tc.name
			a := openSession(t, builder.WithInsecureRegistries())
			resA, err := a.Build(ctx, img, builder.CacheTo(repo))
			if err != nil {
				t.Fatalf("runner A: %v", err)
			}
			// Step 2 wrote /w/seq: damage its layer.
			if err := tc.damage(topLayerBlob(t, reg, data, "cache/"+tc.name, resA.Steps[2].Key.Hex())); err != nil {
				t.Fatal(err)
			}
			b := openSession(t, builder.WithInsecureRegistries())
			var out bytes.Buffer
			resB, err := b.Build(ctx, img, builder.CacheFrom(repo), builder.WithOutput(&out))
			if err != nil {
				t.Fatalf("runner B: %v", err)
			}
			// Steps 0 and 1 come from the registry; step 2 runs; later
			// entries hold the damaged blob too, so they run as well.
			if f := stepFlags(resB); f != "MMRRRR" {
				t.Fatalf("runner B: %s, want MMRRRR\n%s", f, out.String())
			}
			if got := readFromImage(t, b, resB.ImageID, "w/seq"); !strings.HasPrefix(got, "1\n2\n3\n") || !strings.HasSuffix(got, "\n500\n") {
				t.Fatalf("runner B: /w/seq is wrong (%d bytes)", len(got))
			}
			if got := readFromImage(t, b, resB.ImageID, "w/last"); got != "c\n" {
				t.Fatalf("runner B: /w/last = %q", got)
			}
			n := notes(out.String(), "cache-from "+repo)
			if tc.note && len(n) != 1 {
				t.Fatalf("want one note, got %q\n%s", n, out.String())
			}
			if !tc.note && len(n) != 0 {
				t.Fatalf("a deleted blob is a miss, but notes were printed: %q", n)
			}
			for _, l := range n {
				t.Logf("note: %s", l)
			}
			if c, _ := counts(t, b.Store()); c != 0 {
				t.Fatalf("runner B left %d containers", c)
			}
		})
	}
}
