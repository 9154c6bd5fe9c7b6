package runners

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	godigest "github.com/opencontainers/go-digest"
	"go.podman.io/buildah"
	"go.podman.io/buildah/define"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/compression"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"

	"github.com/stratabuild/strata/mount"
)

// BaseKind says where a base image comes from.
type BaseKind string

// Base kinds.
const (
	BaseScratch   BaseKind = "scratch"
	BaseRegistry  BaseKind = "registry"
	BaseArchive   BaseKind = "archive"
	BaseOCILayout BaseKind = "oci-layout"
	BaseID        BaseKind = "id"
	BaseDebian    BaseKind = "debian"
)

// Base names a base image.
type Base struct {
	Kind BaseKind
	// Ref is the registry reference, archive path, layout directory
	// (optionally "dir:tag") or image ID.
	Ref string
	// Auth, when set, is used for registry pulls instead of auth.json.
	Auth *types.DockerAuthConfig
	// Debian describes a BaseDebian base.
	Debian *Debian
	// AuthFunc, when set, supplies registry credentials when they are
	// needed (for credentials exchanged from a cloud secret).
	AuthFunc func(context.Context) (*types.DockerAuthConfig, error)
	// Platform, when set ("linux/arm64"), is the platform to take from a
	// multi-platform base; "" is the host's.
	Platform string
}

// withAuth returns b with Auth filled from AuthFunc.
func (b Base) withAuth(ctx context.Context) (Base, error) {
	if b.AuthFunc == nil {
		return b, nil
	}
	a, err := b.AuthFunc(ctx)
	if err != nil {
		return b, err
	}
	b.Auth = a
	return b, nil
}

// Resolver turns bases into content digests, remembering archive digests by
// (path, size, mtime) so that an unchanged archive is hashed once per Resolver.
type Resolver struct {
	// Store is used for BaseID; may be nil.
	Store storage.Store
	// SystemContext is used for registry lookups; may be nil.
	SystemContext *types.SystemContext
	// DigestFile, when set, keeps archive bases' digests between
	// processes (a JSON file, usually in the store's graph root), so a
	// large archive is hashed once, not by every strata build.
	DigestFile string
	// PullPolicy says when a registry base's tag is resolved at the
	// registry: "" or "always" (at every build), "missing" (only when the
	// store holds no image of that name), "never" (the store's image of
	// that name, or an error).
	PullPolicy string

	mu   sync.Mutex
	memo map[string]string
}

// Resolve returns the content digest that identifies b: the manifest digest
// for registry and OCI-layout bases, the SHA-256 of the file for archives, the
// image ID for BaseID, and "scratch" for scratch.
func (r *Resolver) Resolve(ctx context.Context, b Base) (string, error) {
	switch b.Kind {
	case BaseScratch:
		return "scratch", nil
	case BaseArchive:
		return r.archiveDigest(b.Ref)
	case BaseOCILayout:
		return layoutDigest(b.Ref)
	case BaseID:
		if r.Store == nil {
			return "", errors.New("FromID needs an open session (use Session.Plan or Session.Build)")
		}
		img, err := r.Store.Image(b.Ref)
		if err != nil {
			return "", fmt.Errorf("image %q not found in the store: %w", b.Ref, err)
		}
		return "sha256:" + img.ID, nil
	case BaseRegistry:
		b, err := b.withAuth(ctx)
		if err != nil {
			return "", err
		}
		return r.registryDigest(ctx, b)
	case BaseDebian:
		return debianDigest(ctx, *b.Debian)
	}
	return "", fmt.Errorf("unknown base kind %q", b.Kind)
}

