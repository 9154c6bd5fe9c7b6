package runners

import (
	"context"
	"fmt"
	"io"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/common/libimage/manifests"
	cp "go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/manifest"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports/alltransports"
)

// Index makes an image index of the images ids (one per platform, each
// entry's platform read from the image's config) and stores it as a
// manifest list image named names (as buildah manifest create does; a
// name another image had moves to the index). docker makes a Docker
// manifest list instead of an OCI index. It returns the list's image ID
// and its manifest digest.
func (r *Runtime) Index(ctx context.Context, ids, names []string, docker bool) (string, string, error) {
	list := manifests.Create()
	for _, id := range ids {
		ref, err := istorage.Transport.NewStoreReference(r.store, nil, id)
		if err != nil {
			return "", "", err
		}
		if _, err := list.Add(ctx, r.SystemContext(), ref, false); err != nil {
			return "", "", fmt.Errorf("adding image %s to the index: %w", shortID(id), err)
		}
	}
	for _, n := range names {
		if img, err := r.store.Image(n); err == nil {
			if err := r.store.RemoveNames(img.ID, []string{n}); err != nil {
				return "", "", fmt.Errorf("moving the name %s to the index: %w", n, err)
			}
		}
	}
	mt := v1.MediaTypeImageIndex
	if docker {
		mt = manifest.DockerV2ListMediaType
	}
	id, err := list.SaveToImage(r.store, "", names, mt)
	if err != nil {
		return "", "", fmt.Errorf("storing the index: %w", err)
	}
	d, err := r.ManifestDigest(id)
	if err != nil {
		return "", "", err
	}
	return id, d, nil
}

// ExportIndex writes the index stored as image id, with every image it
// lists, to dest ("oci:DIR[:TAG]", "oci-archive:FILE" or "docker://REF")
// and returns the digest of the index written there.
func (r *Runtime) ExportIndex(ctx context.Context, id, dest string, report io.Writer, o ExportOptions) (string, error) {
	if strings.HasPrefix(dest, "docker-archive:") {
		return "", fmt.Errorf("exporting to %s: a docker-archive holds one image, not an index of several platforms: use oci: or oci-archive:, or one build per platform", dest)
	}
	ref, err := alltransports.ParseImageName(dest)
	if err != nil {
		return "", fmt.Errorf("export destination %q: %w (use oci:DIR[:TAG], oci-archive:FILE or docker://REF)", dest, err)
	}
	_, list, err := manifests.LoadFromImage(r.store, id)
	if err != nil {
		return "", fmt.Errorf("reading the index: %w", err)
	}
	if report == nil {
		report = io.Discard
	}
	sc := r.SystemContext()
	if o.Auth != nil {
		sc.DockerAuthConfig = o.Auth
	}
	mt := v1.MediaTypeImageIndex
	if o.Format == "docker" && strings.HasPrefix(dest, "docker://") {
		mt = manifest.DockerV2ListMediaType
	}
	_, d, err := list.Push(ctx, ref, manifests.PushOptions{
		Store:              r.store,
		SystemContext:      sc,
		ImageListSelection: cp.CopyAllImages,
		ReportWriter:       report,
		ManifestType:       mt,
	})
	if err != nil {
		return "", fmt.Errorf("exporting the index to %s: %w", dest, err)
	}
	return d.String(), nil
}
