package runners

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/image"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/tarball"
	"go.podman.io/image/v5/types"
)

// Debian describes a Debian base made from a mirror with mmdebstrap
// (variant minbase), rootless through --mode=unshare.
type Debian struct {
	Suite string
	// Mirror is the archive URL; default http://deb.debian.org/debian, or
	// snapshot.debian.org's archive at Snapshot when that is set.
	Mirror string
	// Snapshot pins the mirror to snapshot.debian.org at this time.
	Snapshot time.Time
	// Include are extra packages installed in the base.
	Include []string
	// AptOptions are apt configuration lines written into the base
	// (mmdebstrap --aptopt), e.g. `Acquire::Check-Valid-Until "false"`.
	AptOptions []string
}

// MirrorURL returns the mirror the base is made from.
func (d Debian) MirrorURL() string {
	switch {
	case d.Mirror != "":
		return strings.TrimRight(d.Mirror, "/")
	case !d.Snapshot.IsZero():
		return "http://snapshot.debian.org/archive/debian/" + d.Snapshot.UTC().Format("20060102T150405Z")
	}
	return "http://deb.debian.org/debian"
}

func (d Debian) aptOptions() []string {
	opts := append([]string(nil), d.AptOptions...)
	if !d.Snapshot.IsZero() {
		// Snapshots serve Release files whose Valid-Until has passed.
		opts = append(opts, `Acquire::Check-Valid-Until "false"`)
	}
	return opts
}

// debianDigest identifies a Debian base by content: the suite's Release
// file as the mirror serves it now (it names the digest of every package
// index, so any change to the archive changes it), plus the settings.
func debianDigest(ctx context.Context, d Debian) (string, error) {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return "", fmt.Errorf("DebianMirror needs mmdebstrap on the host (apt-get install mmdebstrap): %w", err)
	}
	url := d.MirrorURL() + "/dists/" + d.Suite + "/Release"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("debian mirror: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading the Release file of %s: %w (is the mirror reachable?)", d.Suite, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading %s: %s (is %q a suite of this mirror?)", url, resp.Status, d.Suite)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	doc, _ := json.Marshal(map[string]any{
		"suite":       d.Suite,
		"release":     "sha256:" + hex.EncodeToString(h.Sum(nil)),
		"variant":     "minbase",
		"include":     d.Include,
		"apt_options": d.aptOptions(),
	})
	sum := sha256.Sum256(doc)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// debianArches are Debian's names for the image platforms it builds
// ("os/arch[/variant]" as images name them).
var debianArches = map[string]string{
	"linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm/v7": "armhf", "linux/arm/v5": "armel",
	"linux/386": "i386", "linux/ppc64le": "ppc64el", "linux/s390x": "s390x", "linux/riscv64": "riscv64",
	"linux/mips64le": "mips64el",
}

// DebianArch returns Debian's name for platform ("linux/arm64" -> "arm64").
func DebianArch(platform string) (string, error) {
	if a, ok := debianArches[platform]; ok {
		return a, nil
	}
	return "", fmt.Errorf("Debian has no architecture for %s (it has %s)", platform, strings.Join(slices.Sorted(maps.Keys(debianArches)), ", "))
}

