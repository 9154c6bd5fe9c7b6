package runners

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// A cache mount's content is kept in a registry as a one-layer OCI image
// tagged "mount-<first 40 hex of sha256(id)>" in the repository the user
// names; the layer is a gzip tar of the mount's directory (sorted entries,
// owner 0, no device files), annotated with the mount id. It is never part
// of an image or a cache key.

// MountAnnotation names the cache mount id on a mount image's manifest.
const MountAnnotation = "org.stratabuild.cache-mount.id"

// ErrMountTooLarge is returned by PushCacheMount when the directory is
// over the size limit.
var ErrMountTooLarge = errors.New("cache mount is larger than the limit")

// CacheMountTag returns the tag of cache mount id in a mount repository.
func CacheMountTag(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "mount-" + hex.EncodeToString(sum[:])[:40]
}

func mountRef(repo, id string) (types.ImageReference, string, error) {
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return nil, "", fmt.Errorf("cache mount repository %q: %w", repo, err)
	}
	tagged, err := reference.WithTag(reference.TrimNamed(named), CacheMountTag(id))
	if err != nil {
		return nil, "", err
	}
	ref, err := docker.NewReference(tagged)
	return ref, tagged.String(), err
}

func policyContext(sc *types.SystemContext) (*signature.PolicyContext, error) {
	policy, err := signature.DefaultPolicy(sc)
	if err != nil {
		return nil, fmt.Errorf("reading signature policy: %w", err)
	}
	return signature.NewPolicyContext(policy)
}

// MountPushResult says what PushCacheMount did.
type MountPushResult struct {
	Digest string // the layer's digest
	Bytes  int64  // the layer's size
	Pushed bool   // false when the content was unchanged (nothing sent)
}

// PushCacheMount saves the directory dir of cache mount id to repo, unless
// its packed layer has the digest unchanged (the one it was restored
// from), or it holds more than limit bytes of files (ErrMountTooLarge).
// Blobs the registry already holds are not sent again.
func (r *Runtime) PushCacheMount(ctx context.Context, repo, id, dir string, auth *types.DockerAuthConfig, limit int64, unchanged string) (MountPushResult, error) {
	tmp, err := os.MkdirTemp("", fmt.Sprintf("strata-mount-%d-", os.Getpid()))
	if err != nil {
		return MountPushResult{}, err
	}
	defer os.RemoveAll(tmp)
	blobs := filepath.Join(tmp, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return MountPushResult{}, err
	}
	layerTmp := filepath.Join(tmp, "layer")
	digest, diffID, size, err := packDir(dir, layerTmp, limit)
	if err != nil {
		return MountPushResult{}, err
	}
	res := MountPushResult{Digest: digest, Bytes: size}
	if unchanged == "" {
		unchanged = r.remoteMountDigest(ctx, repo, id, auth)
	}
	if digest == unchanged {
		return res, nil
	}
	if err := os.Rename(layerTmp, filepath.Join(blobs, strings.TrimPrefix(digest, "sha256:"))); err != nil {
		return res, err
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"config": map[string]any{},
	})
	cfgDigest, err := writeBlob(blobs, cfg)
	if err != nil {
		return res, err
	}
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}},
		"annotations":   map[string]string{MountAnnotation: id},
	})
	manDigest, err := writeBlob(blobs, man)
	if err != nil {
		return res, err
	}
	idx, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests":     []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manDigest, "size": len(man)}},
	})
	if err := os.WriteFile(filepath.Join(tmp, "index.json"), idx, 0o644); err != nil {
		return res, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return res, err
	}
	src, err := layout.NewReference(tmp, "")
	if err != nil {
		return res, err
	}
	dest, name, err := mountRef(repo, id)
	if err != nil {
		return res, err
	}
	sc := r.SystemContext()
	if auth != nil {
		sc.DockerAuthConfig = auth
	}
	pc, err := policyContext(sc)
	if err != nil {
		return res, err
	}
	defer func() { _ = pc.Destroy() }()
	if _, err := copy.Image(ctx, pc, dest, src, &copy.Options{SourceCtx: sc, DestinationCtx: sc, ReportWriter: io.Discard}); err != nil {
		return res, fmt.Errorf("pushing cache mount %s to %s: %w", id, name, err)
	}
	res.Pushed = true
	return res, nil
}

func writeBlob(dir string, b []byte) (string, error) {
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	return "sha256:" + h, os.WriteFile(filepath.Join(dir, h), b, 0o644)
}

