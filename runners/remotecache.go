package runners

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/docker/distribution/registry/api/errcode"
	"go.podman.io/common/pkg/retry"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/signature"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/layers"
)

// ErrCacheMiss is returned (wrapped) by PullCacheEntry when the cache
// repository has no usable entry for the key: the tag does not exist, or
// a blob it names is gone. Any other failure (unreachable, refused
// credentials, a blob that does not match its digest) is another error.
var ErrCacheMiss = errors.New("no entry in the cache repository")

// ParseCacheRepo validates a cache repository ("registry.example.com/team/cache")
// and returns it normalized. It must carry neither a tag nor a digest: the
// tags of a cache repository are keys.
func ParseCacheRepo(repo string) (string, error) {
	repo = strings.TrimPrefix(repo, "docker://")
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return "", fmt.Errorf("cache repository %q: %w", repo, err)
	}
	if !reference.IsNameOnly(named) {
		return "", fmt.Errorf("cache repository %q: give a repository without a tag or digest (entries are tagged by key)", repo)
	}
	return named.Name(), nil
}

// cacheEntryRef returns the reference of key hex's entry in repo.
func cacheEntryRef(repo, hex string) (reference.NamedTagged, error) {
	if !layers.Key("sha256:" + hex).Valid() {
		return nil, fmt.Errorf("invalid cache key %q", hex)
	}
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil {
		return nil, fmt.Errorf("cache repository %q: %w", repo, err)
	}
	return reference.WithTag(reference.TrimNamed(named), layers.RemoteTag(layers.Key("sha256:"+hex)))
}

// PullCacheEntry copies the entry of key hex (64 hex digits) from the
// cache repository repo ("docker://<repo>:<hex>", see layers/remote.go)
// into the store and returns the local image ID. Layers already in the
// store are reused, so only the blobs the store lacks are downloaded;
// every blob is checked against its digest before the image is created.
// The image gets no name: the caller records it in its cache.
//
// A missing tag or blob gives an error matching ErrCacheMiss. A failed
// pull creates no image; layers it had already applied (each verified)
// may stay in the store, unnamed and unused by any image.
//
// A failure that may pass (a server error, a reset connection: a
// registry can answer so while another writer rewrites the same tag) is
// tried twice more, a quarter and half a second later; a miss, refused
// credentials, a registry that refuses connections and a corrupted blob
// are not.
func (r *Runtime) PullCacheEntry(ctx context.Context, repo, hex string, auth *types.DockerAuthConfig) (id string, err error) {
	err = retryTransient(ctx, func() error {
		id, err = r.pullCacheEntry(ctx, repo, hex, auth)
		return err
	})
	return id, err
}

// retryTransient calls f until it succeeds, fails in a way that will not
// pass (transientCacheErr), or has been tried three times, waiting a
// quarter and then half a second between tries.
func retryTransient(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || attempt == 3 || !transientCacheErr(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
		}
	}
}

// transientCacheErr tells a registry failure that may pass from a lasting
// one: containers/common's retry rules, less a miss and a refused
// connection (the entry or the registry is not there), plus any 5xx
// status. Debian's docker-registry answers 500 to a HEAD of a blob that
// another writer is storing at that moment; containers/common retries
// only 502 to 504.
func transientCacheErr(err error) bool {
	if errors.Is(err, ErrCacheMiss) || errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	var status docker.UnexpectedHTTPStatusError
	if errors.As(err, &status) && status.StatusCode >= 500 {
		return true
	}
	return retry.IsErrorRetryable(err)
}

