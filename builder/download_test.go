package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stratabuild/strata/runners"
)

// urlServer serves body at every path and counts the requests.
type urlServer struct {
	mu       sync.Mutex
	body     string
	requests int
}

func (u *urlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.requests++
	body := u.body
	u.mu.Unlock()
	if r.URL.Path == "/missing" {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(body))
}

func (u *urlServer) set(body string) { u.mu.Lock(); u.body = body; u.mu.Unlock() }
func (u *urlServer) count() int      { u.mu.Lock(); defer u.mu.Unlock(); return u.requests }

func sha256Of(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// planADD plans `ADD <url> /f` on an empty rootfs with the mount root
// root and returns the ADD step.
func planADD(t *testing.T, root, line string) (PlannedStep, error) {
	t.Helper()
	img := FromArchive(emptyRootfs(t)).DockerfileCommands([]string{line})
	p, err := plan(context.Background(), img, newPlanEnv(&runners.Resolver{}, nil, root))
	if err != nil {
		return PlannedStep{}, err
	}
	return p.Steps[len(p.Steps)-1], nil
}

// TestADDURLPlansWithoutWriting: planning ADD <url> reads the content
// once to key it (or not at all with --checksum) and writes nothing; the
// file is downloaded when the step runs, checked against that digest,
// and not downloaded again while it is there.
func TestADDURLPlansWithoutWriting(t *testing.T) {
	srv := &urlServer{body: "hello\n"}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	root := t.TempDir()
	u := ts.URL + "/dir/hello.txt"

	st, err := planADD(t, root, "ADD "+u+" /f")
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.count(); n != 1 {
		t.Errorf("planning made %d requests; want 1 (to key the content)", n)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("planning wrote %v into the mount root", ents)
	}
	if len(st.downloads) != 1 || string(st.downloads[0].digest) != sha256Of("hello\n") || st.downloads[0].name != "hello.txt" {
		t.Fatalf("planned downloads %+v; want hello.txt with the content's digest", st.downloads)
	}
	if in := st.Spec.Inputs; len(in) != 1 || in[0].Digest != sha256Of("hello\n") {
		t.Fatalf("key inputs %+v; want the content's digest", in)
	}
	cp := st.run.Copies[0]
	if cp.ContextDir != st.downloads[0].dir || len(cp.Sources) != 1 || cp.Sources[0] != "hello.txt" {
		t.Fatalf("the runner copies %s %v; want %s/hello.txt", cp.ContextDir, cp.Sources, st.downloads[0].dir)
	}

	// Build time: downloaded, checked, then left alone.
	if err := materialize(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(cp.ContextDir, "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Fatalf("downloaded %q (%v)", b, err)
	}
	if err := materialize(context.Background(), st); err != nil || srv.count() != 2 {
		t.Fatalf("a second run downloaded again (%d requests in all, %v); want the file reused", srv.count(), err)
	}

	// With --checksum: no request to plan.
	before := srv.count()
	if _, err := planADD(t, root, "ADD --checksum="+sha256Of("hello\n")+" "+u+" /f"); err != nil {
		t.Fatal(err)
	}
	if srv.count() != before {
		t.Errorf("planning ADD --checksum made %d requests; want none", srv.count()-before)
	}
}

// TestADDURLChanged: content that does not match the planned digest (it
// changed after planning, or --checksum is wrong) fails the step and
// leaves no file, so the copy cannot take the wrong content.
func TestADDURLChanged(t *testing.T) {
	srv := &urlServer{body: "v1"}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, tc := range []struct{ name, line string }{
		{"changed after planning", "ADD " + ts.URL + "/f /f"},
		{"wrong checksum", "ADD --checksum=" + sha256Of("other") + " " + ts.URL + "/f /f"},
	} {
		srv.set("v1")
		root := t.TempDir()
		st, err := planADD(t, root, tc.line)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		srv.set("v2")
		err = materialize(context.Background(), st)
		if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), ts.URL+"/f") {
			t.Errorf("%s: %v; want an error naming the URL and the mismatch", tc.name, err)
		}
		if ents, _ := os.ReadDir(st.downloads[0].dir); len(ents) != 0 {
			t.Errorf("%s: a failed download left %v", tc.name, ents)
		}
	}
}

// TestADDURLBadInput: a malformed --checksum or a URL the server does
// not have fails planning with an error naming the step and the URL.
func TestADDURLBadInput(t *testing.T) {
	ts := httptest.NewServer(&urlServer{body: "x"})
	defer ts.Close()
	for _, tc := range []struct{ line, want string }{
		{"ADD --checksum=md5:abc " + ts.URL + "/f /f", "ADD --checksum=md5:abc"},
		{"ADD --checksum=sha256:xyz " + ts.URL + "/f /f", "want sha256:<64 hex digits>"},
		{"ADD " + ts.URL + "/missing /f", "404"},
		{"ADD http://127.0.0.1:1/f /f", "cannot download it"},
	} {
		_, err := planADD(t, t.TempDir(), tc.line)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "step 1 (ADD)") {
			t.Errorf("%s: %v; want an error naming the step and containing %q", tc.line, err, tc.want)
		}
	}
}