// DebianPlatform returns the image platform of Debian architecture arch
// ("armhf" -> "linux/arm/v7").
func DebianPlatform(arch string) (string, error) {
	for p, a := range debianArches {
		if a == arch {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q is not a Debian architecture (%s)", arch, strings.Join(slices.Sorted(maps.Values(debianArches)), ", "))
}

// importDebian runs mmdebstrap into a temporary tarball and imports it.
// For a platform of another architecture ("" is the host's) the packages
// are that architecture's, their scripts run through the emulator, and
// the image's config names the platform.
func (r *Runtime) importDebian(ctx context.Context, d Debian, platform string, report io.Writer) (string, error) {
	if platform == HostPlatform {
		platform = ""
	}
	var arch string
	if platform != "" {
		var err error
		if arch, err = DebianArch(platform); err != nil {
			return "", err
		}
		if err := checkEmulator(platform); err != nil {
			return "", fmt.Errorf("a Debian %s bootstrap: %w", arch, err)
		}
		if _, err := exec.LookPath("arch-test"); err != nil {
			return "", fmt.Errorf("a Debian %s bootstrap needs arch-test on the host (mmdebstrap uses it to check the emulator): as root, apt-get install arch-test", arch)
		}
	}
	tmp, err := os.MkdirTemp("", fmt.Sprintf("strata-debian-%d-", os.Getpid()))
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	tarball := filepath.Join(tmp, "rootfs.tar")
	// Rootless, strata runs inside a user namespace where it is uid 0 but
	// may not mount proc or sys: mmdebstrap's unshare mode works there (it
	// maps its own namespace); root mode only for the real root.
	mode := "--mode=unshare"
	if !r.rootless {
		mode = "--mode=root"
	}
	args := []string{mode, "--variant=minbase", "--format=tar", "--quiet"}
	if arch != "" {
		args = append(args, "--arch="+arch)
	}
	if len(d.Include) > 0 {
		args = append(args, "--include="+strings.Join(d.Include, ","))
	}
	for _, o := range d.aptOptions() {
		args = append(args, "--aptopt="+o)
	}
	args = append(args, d.Suite, tarball, d.MirrorURL())
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	tail := newTailWriter(20)
	var out io.Writer = tail
	if report != nil {
		out = io.MultiWriter(tail, report)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		what := d.Suite
		if arch != "" {
			what += " (" + arch + ")"
		}
		return "", fmt.Errorf("mmdebstrap %s from %s: %w\nlast lines of output:\n  %s", what, d.MirrorURL(), err, strings.Join(tail.Lines(), "\n  "))
	}
	// The import of the tarball says nothing the bootstrap's own output
	// (above) did not.
	if platform == "" {
		return r.pull(ctx, "tarball:"+tarball, nil, nil, "")
	}
	return r.importRootfs(ctx, tarball, platform)
}

// importRootfs imports a rootfs tarball as an image whose config names
// platform (a plain tarball cannot say what it is for; containers/image
// would name the host's).
func (r *Runtime) importRootfs(ctx context.Context, path, platform string) (string, error) {
	ref, err := tarball.Transport.ParseReference(path)
	if err != nil {
		return "", fmt.Errorf("importing %s: %w", path, err)
	}
	cu, ok := ref.(tarball.ConfigUpdater)
	if !ok {
		return "", fmt.Errorf("importing %s: the tarball transport cannot be told the platform", path)
	}
	osName, arch, variant := SplitPlatform(platform)
	if err := cu.ConfigUpdate(imgspecv1.Image{Platform: imgspecv1.Platform{OS: osName, Architecture: arch, Variant: variant}}, nil); err != nil {
		return "", fmt.Errorf("importing %s: %w", path, err)
	}
	sc := r.SystemContext()
	// The image's ID is its config's digest: open the source first (it
	// reads the tarball to digest it), so the copy can name the image it
	// makes, and copy from that same source rather than read it again.
	src, err := ref.NewImageSource(ctx, sc)
	if err != nil {
		return "", fmt.Errorf("importing %s: %w", path, err)
	}
	opened := openedRef{ImageReference: ref, src: src}
	img, err := image.FromUnparsedImage(ctx, sc, image.UnparsedInstance(src, nil))
	if err != nil {
		src.Close()
		return "", fmt.Errorf("importing %s: %w", path, err)
	}
	id := img.ConfigInfo().Digest.Encoded()
	dest, err := istorage.Transport.NewStoreReference(r.store, nil, id)
	if err != nil {
		src.Close()
		return "", fmt.Errorf("importing %s: %w", path, err)
	}
	pc, err := policyContext(sc)
	if err != nil {
		src.Close()
		return "", err
	}
	defer func() { _ = pc.Destroy() }()
	// copy.Image closes the source.
	if _, err := copy.Image(ctx, pc, dest, opened, &copy.Options{SourceCtx: sc, DestinationCtx: sc, ReportWriter: io.Discard}); err != nil {
		return "", fmt.Errorf("importing %s: %w", path, err)
	}
	return id, nil
}

// openedRef is ref whose image source is already open (importRootfs).
type openedRef struct {
	types.ImageReference
	src types.ImageSource
}

func (o openedRef) NewImageSource(context.Context, *types.SystemContext) (types.ImageSource, error) {
	return o.src, nil
}
