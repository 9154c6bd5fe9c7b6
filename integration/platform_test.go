package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/rootfs"
)

// arm64Busybox is Debian's static arm64 busybox, which make setup unpacks.
const arm64Busybox = "/var/lib/strata-test-fixtures/arm64/bin/busybox"

// TestForeignPlatform: Platforms("linux/arm64") on an amd64 host runs the
// steps of an arm64 busybox through qemu-user-static (rootless): uname -m
// says aarch64, the config says arm64, TARGETARCH and BUILDARCH are
// BuildKit's, the rebuild is cached, and a step on scratch gets another
// key than the host's build of the same step.
func TestForeignPlatform(t *testing.T) {
	requireRootless(t)
	if _, err := os.Stat(arm64Busybox); err != nil {
		t.Skipf("no arm64 busybox (make setup unpacks Debian's busybox-static:arm64 into %s)", arm64Busybox)
	}
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil {
		t.Skip("qemu-aarch64 is not registered with binfmt_misc (make setup installs qemu-user-static)")
	}
	ctx := context.Background()
	s := openSession(t)
	tarPath := filepath.Join(t.TempDir(), "busybox-arm64.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := rootfs.WriteBusyboxFrom(f, arm64Busybox); err != nil {
		t.Fatal(err)
	}
	f.Close()
	arm := builder.Platforms("linux/arm64")
	img := builder.FromArchive(tarPath).RunCommands([]string{"uname -m > /m"})
	res, err := s.Build(ctx, img, arm)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "m"); got != "aarch64\n" {
		t.Errorf("uname -m in the step: %q", got)
	}
	if c := imageFull(t, s, res.ImageID); c.Architecture != "arm64" || c.OS != "linux" {
		t.Errorf("config platform %s/%s", c.OS, c.Architecture)
	}
	res2, err := s.Build(ctx, img, arm)
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res2); f != "CC" {
		t.Errorf("rebuild: %s, want CC", f)
	}

	// A Dockerfile: the automatic platform arguments.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM base\nARG TARGETARCH\nARG BUILDARCH\nARG TARGETPLATFORM\nRUN echo $TARGETPLATFORM $TARGETARCH $BUILDARCH $(uname -m) > /args\n")
	dres, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("base", builder.FromArchive(tarPath))), arm)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, dres.ImageID, "args"); got != "linux/arm64 arm64 amd64 aarch64\n" {
		t.Errorf("/args = %q", got)
	}

	// The same step on scratch, for the host and for arm64: two keys.
	writeFile(t, filepath.Join(dir, "app", "a.txt"), "a\n")
	plain := builder.Scratch().AddLocalDir(filepath.Join(dir, "app"), "/app", builder.Copy())
	host, err := s.Build(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := s.Build(ctx, plain, arm)
	if err != nil {
		t.Fatal(err)
	}
	if host.Steps[1].Key == foreign.Steps[1].Key {
		t.Error("the host's and arm64's step on scratch have one key")
	}
	if c := imageFull(t, s, foreign.ImageID); c.Architecture != "arm64" {
		t.Errorf("arm64 scratch image says %s", c.Architecture)
	}
}

// imageFull reads a stored image's whole config.
func imageFull(t *testing.T, s *builder.Session, id string) v1.Image {
	t.Helper()
	raw, err := s.Store().ImageBigData(id, "sha256:"+id)
	if err != nil {
		t.Fatal(err)
	}
	var img v1.Image
	if err := json.Unmarshal(raw, &img); err != nil {
		t.Fatal(err)
	}
	return img
}
