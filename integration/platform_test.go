package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/storage"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/rootfs"
)

// arm64Busybox is Debian's static arm64 busybox, which make setup unpacks.
const arm64Busybox = "/var/lib/strata-test-fixtures/arm64/bin/busybox"

// busyboxTarFrom writes a busybox root filesystem archive of the static
// busybox binary bin (of any architecture) and returns its path.
func busyboxTarFrom(t *testing.T, bin string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busybox-"+filepath.Base(filepath.Dir(filepath.Dir(bin)))+".tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := rootfs.WriteBusyboxFrom(f, bin); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// requireArm64 skips the test, saying why, unless Debian's arm64 busybox
// and the qemu-aarch64 emulator are there (make setup provides both).
func requireArm64(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(arm64Busybox); err != nil {
		t.Skipf("no arm64 busybox (make setup unpacks Debian's busybox-static:arm64 into %s)", arm64Busybox)
	}
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil {
		t.Skip("qemu-aarch64 is not registered with binfmt_misc (make setup installs qemu-user-static)")
	}
}

// TestForeignPlatform: Platforms("linux/arm64") on an amd64 host runs the
// steps of an arm64 busybox through qemu-user-static (rootless): uname -m
// says aarch64, the config says arm64, TARGETARCH and BUILDARCH are
// BuildKit's, the rebuild is cached, and a step on scratch gets another
// key than the host's build of the same step.
func TestForeignPlatform(t *testing.T) {
	requireRootless(t)
	requireArm64(t)
	ctx := context.Background()
	s := openSession(t)
	tarPath := busyboxTarFrom(t, arm64Busybox)
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

	// The platform told to the base instead of the build: the same.
	told, err := s.Build(ctx, builder.FromArchive(tarPath, builder.Platform("linux/arm64")).RunCommands([]string{"uname -m > /m"}))
	if err != nil {
		t.Fatal(err)
	}
	if told.ImageID != res.ImageID {
		t.Errorf("FromArchive(..., Platform(linux/arm64)) built %s, Platforms(linux/arm64) %s", told.ImageID, res.ImageID)
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

// TestMultiPlatformIndex: one definition built for linux/amd64 and
// linux/arm64 from a multi-platform registry base (an index buildah's
// manifest commands push): each platform's RUN runs on its architecture,
// the oci: layout and the registry get an index of both with their
// platform fields (read back by skopeo) and a provenance per platform
// manifest, WithTag names the index in the store, and the rebuild takes every step of both from the cache.
func TestMultiPlatformIndex(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	base := multiPlatformBusybox(t, reg)
	s := openSession(t, builder.WithInsecureRegistries())
	img := builder.FromRegistry(base).RunCommands([]string{"uname -m > /m"})
	layout := filepath.Join(t.TempDir(), "layout")
	opts := []builder.BuildOption{builder.Platforms("linux/amd64", "linux/arm64"), builder.WithTag("multi:1"),
		builder.ExportTo("oci:" + layout + ":multi"), builder.Push(reg + "/out/multi:1")}
	res, err := s.Build(ctx, img, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Platforms) != 2 {
		t.Fatalf("%d platform results", len(res.Platforms))
	}
	for i, want := range map[int]string{0: "x86_64\n", 1: "aarch64\n"} {
		p := res.Platforms[i]
		if got := readFromImage(t, s, p.ImageID, "m"); got != want {
			t.Errorf("%s: uname -m = %q, want %q", p.Platform, got, want)
		}
	}
	type index struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest   string
			Platform struct{ OS, Architecture string }
		}
	}
	check := func(where string, raw []byte) {
		t.Helper()
		var idx index
		if err := json.Unmarshal(raw, &idx); err != nil {
			t.Fatalf("%s: %v\n%s", where, err, raw)
		}
		var plats []string
		for _, m := range idx.Manifests {
			plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
		}
		if idx.MediaType != v1.MediaTypeImageIndex || strings.Join(plats, ",") != "linux/amd64,linux/arm64" {
			t.Errorf("%s: %s with %q", where, idx.MediaType, plats)
		}
	}
	out, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+layout+":multi").Output()
	if err != nil {
		t.Fatalf("skopeo inspect oci: %v", err)
	}
	check("the oci: layout", out)
	// One provenance per platform manifest, found by that manifest's
	// digest (the referrers tag schema), not unknown/unknown entries.
	var idx index
	if err := json.Unmarshal(out, &idx); err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Exports {
		if len(e.Attestations) != 2 || e.Attestations[0].Platform == e.Attestations[1].Platform {
			t.Errorf("%s: attestations %+v, want one per platform", e.Dest, e.Attestations)
		}
	}
	for _, m := range idx.Manifests {
		raw, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+layout+":sha256-"+strings.TrimPrefix(m.Digest, "sha256:")).Output()
		if err != nil || !strings.Contains(string(raw), "application/vnd.in-toto+json") {
			t.Errorf("the %s/%s manifest has no provenance in the layout (%v): %s", m.Platform.OS, m.Platform.Architecture, err, raw)
		}
	}
	out, err = exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+reg+"/out/multi:1").Output()
	if err != nil {
		t.Fatalf("skopeo inspect docker: %v", err)
	}
	check("the registry", out)
	raw, err := s.Store().ImageBigData("localhost/multi:1", storage.ImageDigestBigDataKey)
	if err != nil {
		t.Fatalf("WithTag: %v", err)
	}
	check("the store's localhost/multi:1", raw)

	// A real client takes one platform out of the index.
	one := filepath.Join(t.TempDir(), "one")
	if out, err := exec.Command("skopeo", "copy", "--override-arch", "arm64", "oci:"+layout+":multi", "oci:"+one+":arm").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy --override-arch arm64: %v\n%s", err, out)
	}
	out, err = exec.Command("skopeo", "inspect", "--config", "oci:"+one+":arm").Output()
	if err != nil {
		t.Fatal(err)
	}
	var oneCfg v1.Image
	if err := json.Unmarshal(out, &oneCfg); err != nil || oneCfg.Architecture != "arm64" {
		t.Errorf("skopeo's arm64 pick says %q (%v)", oneCfg.Architecture, err)
	}
	// The same pick from the registry, unpacked by umoci (rootless).
	// (Debian's umoci 0.4.7 cannot choose a platform from an index itself:
	// it stops at a tag with several images as "ambiguous".)
	pulled := filepath.Join(t.TempDir(), "pulled")
	if out, err := exec.Command("skopeo", "copy", "--src-tls-verify=false", "--override-arch", "arm64", "docker://"+reg+"/out/multi:1", "oci:"+pulled+":arm").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy --override-arch arm64 from the registry: %v\n%s", err, out)
	}
	t.Run("umoci unpack", func(t *testing.T) {
		if _, err := exec.LookPath("umoci"); err != nil {
			t.Skip("umoci is not installed (make setup installs it)")
		}
		bundle := filepath.Join(t.TempDir(), "bundle")
		if out, err := exec.Command("umoci", "unpack", "--rootless", "--image", pulled+":arm", bundle).CombinedOutput(); err != nil {
			t.Fatalf("umoci unpack: %v\n%s", err, out)
		}
		if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "m")); err != nil || string(got) != "aarch64\n" {
			t.Errorf("umoci's unpack of the arm64 image: /m = %q (%v)", got, err)
		}
	})
	// A platform the base does not have: named, with the ones it has.
	_, err = s.Build(ctx, img, builder.Platforms("linux/s390x"))
	if err == nil || !strings.Contains(err.Error(), "no linux/s390x image (it has linux/amd64, linux/arm64)") {
		t.Errorf("a platform the base lacks: %v", err)
	}

	res2, err := s.Build(ctx, img, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res2.Platforms {
		for _, st := range p.Steps {
			if !st.Cached {
				t.Errorf("rebuild, %s: step %d ran", p.Platform, st.Index)
			}
		}
	}
}

