package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/layers"
)

// startRegistry starts Debian's docker-registry (the distribution registry)
// on a free 127.0.0.1 port with its own storage, and stops it at the end of
// the test. It returns "127.0.0.1:PORT".
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry not installed (make setup installs Debian's docker-registry)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting registry: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry at %s did not start: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return addr
}

func openInsecureSession(t *testing.T) *builder.Session {
	t.Helper()
	root := t.TempDir()
	s, err := builder.Open(context.Background(), builder.WithInsecureRegistries(),
		builder.WithStore(filepath.Join(root, "graph"), filepath.Join(root, "run")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = exec.Command("rm", "-rf", root).Run()
	})
	return s
}

func TestFromRegistryPinsDigest(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	base := busyboxTar(t)

	// A publisher pushes a fixture image to the registry.
	pub := openInsecureSession(t)
	v1, err := pub.Build(ctx, builder.FromArchive(base).RunCommands([]string{"echo v1 > /version"}),
		builder.ExportTo("docker://"+reg+"/fixture/base:latest"))
	if err != nil {
		t.Fatalf("pushing fixture: %v", err)
	}
	_ = v1

	// A user builds from it, through the same code path as any registry.
	s := openInsecureSession(t)
	img := builder.FromRegistry(reg + "/fixture/base:latest").RunCommands([]string{"cat /version > /seen"})
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build from registry: %v", err)
	}
	if got := readFromImage(t, s, res.ImageID, "seen"); got != "v1\n" {
		t.Fatalf("/seen = %q", got)
	}
	p1, err := s.Plan(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p1.Steps[0].Description, "@sha256:") {
		t.Fatalf("base not pinned to a digest: %q", p1.Steps[0].Description)
	}
	res2, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res2); f != "CC" {
		t.Fatalf("rebuild from an unchanged tag: %s, want CC", f)
	}

	// The tag moves: the base key changes and every step runs again.
	if _, err := pub.Build(ctx, builder.FromArchive(base).RunCommands([]string{"echo v2 > /version"}),
		builder.ExportTo("docker://"+reg+"/fixture/base:latest")); err != nil {
		t.Fatal(err)
	}
	p2, err := s.Plan(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Steps[0].Key == p1.Steps[0].Key {
		t.Fatal("base key unchanged after the tag moved")
	}
	res3, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res3); f != "RR" {
		t.Fatalf("after the tag moved: %s, want RR", f)
	}
	if got := readFromImage(t, s, res3.ImageID, "seen"); got != "v2\n" {
		t.Fatalf("/seen = %q after the tag moved", got)
	}
}

func TestFromOCILayoutAndArchives(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := busyboxTar(t)
	dir := t.TempDir()
	src := builder.FromArchive(base).RunCommands([]string{"echo layered > /l"})
	layout := filepath.Join(dir, "layout")
	ociArchive := filepath.Join(dir, "img.oci.tar")
	dockerArchive := filepath.Join(dir, "img.docker.tar")
	if _, err := s.Build(ctx, src, builder.ExportTo("oci:"+layout+":v1"),
		builder.ExportTo("oci-archive:"+ociArchive), builder.ExportTo("docker-archive:"+dockerArchive)); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]builder.Image{
		"oci layout":     builder.FromOCILayout(layout),
		"oci layout tag": builder.FromOCILayout(layout + ":v1"),
		"oci-archive":    builder.FromArchive(ociArchive),
		"docker-archive": builder.FromArchive(dockerArchive),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := s.Build(ctx, b.RunCommands([]string{"cat /l > /copy"}))
			if err != nil {
				t.Fatal(err)
			}
			if got := readFromImage(t, s, res.ImageID, "copy"); got != "layered\n" {
				t.Fatalf("/copy = %q", got)
			}
		})
	}
}

func TestStoreCacheConformance(t *testing.T) {
	requireRootless(t)
	s := openSession(t)
	base := busyboxTar(t)
	ids := map[int]string{}
	imageID := func(t *testing.T, i int) string {
		if id, ok := ids[i]; ok {
			return id
		}
		res, err := s.Build(context.Background(), builder.FromArchive(base).Env(map[string]string{"N": fmt.Sprint(i)}))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.ImageID
		return res.ImageID
	}
	cachetestRun(t, func(t *testing.T) layers.Cache { return layers.NewStoreCache(s.Store()) }, imageID)
}