func (r *Resolver) archiveDigest(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("base archive: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("base archive %s is not a regular file", p)
	}
	abs, _ := filepath.Abs(p)
	memoKey := statKey(abs, st)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.memo == nil {
		r.memo = readDigestFile(r.DigestFile)
	}
	if d, ok := r.memo[memoKey]; ok {
		return d, nil
	}
	d, err := mount.FileDigest(p)
	if err != nil {
		return "", fmt.Errorf("base archive: %w", err)
	}
	r.memo[memoKey] = d
	// Kept for the next process only when the file has not changed in
	// the last second: a write in the same instant as the hashing could
	// otherwise leave its old digest under its new times.
	if time.Since(changeTime(st)) > time.Second {
		writeDigestFile(r.DigestFile, abs, memoKey, memoKey, d)
	}
	return d, nil
}

// archiveKind is archiveTransport remembered as the digest is: a rootfs
// tarball has neither oci-layout nor manifest.json, so telling it apart
// reads the whole archive (170 MB for the minbase), which a no-change
// rebuild would otherwise do for every Dockerfile FROM it.
func (r *Resolver) archiveKind(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return archiveTransport(p)
	}
	abs, _ := filepath.Abs(p)
	stat := statKey(abs, st)
	key := stat + "\x00kind"
	r.mu.Lock()
	if r.memo == nil {
		r.memo = readDigestFile(r.DigestFile)
	}
	k, ok := r.memo[key]
	r.mu.Unlock()
	if ok {
		return k, nil
	}
	if k, err = archiveTransport(p); err != nil {
		return "", err
	}
	r.mu.Lock()
	r.memo[key] = k
	r.mu.Unlock()
	if time.Since(changeTime(st)) > time.Second {
		writeDigestFile(r.DigestFile, abs, stat, key, k)
	}
	return k, nil
}

// statKey identifies a file's content by its path, device, inode, size,
// modification and change times, as git's index does.
func statKey(abs string, st os.FileInfo) string {
	var dev, ino uint64
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(s.Dev), s.Ino
	}
	return fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%d\x00%d", abs, dev, ino, st.Size(), st.ModTime().UnixNano(), changeTime(st).UnixNano())
}

func changeTime(st os.FileInfo) time.Time {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return time.Unix(int64(s.Ctim.Sec), int64(s.Ctim.Nsec))
	}
	return st.ModTime()
}

// readDigestFile reads the digests DigestFile keeps (none when it is
// unset, missing or unreadable: they are only a shortcut).
func readDigestFile(path string) map[string]string {
	m := map[string]string{}
	if path == "" {
		return m
	}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// writeDigestFile adds key's value to DigestFile, dropping the entries
// of abs under other stats than stat (key is stat, or stat and what the
// entry is); written to a temporary file and renamed, so a reader never
// sees half of it (a concurrent writer's entry may be lost, and is then
// computed again).
func writeDigestFile(path, abs, stat, key, digest string) {
	if path == "" {
		return
	}
	m := readDigestFile(path)
	for k := range m {
		if strings.HasPrefix(k, abs+"\x00") && k != stat && !strings.HasPrefix(k, stat+"\x00") {
			delete(m, k)
		}
	}
	m[key] = digest
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	if os.WriteFile(tmp, b, 0o600) == nil && os.Rename(tmp, path) != nil {
		_ = os.Remove(tmp)
	}
}

// ParseRegistryRef validates a registry reference and returns it normalized
// (docker.io/library/ added to short names, ":latest" when no tag or digest).
func ParseRegistryRef(ref string) (reference.Named, error) {
	ref = strings.TrimPrefix(ref, "docker://")
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("bad image reference %q: %w", ref, err)
	}
	return reference.TagNameOnly(named), nil
}