// multiPlatformBusybox pushes busybox for linux/amd64 and linux/arm64 to
// the registry reg, and an index of both made by buildah's manifest
// commands, and returns the index's reference.
func multiPlatformBusybox(t *testing.T, reg string) string {
	t.Helper()
	requireArm64(t)
	for _, tool := range []string{"buildah", "skopeo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is needed (make setup installs it)", tool)
		}
	}
	ctx := context.Background()
	armTar := busyboxTarFrom(t, arm64Busybox)
	pub := openSession(t, builder.WithInsecureRegistries())
	fixture := map[string]string{"FIXTURE": "busybox"}
	if _, err := pub.Build(ctx, builder.FromArchive(busyboxTar(t)).Env(fixture), builder.Push(reg+"/fixture/bb:amd64")); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Build(ctx, builder.FromArchive(armTar).Env(fixture), builder.Platforms("linux/arm64"), builder.Push(reg+"/fixture/bb:arm64")); err != nil {
		t.Fatal(err)
	}
	bdir := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", bdir).Run() })
	bah := func(args ...string) {
		t.Helper()
		out, err := exec.Command("buildah", append([]string{"--root", filepath.Join(bdir, "root"), "--runroot", filepath.Join(bdir, "run"), "--storage-driver", "vfs"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	bah("manifest", "create", "bb-list")
	bah("manifest", "add", "--tls-verify=false", "bb-list", "docker://"+reg+"/fixture/bb:amd64")
	bah("manifest", "add", "--tls-verify=false", "bb-list", "docker://"+reg+"/fixture/bb:arm64")
	bah("manifest", "push", "--all", "--tls-verify=false", "bb-list", "docker://"+reg+"/fixture/bb:multi")

	return reg + "/fixture/bb:multi"
}

// TestMultiPlatformSharedCache: two runners with empty stores, one
// building only linux/amd64 and one only linux/arm64, push their steps to
// one registry cache repository; a third, building both, takes every step
// of both from it (buildx#1044, where the last platform's cache wins).
func TestMultiPlatformSharedCache(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	base := multiPlatformBusybox(t, reg)
	img := builder.FromRegistry(base).RunCommands([]string{"uname -m > /m", "echo built > /b"})
	cache := reg + "/cache/multi"
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		r := openSession(t, builder.WithInsecureRegistries())
		if _, err := r.Build(ctx, img, builder.Platforms(p), builder.CacheTo(cache)); err != nil {
			t.Fatalf("runner for %s: %v", p, err)
		}
	}
	third := openSession(t, builder.WithInsecureRegistries())
	res, err := third.Build(ctx, img, builder.Platforms("linux/amd64", "linux/arm64"), builder.CacheFrom(cache))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Platforms {
		for _, st := range p.Steps[1:] {
			if !st.Remote {
				t.Errorf("%s step %d: not taken from the shared cache (cached %v)", p.Platform, st.Index, st.Cached)
			}
		}
	}
	want := map[string]string{"linux/amd64": "x86_64\n", "linux/arm64": "aarch64\n"}
	for _, p := range res.Platforms {
		if got := readFromImage(t, third, p.ImageID, "m"); got != want[p.Platform] {
			t.Errorf("%s from the cache: uname -m = %q", p.Platform, got)
		}
	}
}

// TestCrossBuildStage: the cross-build pattern, built for linux/arm64 on
// this amd64 host: the FROM --platform=$BUILDPLATFORM stage runs natively
// and sees the target's TARGETARCH; the final stage runs emulated.
func TestCrossBuildStage(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	base := multiPlatformBusybox(t, reg)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), `ARG BASE
FROM --platform=$BUILDPLATFORM $BASE AS build
ARG TARGETARCH
RUN echo "built on $(uname -m) for $TARGETARCH" > /out
# On a stage, --platform is checked and the stage keeps its base stage's
# platform (BuildKit's rule).
FROM --platform=linux/arm64 build AS again
RUN uname -m > /again
FROM $BASE
COPY --from=build /out /out
COPY --from=again /again /again
RUN uname -m > /m
`)
	s := openSession(t, builder.WithInsecureRegistries())
	res, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildArgs(map[string]string{"BASE": base})),
		builder.Platforms("linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "out"); got != "built on x86_64 for arm64\n" {
		t.Errorf("/out = %q", got)
	}
	if got := readFromImage(t, s, res.ImageID, "m"); got != "aarch64\n" {
		t.Errorf("/m = %q", got)
	}
	if got := readFromImage(t, s, res.ImageID, "again"); got != "x86_64\n" {
		t.Errorf("/again = %q, want x86_64 (the platform of the stage it starts from)", got)
	}
	if c := imageFull(t, s, res.ImageID); c.Architecture != "arm64" {
		t.Errorf("the image says %s", c.Architecture)
	}
}

