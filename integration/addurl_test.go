package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// TestDockerfileADDURL: ADD fetches a URL from a real HTTP server into
// the image, with and without --checksum; a rebuild of the same content
// is cached and only reads the unpinned URL once to key it (the pinned
// one costs no request); new content at the URL reruns that step and
// the files after it.
func TestDockerfileADDURL(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	var mu sync.Mutex
	body, requests := "tool v1\n", 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		requests++
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); n := requests; requests = 0; return n }
	sum := sha256.Sum256([]byte("tool v1\n"))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\n"+
		"ADD "+srv.URL+"/dl/tool.txt /opt/\n"+
		"ADD --checksum=sha256:"+hex.EncodeToString(sum[:])+" "+srv.URL+"/pinned/tool.txt /pinned.txt\n"+
		"RUN cat /opt/tool.txt /pinned.txt > /both\n")
	s := openSession(t)
	img := builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", builder.FromArchive(busyboxTar(t))))
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "both"); got != "tool v1\ntool v1\n" {
		t.Fatalf("/both = %q", got)
	}
	if n := count(); n > 2 {
		t.Errorf("the first build made %d requests; want at most 2 (one to key the unpinned URL, one download of the content both name)", n)
	}
	res, err = s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	// Steps: the base, the ENV PATH a base without PATH gets, the ADDs, the RUN.
	if f := stepFlags(res); f != "CCCCC" {
		t.Errorf("rebuild: %s, want every step cached", f)
	}
	if n := count(); n != 1 {
		t.Errorf("the rebuild made %d requests; want 1 (to key the unpinned URL)", n)
	}
	mu.Lock()
	body = "tool v2\n"
	mu.Unlock()
	res, err = s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if f := stepFlags(res); f != "CCRRR" {
		t.Errorf("after the URL changed: %s, want the ADD and the steps after it to run", f)
	}
	// The pinned ADD keeps the content its checksum names.
	if got := readFromImage(t, s, res.ImageID, "both"); got != "tool v2\ntool v1\n" {
		t.Fatalf("/both after the change = %q", got)
	}
}