func (r *Resolver) registryDigest(ctx context.Context, b Base) (string, error) {
	named, err := ParseRegistryRef(b.Ref)
	if err != nil {
		return "", err
	}
	if c, ok := named.(reference.Canonical); ok {
		return c.Digest().String(), nil
	}
	if r.PullPolicy == "missing" || r.PullPolicy == "never" {
		if r.Store != nil {
			if img, err := r.Store.Image(named.String()); err == nil && img.Digest != "" && imageIsFor(r.Store, img.ID, b.Platform) {
				return img.Digest.String(), nil
			}
		}
		if r.PullPolicy == "never" {
			return "", fmt.Errorf("%s is not in the store and the pull policy is never: pull it once (a build without --pull=never), or give the base by digest, archive or OCI layout", named)
		}
	}
	iref, err := docker.NewReference(named)
	if err != nil {
		return "", fmt.Errorf("bad image reference %q: %w", b.Ref, err)
	}
	sc := r.sysCtx(b)
	src, err := iref.NewImageSource(ctx, sc)
	if err != nil {
		return "", fmt.Errorf("resolving %s (registries and mirrors as %s configure them): %w", named, registriesConf(sc), err)
	}
	defer src.Close()
	mb, mt, err := src.GetManifest(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", named, err)
	}
	if manifest.MIMETypeIsMultiImage(mt) {
		if err := hasPlatform(mb, mt, sc, b.Platform); err != nil {
			return "", fmt.Errorf("%s: %w", named, err)
		}
	}
	d, err := manifest.Digest(mb)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", named, err)
	}
	return d.String(), nil
}

func (r *Resolver) sysCtx(b Base) *types.SystemContext {
	sc := &types.SystemContext{}
	if r.SystemContext != nil {
		c := *r.SystemContext
		sc = &c
	}
	if b.Auth != nil {
		sc.DockerAuthConfig = b.Auth
	}
	choosePlatform(sc, b.Platform)
	return sc
}

// choosePlatform makes sc pick platform ("os/arch[/variant]") from image
// indexes; "" leaves the host's.
func choosePlatform(sc *types.SystemContext, platform string) {
	if platform == "" {
		return
	}
	sc.OSChoice, sc.ArchitectureChoice, sc.VariantChoice = SplitPlatform(platform)
}

