package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stratabuild/strata/builder"
)

// TestHistorySaysWhatEachStepDid: the history of a Dockerfile image, read
// back by skopeo from the exported layout, has one entry per instruction
// that says what it did (as `docker history` and `podman history` show
// it), empty_layer exactly where no layer was added, and names no cache
// image, secret or host path. A Go chain's steps read the same way.
func TestHistorySaysWhatEachStepDid(t *testing.T) {
	requireRootless(t)
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("the skopeo command is needed (make setup installs it)")
	}
	ctx := context.Background()
	s := openSession(t)
	const secret = "hist-s3cret-value"
	sec := builder.SecretFromMap("tok", map[string]string{"tok": secret})
	bb := builder.FromArchive(busyboxTar(t))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "src", "main.txt"), "main\n")
	writeFile(t, filepath.Join(dir, "Dockerfile"), `FROM busybox
ARG VERSION=1.0
ENV APP=/app
WORKDIR /app
COPY src/ /app/src/
RUN echo $VERSION > /app/version
RUN --mount=type=secret,id=tok test -s /run/secrets/tok
EXPOSE 8080
CMD ["cat", "/app/version"]
`)
	img := builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb), builder.WithSecrets(sec))
	out := filepath.Join(t.TempDir(), "layout")
	if _, err := s.Build(ctx, img, builder.ExportTo("oci:"+out+":latest")); err != nil {
		t.Fatal(err)
	}
	raw, err := exec.Command(skopeo, "inspect", "--config", "oci:"+out+":latest").Output()
	if err != nil {
		t.Fatalf("skopeo inspect --config: %v", err)
	}
	var cfg v1.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	base := imageHistory(t, s, bb)
	if len(cfg.History) < len(base) {
		t.Fatalf("%d history entries, fewer than the base's %d", len(cfg.History), len(base))
	}
	want := []struct {
		createdBy string // a regular expression
		empty     bool
	}{
		// The base (a root filesystem) has no PATH: the stage gets the
		// default one, as in Docker.
		{`ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, true},
		{`ENV APP=/app`, true},
		{`WORKDIR /app`, false},
		{`COPY dir:[0-9a-f]{64} in /app/src/`, false},
		{`RUN \|1 VERSION=1\.0 /bin/sh -c echo \$VERSION > /app/version`, false},
		{`RUN \|1 VERSION=1\.0 /bin/sh -c test -s /run/secrets/tok`, false},
		{`EXPOSE 8080/tcp`, true},
		{`CMD \["cat","/app/version"\]`, true},
	}
	got := cfg.History[len(base):]
	if len(got) != len(want) {
		t.Fatalf("%d history entries after the base's, want %d:\n%s", len(got), len(want), historyText(got))
	}
	nonEmpty := 0
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(cfg.RootFS.DiffIDs) {
		t.Errorf("%d history entries with a layer, %d layers", nonEmpty, len(cfg.RootFS.DiffIDs))
	}
	for i, w := range want {
		h := got[i]
		if !regexp.MustCompile("^" + w.createdBy + "$").MatchString(h.CreatedBy) {
			t.Errorf("entry %d: created_by %q, want %s", i, h.CreatedBy, w.createdBy)
		}
		if h.EmptyLayer != w.empty {
			t.Errorf("entry %d (%s): empty_layer %v, want %v", i, h.CreatedBy, h.EmptyLayer, w.empty)
		}
	}
	for _, bad := range []string{"strata-cache", secret, dir} {
		if strings.Contains(string(raw), bad) {
			t.Errorf("the config names %q:\n%s", bad, historyText(cfg.History))
		}
	}

	// A Go chain: its steps' Dockerfile equivalents, or strata's method.
	res, err := s.Build(ctx, bb.Env(map[string]string{"B": "2", "A": "1"}).
		RunCommands([]string{"echo a > /a", "echo b > /b"}).
		AddLocalDir(filepath.Join(dir, "src"), "/srv", builder.Copy()).
		Workdir("/srv/app/data").
		Cmd([]string{"sh"}))
	if err != nil {
		t.Fatal(err)
	}
	gotGo := imageHistory(t, s, builder.FromID(res.ImageID))[len(base):]
	wantGo := []string{`ENV A=1 B=2`, `RUN /bin/sh -c echo a > /a && echo b > /b`, `COPY dir:[0-9a-f]{64} in /srv`, `WORKDIR /srv/app/data`, `CMD \["sh"\]`}
	if len(gotGo) != len(wantGo) {
		t.Fatalf("Go chain: %d history entries after the base's, want %d:\n%s", len(gotGo), len(wantGo), historyText(gotGo))
	}
	// Workdir creates its directory, as WORKDIR does.
	if !hasFile(t, s, res.ImageID, "srv/app/data") {
		t.Error("Workdir did not create /srv/app/data")
	}
	for i, w := range wantGo {
		if !regexp.MustCompile("^" + w + "$").MatchString(gotGo[i].CreatedBy) {
			t.Errorf("Go chain entry %d: created_by %q, want %s", i, gotGo[i].CreatedBy, w)
		}
		if gotGo[i].Comment != "" {
			t.Errorf("Go chain entry %d: comment %q", i, gotGo[i].Comment)
		}
	}
}

// imageHistory builds img (cached) and returns its image's history.
func imageHistory(t *testing.T, s *builder.Session, img builder.Image) []v1.History {
	t.Helper()
	res, err := s.Build(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.Store().ImageBigData(res.ImageID, "sha256:"+res.ImageID)
	if err != nil {
		t.Fatalf("reading the config of %s: %v", res.ImageID, err)
	}
	var cfg v1.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.History
}

func historyText(hs []v1.History) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h.CreatedBy)
		if h.EmptyLayer {
			b.WriteString(" (empty)")
		}
		if h.Comment != "" {
			b.WriteString(" # " + h.Comment)
		}
		b.WriteString("\n")
	}
	return b.String()
}