// packDir writes dir as a gzip tar to out and returns the compressed
// digest, the uncompressed digest and the compressed size. The same files
// always pack to the same bytes.
func packDir(dir, out string, limit int64) (digest, diffID string, size int64, err error) {
	type ent struct {
		rel  string
		info fs.FileInfo
	}
	var ents []ent
	var total int64
	err = filepath.Walk(dir, func(p string, info fs.FileInfo, werr error) error {
		if werr != nil {
			return werr
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if info.Mode().IsRegular() {
			total += info.Size()
			if limit > 0 && total > limit {
				return fmt.Errorf("%w (%d bytes)", ErrMountTooLarge, limit)
			}
		}
		ents = append(ents, ent{filepath.ToSlash(rel), info})
		return nil
	})
	if err != nil {
		return "", "", 0, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].rel < ents[j].rel })
	f, err := os.Create(out)
	if err != nil {
		return "", "", 0, err
	}
	defer f.Close()
	ch := sha256.New()
	uh := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, ch))
	tw := tar.NewWriter(io.MultiWriter(gz, uh))
	for _, e := range ents {
		h := &tar.Header{Name: e.rel, Mode: int64(e.info.Mode().Perm()), ModTime: e.info.ModTime().Truncate(1e9), Format: tar.FormatPAX}
		switch {
		case e.info.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, e.rel+"/"
		case e.info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(dir, e.rel))
			if err != nil {
				return "", "", 0, err
			}
			h.Typeflag, h.Linkname = tar.TypeSymlink, target
		case e.info.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, e.info.Size()
		default:
			continue // sockets, devices: not cache content
		}
		if err := tw.WriteHeader(h); err != nil {
			return "", "", 0, err
		}
		if h.Typeflag == tar.TypeReg {
			rf, err := os.Open(filepath.Join(dir, e.rel))
			if err != nil {
				return "", "", 0, err
			}
			_, err = io.CopyN(tw, rf, h.Size)
			rf.Close()
			if err != nil {
				return "", "", 0, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return "", "", 0, err
	}
	if err := gz.Close(); err != nil {
		return "", "", 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return "", "", 0, err
	}
	return "sha256:" + hex.EncodeToString(ch.Sum(nil)), "sha256:" + hex.EncodeToString(uh.Sum(nil)), st.Size(), f.Close()
}

// PullCacheMount restores cache mount id from repo into dir, which must
// be empty, and returns the layer's digest. A missing entry gives an error
// matching ErrCacheMiss; a corrupt one another error, and dir stays empty.
func (r *Runtime) PullCacheMount(ctx context.Context, repo, id, dir string, auth *types.DockerAuthConfig) (string, error) {
	src, name, err := mountRef(repo, id)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", fmt.Sprintf("strata-mount-%d-", os.Getpid()))
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dest, err := layout.NewReference(filepath.Join(tmp, "layout"), "")
	if err != nil {
		return "", err
	}
	sc := r.SystemContext()
	if auth != nil {
		sc.DockerAuthConfig = auth
	}
	pc, err := policyContext(sc)
	if err != nil {
		return "", err
	}
	defer func() { _ = pc.Destroy() }()
	if _, err := copy.Image(ctx, pc, dest, src, &copy.Options{SourceCtx: sc, DestinationCtx: sc, ReportWriter: io.Discard}); err != nil {
		return "", classifyCacheErr(name, err)
	}
	idx, err := readJSON[struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}](filepath.Join(tmp, "layout", "index.json"))
	if err != nil || len(idx.Manifests) != 1 {
		return "", fmt.Errorf("cache mount %s: bad layout from %s: %v", id, name, err)
	}
	blob := func(d string) string {
		return filepath.Join(tmp, "layout", "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	}
	man, err := readJSON[struct {
		Layers []struct {
			Digest    string `json:"digest"`
			MediaType string `json:"mediaType"`
		} `json:"layers"`
		Annotations map[string]string `json:"annotations"`
	}](blob(idx.Manifests[0].Digest))
	if err != nil || len(man.Layers) != 1 {
		return "", fmt.Errorf("cache mount %s: %s is not a cache mount image", id, name)
	}
	if got := man.Annotations[MountAnnotation]; got != id {
		return "", fmt.Errorf("cache mount %s: %s holds mount %q: %w", id, name, got, ErrCacheMiss)
	}
	staging, err := os.MkdirTemp(filepath.Dir(dir), ".restore-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	if err := unpackSafely(blob(man.Layers[0].Digest), staging); err != nil {
		return "", fmt.Errorf("cache mount %s: unpacking %s: %w", id, name, err)
	}
	ents, err := os.ReadDir(staging)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(staging, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return "", err
		}
	}
	return man.Layers[0].Digest, nil
}

func readJSON[T any](p string) (T, error) {
	var v T
	b, err := os.ReadFile(p)
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(b, &v)
}

// unpackSafely extracts a gzip tar into root: regular files, directories
// and symlinks only; no entry may leave root or be written through a
// symlink.
func unpackSafely(archive, root string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q leaves the mount", h.Name)
		}
		dst := filepath.Join(root, filepath.FromSlash(name))
		for d := filepath.Dir(dst); d != root; d = filepath.Dir(d) {
			if st, err := os.Lstat(d); err == nil && st.Mode()&fs.ModeSymlink != 0 {
				return fmt.Errorf("entry %q goes through a symlink", h.Name)
			}
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			_ = os.Chtimes(dst, h.ModTime, h.ModTime)
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		}
	}
}

// remoteMountDigest returns the layer digest of cache mount id in repo, or
// "" when there is none or it cannot be read.
func (r *Runtime) remoteMountDigest(ctx context.Context, repo, id string, auth *types.DockerAuthConfig) string {
	ref, _, err := mountRef(repo, id)
	if err != nil {
		return ""
	}
	sc := r.SystemContext()
	if auth != nil {
		sc.DockerAuthConfig = auth
	}
	src, err := ref.NewImageSource(ctx, sc)
	if err != nil {
		return ""
	}
	defer src.Close()
	mb, _, err := src.GetManifest(ctx, nil)
	if err != nil {
		return ""
	}
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if json.Unmarshal(mb, &m) != nil || len(m.Layers) != 1 {
		return ""
	}
	return m.Layers[0].Digest
}