// imageIsFor reports whether the stored image id is for platform ("" is
// the host's): its config's os, architecture and variant.
func imageIsFor(store storage.Store, id, platform string) bool {
	raw, err := store.ImageBigData(id, storage.ImageDigestBigDataKey)
	if err != nil {
		return false
	}
	var m struct {
		Config struct{ Digest string } `json:"config"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	cfg, err := store.ImageBigData(id, m.Config.Digest)
	if err != nil {
		return false
	}
	var c struct{ OS, Architecture, Variant string }
	if json.Unmarshal(cfg, &c) != nil {
		return false
	}
	got := c.OS + "/" + c.Architecture
	if c.Variant != "" {
		got += "/" + c.Variant
	}
	if platform == "" {
		platform = HostPlatform
	}
	return got == platform
}

// layoutDigest reads an OCI layout's index.json and returns the digest of the
// manifest named by "dir:tag", or of the only image when no tag is given.
func layoutDigest(ref string) (string, error) {
	im, err := layoutImage(ref)
	return im.digest, err
}

// layoutRef is the containers/image oci: reference (without "oci:") of
// the image that ref ("dir" or "dir:tag") names. With no tag, index.json
// may list the only image beside its attestations' referrers indexes
// (named sha256-<hex>): the image is then named by its own tag, or as
// "dir:@N".
func layoutRef(ref string) (string, error) {
	dir, tag := splitLayoutRef(ref)
	if tag != "" {
		return dir + ":" + tag, nil
	}
	im, err := layoutImage(ref)
	switch {
	case err != nil:
		return "", err
	case im.listed == 1:
		return dir, nil
	case im.name != "":
		return dir + ":" + im.name, nil
	}
	return dir + ":@" + strconv.Itoa(im.at), nil
}

// layoutEntry is an image index.json lists: its digest, its position and
// name there, and how many entries the index lists.
type layoutEntry struct {
	digest, name string
	at, listed   int
}

// layoutImage finds the image of ref in index.json.
func layoutImage(ref string) (layoutEntry, error) {
	dir, tag := splitLayoutRef(ref)
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return layoutEntry{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return layoutEntry{}, fmt.Errorf("OCI layout %s: index.json: %w", dir, err)
	}
	var found []layoutEntry
	for i, m := range idx.Manifests {
		name := m.Annotations["org.opencontainers.image.ref.name"]
		if tag == "" && referrersTag.MatchString(name) {
			continue // an image's attestations, not an image
		}
		if tag == "" || name == tag {
			found = append(found, layoutEntry{digest: m.Digest, name: name, at: i, listed: len(idx.Manifests)})
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && tag != "":
		return layoutEntry{}, fmt.Errorf("OCI layout %s has no image tagged %q", dir, tag)
	case len(found) == 0:
		return layoutEntry{}, fmt.Errorf("OCI layout %s holds no image", dir)
	}
	return layoutEntry{}, fmt.Errorf("OCI layout %s holds %d images: name one as %s:<tag>", dir, len(found), dir)
}

// referrersTag matches the referrers tag schema's names (sha256-<hex>).
var referrersTag = regexp.MustCompile(`^sha256-[0-9a-f]{64}$`)

func splitLayoutRef(ref string) (dir, tag string) {
	if i := strings.LastIndex(ref, ":"); i > 0 && !strings.Contains(ref[i:], "/") {
		if _, err := os.Stat(ref); err != nil {
			return ref[:i], ref[i+1:]
		}
	}
	return ref, ""
}

// ImportBase makes b available in the store and returns its image ID. For a
// registry base, digest pins the pull to the resolved manifest.
func (r *Runtime) ImportBase(ctx context.Context, b Base, digest string, report io.Writer) (string, error) {
	var name string
	switch b.Kind {
	case BaseScratch:
		return "", nil
	case BaseID:
		img, err := r.store.Image(b.Ref)
		if err != nil {
			return "", fmt.Errorf("image %q not found in the store: %w", b.Ref, err)
		}
		return img.ID, nil
	case BaseRegistry:
		named, err := ParseRegistryRef(b.Ref)
		if err != nil {
			return "", err
		}
		if b, err = b.withAuth(ctx); err != nil {
			return "", err
		}
		// An image of that manifest is already here (pulled before, by
		// this tag or another): no pull at all.
		// (An index's digest names every platform's image: the one for
		// this build's platform.)
		if d, err := godigest.Parse(digest); err == nil {
			if imgs, err := r.store.ImagesByDigest(d); err == nil {
				for _, img := range imgs {
					if imageIsFor(r.store, img.ID, b.Platform) {
						r.nameBase(img.ID, named)
						return img.ID, nil
					}
				}
			}
		}
		if r.pullNever {
			return "", fmt.Errorf("%s@%s is not in the store and the pull policy is never", reference.TrimNamed(named), digest)
		}
		id, err := r.pull(ctx, "docker://"+reference.TrimNamed(named).String()+"@"+digest, b.Auth, report, b.Platform)
		if err != nil {
			return "", err
		}
		r.nameBase(id, named)
		return id, nil
	case BaseOCILayout:
		lr, err := layoutRef(b.Ref)
		if err != nil {
			return "", err
		}
		name = "oci:" + lr
	case BaseArchive:
		t, err := archiveTransport(b.Ref)
		if err != nil {
			return "", err
		}
		if t == "tarball" && b.Platform != "" && b.Platform != HostPlatform {
			// A rootfs tarball cannot say its platform: the image's
			// config is told it.
			return r.importRootfs(ctx, b.Ref, b.Platform)
		}
		name = t + ":" + b.Ref
	case BaseDebian:
		return r.importDebian(ctx, *b.Debian, b.Platform, report)
	default:
		return "", fmt.Errorf("unknown base kind %q", b.Kind)
	}
	return r.pull(ctx, name, b.Auth, report, b.Platform)
}

// nameBase gives a pulled registry base its tag's name in the store, as
// podman pull does (so podman lists it, and a later build with the pull
// policy missing or never finds it); digest references get no name.
func (r *Runtime) nameBase(id string, named reference.Named) {
	if _, ok := named.(reference.Canonical); ok {
		return
	}
	_ = r.store.AddNames(id, []string{named.String()})
}

// pull copies the image name (with its transport) into the store.
func (r *Runtime) pull(ctx context.Context, name string, auth *types.DockerAuthConfig, report io.Writer, platform string) (string, error) {
	sc := r.SystemContext()
	if auth != nil {
		sc.DockerAuthConfig = auth
	}
	choosePlatform(sc, platform)
	if report == nil {
		report = io.Discard
	}
	var id string
	err := retryStagingRace(func() error {
		var err error
		id, err = buildah.Pull(ctx, name, buildah.PullOptions{
			Store:               r.store,
			SystemContext:       sc,
			SignaturePolicyPath: r.policyPath,
			ReportWriter:        report,
			PullPolicy:          define.PullAlways,
			MaxRetries:          2,
		})
		return err
	}, nil)
	if err != nil {
		if strings.HasPrefix(name, "docker://") {
			return "", fmt.Errorf("importing base %s (registries and mirrors as %s configure them): %w", name, registriesConf(sc), err)
		}
		return "", fmt.Errorf("importing base %s: %w", name, err)
	}
	return id, nil
}

// registriesConf names the registries.conf files and drop-in directories
// that containers/image reads for sc, in order (the user's first, or
// $CONTAINERS_REGISTRIES_CONF alone), where a mirror or a registry's
// settings would come from.
func registriesConf(sc *types.SystemContext) string {
	if d := sysregistriesv2.ConfigurationSourceDescription(sc); d != "" {
		return d
	}
	return "registries.conf"
}

// archiveTransport tells an oci-archive or docker-archive from a plain
// (optionally compressed) rootfs tarball by the files the archive holds.
func archiveTransport(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("base archive: %w", err)
	}
	defer f.Close()
	rd, _, err := compression.AutoDecompress(f)
	if err != nil {
		return "", fmt.Errorf("base archive %s: %w", p, err)
	}
	defer rd.Close()
	tr := tar.NewReader(rd)
	links := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "tarball", nil
		}
		if err != nil {
			return "", fmt.Errorf("base archive %s is not a tar archive: %w", p, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "oci-layout":
			return "oci-archive", nil
		case "manifest.json":
			return "docker-archive", nil
		}
		// Rootfs entries that climb out of the root, or go through a
		// symlink of the archive, are applied safely by the store, but the
		// layer they make cannot be read back whole (its diff stops there,
		// so exports and pushes would be cut short): refuse them.
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		if name == ".." || strings.HasPrefix(name, "../") {
			return "", fmt.Errorf("base archive %s: entry %q climbs out of the root; refusing the archive (repack it without such entries)", p, h.Name)
		}
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if links[d] {
				return "", fmt.Errorf("base archive %s: entry %q goes through the symlink %q; refusing the archive (repack it without such entries)", p, h.Name, d)
			}
		}
		if h.Typeflag == tar.TypeSymlink {
			links[name] = true
		}
	}
}

// hasPlatform checks that the index mb holds an image for the platform sc
// chooses, and names the platforms it holds when it does not.
func hasPlatform(mb []byte, mt string, sc *types.SystemContext, platform string) error {
	list, err := manifest.ListFromBlob(mb, mt)
	if err != nil {
		return err
	}
	if _, err := list.ChooseInstance(sc); err == nil {
		return nil
	}
	var have []string
	for _, d := range list.Instances() {
		inst, err := list.Instance(d)
		if err != nil || inst.ReadOnly.Platform == nil {
			continue
		}
		p := inst.ReadOnly.Platform.OS + "/" + inst.ReadOnly.Platform.Architecture
		if inst.ReadOnly.Platform.Variant != "" {
			p += "/" + inst.ReadOnly.Platform.Variant
		}
		have = append(have, p)
	}
	if platform == "" {
		platform = HostPlatform
	}
	return fmt.Errorf("the image has no %s image (it has %s)", platform, strings.Join(have, ", "))
}