// TestDebianMirrorArm64: a DebianMirror base built for linux/arm64 on this
// amd64 host (mmdebstrap --arch=arm64, its package scripts run through
// qemu-user-static, rootless): dpkg and uname in a step say arm64 and
// aarch64, the base's own config says arm64, Arch("arm64") is the same
// base as Platforms("linux/arm64"), and the rebuild is cached.
func TestDebianMirrorArm64(t *testing.T) {
	requireRootless(t)
	requireMmdebstrap(t)
	requireArm64(t)
	if _, err := exec.LookPath("arch-test"); err != nil {
		t.Skip("arch-test not installed (make setup installs it; mmdebstrap needs it for another architecture)")
	}
	ctx := context.Background()
	s := openSession(t)
	opts := []builder.BaseOption{builder.Mirror(debianMirror()),
		builder.AptOptions(`Acquire::Check-Valid-Until "false"`, `Acquire::Check-Date "false"`)}
	base, err := s.Build(ctx, builder.DebianMirror("bookworm", append(opts, builder.Arch("arm64"))...))
	if err != nil {
		t.Fatal(err)
	}
	if c := imageFull(t, s, base.ImageID); c.Architecture != "arm64" || c.OS != "linux" {
		t.Errorf("the base's config is for %s/%s, want linux/arm64", c.OS, c.Architecture)
	}
	img := builder.DebianMirror("bookworm", opts...).RunCommands([]string{"dpkg --print-architecture > /arch && uname -m >> /arch"})
	res, err := s.Build(ctx, img, builder.Platforms("linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res); f != "CR" {
		t.Errorf("Platforms(linux/arm64) after Arch(arm64): %s, want the base cached (CR)", f)
	}
	if got := readFromImage(t, s, res.ImageID, "arch"); got != "arm64\naarch64\n" {
		t.Errorf("/arch = %q, want arm64 and aarch64", got)
	}
	if c := imageFull(t, s, res.ImageID); c.Architecture != "arm64" {
		t.Errorf("config architecture %q", c.Architecture)
	}
	res2, err := s.Build(ctx, img, builder.Platforms("linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res2); f != "CC" {
		t.Errorf("rebuild: %s, want CC", f)
	}
}

// TestNoEmulator: a RUN step for linux/s390x where binfmt_misc has no
// emulator for it (not mounted, none registered, registered but disabled)
// fails before any container starts, with the fix in the error; no
// container, tag or cache entry for the step is left, so the same build
// with the host's real registration runs the step. The failpoint-built CLI
// reads a stand-in for /proc/sys/fs/binfmt_misc (the test user cannot
// change the kernel's registrations).
func TestNoEmulator(t *testing.T) {
	requireRootless(t)
	if b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-s390x"); err != nil || !strings.HasPrefix(string(b), "enabled") {
		t.Skip("qemu-s390x is not registered and enabled here (make setup installs qemu-user-static)")
	}
	cli := tool(t, "STRATA_CLI_FAILPOINTS", "./cmd/strata", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs seccomp strata_failpoints")
	ctxDir := t.TempDir()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no /bin/busybox (make setup installs busybox-static)")
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"touch\", \"/ran\"]\n")
	root := storeRoot(t)
	build := func(binfmt string, tag string) (cliResult, []string) {
		t.Helper()
		meta := filepath.Join(t.TempDir(), "meta.json")
		env := []string{"STRATA_FAILPOINT_BINFMT_DIR"}
		if binfmt != "" {
			env = []string{"STRATA_FAILPOINT_BINFMT_DIR=" + binfmt}
		}
		r := runCLIEnv(t, cli, env, "build", "-f", filepath.Join(ctxDir, "Dockerfile"), "--platform", "linux/s390x", "--progress=plain",
			"--store", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run"), "-t", tag, "--metadata-file", meta, ctxDir)
		var m struct {
			Steps []struct{ Cache string } `json:"strata.steps"`
		}
		var caches []string
		if b, err := os.ReadFile(meta); err == nil {
			_ = json.Unmarshal(b, &m)
			for _, s := range m.Steps {
				caches = append(caches, s.Cache)
			}
		}
		return r, caches
	}
	fake := func(files map[string]string) string {
		d := t.TempDir()
		for name, content := range files {
			writeFile(t, filepath.Join(d, name), content)
		}
		return d
	}
	for _, tc := range []struct {
		name  string
		dir   string
		wants []string
	}{
		{"not mounted", fake(nil), []string{"binfmt_misc is not mounted", "mount -t binfmt_misc"}},
		{"none registered", fake(map[string]string{"status": "enabled\n"}), []string{"none is registered for s390x", "apt-get install qemu-user-static binfmt-support"}},
		{"disabled", fake(map[string]string{"status": "enabled\n", "qemu-s390x": "disabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\n"}),
			[]string{"qemu-s390x is registered but disabled", "update-binfmts --enable qemu-s390x"}},
	} {
		r, _ := build(tc.dir, "nope:"+strings.ReplaceAll(tc.name, " ", "-"))
		if r.code == 0 {
			t.Fatalf("%s: the build succeeded:\n%s", tc.name, r.stderr)
		}
		t.Logf("%s: %s", tc.name, lastLine(r.stderr))
		for _, want := range append(tc.wants, "linux/s390x", "RUN") {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: the error does not say %q:\n%s", tc.name, want, r.stderr)
			}
		}
	}
	s := openStoreAt(t, root)
	cs, err := s.Store().Containers()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 {
		t.Errorf("%d working containers left", len(cs))
	}
	imgs, err := s.Store().Images()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		for _, n := range img.Names {
			if strings.Contains(n, "nope") {
				t.Errorf("a failed build tagged %s", n)
			}
		}
	}
	s.Close()
	// The host's real registration: the COPY is cached, the RUN runs
	// (nothing was recorded for it).
	r, caches := build("", "yes:1")
	if r.code != 0 {
		t.Fatalf("the build with the host's emulator: exit %d\n%s", r.code, r.stderr)
	}
	// Scratch, Docker's default PATH (an ENV step), the COPY, the RUN.
	if got := strings.Join(caches, ","); got != "hit,hit,hit,miss" {
		t.Errorf("steps after the refusals: %s, want hit,hit,hit,miss (all but the RUN cached)", got)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// i386Busybox is Debian's static i386 busybox, which make setup unpacks.
const i386Busybox = "/var/lib/strata-test-fixtures/i386/bin/busybox"

// TestStepsUnderSeccomp: a RUN step runs under a seccomp filter (Seccomp:
// 2 in its /proc/self/status), and on an amd64 host whose kernel runs
// 32-bit x86 programs, one runs under it (linux/386, no emulator: the
// filter covers x86 as well as x86_64; strata leaves only x32 out, where
// the kernel refuses x32).
func TestStepsUnderSeccomp(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	step := []string{"grep Seccomp: /proc/self/status > /s"}
	res, err := s.Build(ctx, builder.FromArchive(busyboxTar(t)).RunCommands(step))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "s"); got != "Seccomp:\t2\n" {
		t.Errorf("the step's seccomp mode: %q, want a filter (2)", got)
	}

	t.Run("linux/386", func(t *testing.T) {
		if runtime.GOARCH != "amd64" {
			t.Skipf("the 32-bit check is for amd64 hosts (this is %s)", runtime.GOARCH)
		}
		if _, err := os.Stat(i386Busybox); err != nil {
			t.Skipf("no i386 busybox (make setup unpacks Debian's busybox-static:i386 into %s)", i386Busybox)
		}
		if err := exec.Command(i386Busybox, "true").Run(); err != nil {
			t.Skipf("this kernel runs no 32-bit x86 program (%v): nothing for the filter to let through", err)
		}
		res, err := s.Build(ctx, builder.FromArchive(busyboxTarFrom(t, i386Busybox)).RunCommands(step), builder.Platforms("linux/386"))
		if err != nil {
			t.Fatal(err)
		}
		if got := readFromImage(t, s, res.ImageID, "s"); got != "Seccomp:\t2\n" {
			t.Errorf("the 32-bit step's seccomp mode: %q, want a filter (2)", got)
		}
		if cfg := imageFull(t, s, res.ImageID); cfg.Architecture != "386" {
			t.Errorf("config architecture %q", cfg.Architecture)
		}
	})
}