func (r *Runtime) pullCacheEntry(ctx context.Context, repo, hex string, auth *types.DockerAuthConfig) (string, error) {
	tagged, err := cacheEntryRef(repo, hex)
	if err != nil {
		return "", err
	}
	sc := r.SystemContext()
	if auth != nil {
		sc.DockerAuthConfig = auth
	}
	srcRef, err := docker.NewReference(tagged)
	if err != nil {
		return "", fmt.Errorf("cache entry %s: %w", tagged, err)
	}
	// Read the manifest once: it tells a miss from a failure, names the
	// image ID, and pins the copy to this manifest by digest, so a tag
	// rewritten meanwhile cannot mix two manifests.
	src, err := srcRef.NewImageSource(ctx, sc)
	if err != nil {
		return "", classifyCacheErr(tagged.String(), err)
	}
	mb, mt, err := src.GetManifest(ctx, nil)
	src.Close()
	if err != nil {
		return "", classifyCacheErr(tagged.String(), err)
	}
	m, err := manifest.FromBlob(mb, manifest.NormalizedMIMEType(mt))
	if err != nil {
		return "", fmt.Errorf("cache entry %s: %w", tagged, err)
	}
	if oci, ok := m.(*manifest.OCI1); ok {
		if k, ok := oci.Annotations[layers.RemoteKeyAnnotation]; ok && k != "sha256:"+hex {
			return "", fmt.Errorf("cache entry %s: manifest annotated with key %q: %w", tagged, k, ErrCacheMiss)
		}
	}
	md, err := manifest.Digest(mb)
	if err != nil {
		return "", fmt.Errorf("cache entry %s: %w", tagged, err)
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(tagged), md)
	if err != nil {
		return "", fmt.Errorf("cache entry %s: %w", tagged, err)
	}
	if srcRef, err = docker.NewReference(pinned); err != nil {
		return "", fmt.Errorf("cache entry %s: %w", tagged, err)
	}
	id := m.ConfigInfo().Digest.Encoded()
	destRef, err := istorage.Transport.NewStoreReference(r.store, nil, id)
	if err != nil {
		return "", fmt.Errorf("cache entry %s: %w", tagged, err)
	}
	policy, err := signature.DefaultPolicy(sc)
	if err != nil {
		return "", fmt.Errorf("reading signature policy: %w", err)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return "", fmt.Errorf("reading signature policy: %w", err)
	}
	defer func() { _ = pc.Destroy() }()
	if err := retryStagingRace(func() error {
		_, err := copy.Image(ctx, pc, destRef, srcRef, &copy.Options{
			SourceCtx:      sc,
			DestinationCtx: sc,
			ReportWriter:   io.Discard,
		})
		return err
	}, nil); err != nil {
		return "", classifyCacheErr(tagged.String(), err)
	}
	img, err := r.store.Image(id)
	if err != nil {
		return "", fmt.Errorf("cache entry %s: pulled image not in the store: %w", tagged, err)
	}
	return img.ID, nil
}

// PushCacheEntry pushes the image imageID as the entry of key hex in the
// cache repository repo ("docker://<repo>:<hex>", gzip layers). Blobs the
// registry already holds are not uploaded again. A push that fails in a
// way that may pass (as PullCacheEntry says) is tried twice more: two
// writers pushing the same blob at once can get a server error.
func (r *Runtime) PushCacheEntry(ctx context.Context, repo, hex, imageID string, auth *types.DockerAuthConfig) error {
	tagged, err := cacheEntryRef(repo, hex)
	if err != nil {
		return err
	}
	return retryTransient(ctx, func() error {
		_, err := r.Export(ctx, imageID, "docker://"+tagged.String(), nil, ExportOptions{Auth: auth, Compression: "gzip"})
		return err
	})
}

// classifyCacheErr wraps err from reading ref, adding ErrCacheMiss when the
// registry said the manifest, the repository or a blob is unknown.
func classifyCacheErr(ref string, err error) error {
	var ec errcode.ErrorCoder
	if errors.As(err, &ec) {
		switch ec.ErrorCode().String() {
		case "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN":
			return fmt.Errorf("cache entry %s: %w (%w)", ref, ErrCacheMiss, err)
		}
	}
	// Registries that answer 404 without an error body.
	if strings.Contains(err.Error(), "StatusCode: 404") {
		return fmt.Errorf("cache entry %s: %w (%w)", ref, ErrCacheMiss, err)
	}
	return fmt.Errorf("cache entry %s: %w", ref, err)
}
