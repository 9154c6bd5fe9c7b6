package runners

import (
	"context"
	"fmt"
	"io"
	"strings"

	"go.podman.io/buildah"
	"go.podman.io/buildah/define"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/compression"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage/pkg/archive"
)

// ExportOptions tune Export.
type ExportOptions struct {
	// Auth, when set, is used for a docker:// destination instead of
	// auth.json.
	Auth *types.DockerAuthConfig
	// Compression is "gzip" or "zstd"; "" lets containers/image choose
	// (gzip for registries and OCI layouts); "none" writes uncompressed
	// layers, to local destinations only.
	Compression string
	// Format "docker" writes Docker manifests to registries (docker://)
	// and docker-archive files; OCI layouts and archives stay OCI.
	Format string
}

// Export writes the image imageID to dest, a containers/image reference such
// as "oci:/path/layout:tag", "oci-archive:/path/img.tar",
// "docker-archive:/path/img.tar" or "docker://registry/repo:tag". It returns
// the manifest digest written.
func (r *Runtime) Export(ctx context.Context, imageID, dest string, report io.Writer, opts ...ExportOptions) (string, error) {
	var o ExportOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ref, err := alltransports.ParseImageName(dest)
	if err != nil {
		return "", fmt.Errorf("export destination %q: %w (use oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE)", dest, err)
	}
	if report == nil {
		report = io.Discard
	}
	mt := define.OCIv1ImageManifest
	if strings.HasPrefix(dest, "docker-archive:") || o.Format == "docker" && strings.HasPrefix(dest, "docker://") {
		mt = define.Dockerv2ImageManifest
	}
	sc := r.SystemContext()
	if o.Auth != nil {
		sc.DockerAuthConfig = o.Auth
	}
	po := buildah.PushOptions{
		Store:               r.store,
		SystemContext:       sc,
		SignaturePolicyPath: r.policyPath,
		ReportWriter:        report,
		ManifestType:        mt,
	}
	switch o.Compression {
	case "none":
		return r.exportUncompressed(ctx, imageID, dest, ref, sc, report)
	case "":
	case "gzip", "zstd":
		po.Compression = archive.Gzip // any value but Uncompressed: compress
		po.CompressionFormat = &compression.Gzip
		if o.Compression == "zstd" {
			po.CompressionFormat = &compression.Zstd
		}
		po.ForceCompressionFormat = true
	default:
		return "", fmt.Errorf("layer compression %q: use gzip or zstd", o.Compression)
	}
	_, d, err := buildah.Push(ctx, imageID, ref, po)
	if err != nil {
		return "", fmt.Errorf("exporting to %s: %w", dest, err)
	}
	return d.String(), nil
}

// NormalizeTag turns a user's tag into a store name: "app" becomes
// "localhost/app:latest"; names with a registry host are kept.
func NormalizeTag(tag string) (string, error) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return "", fmt.Errorf("bad tag %q: %w", tag, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return "", fmt.Errorf("bad tag %q: a tag cannot carry a digest", tag)
	}
	first, _, _ := strings.Cut(tag, "/")
	if !strings.ContainsAny(first, ".:") && first != "localhost" || !strings.Contains(tag, "/") {
		named, err = reference.ParseNormalizedNamed("localhost/" + tag)
		if err != nil {
			return "", fmt.Errorf("bad tag %q: %w", tag, err)
		}
	}
	return reference.TagNameOnly(named).String(), nil
}

// Tag adds name to the image imageID in the store.
func (r *Runtime) Tag(imageID, name string) error {
	if err := r.store.AddNames(imageID, []string{name}); err != nil {
		return fmt.Errorf("tagging %s: %w", name, err)
	}
	return nil
}

// ManifestDigest returns the digest of the stored image's manifest.
func (r *Runtime) ManifestDigest(imageID string) (string, error) {
	img, err := r.store.Image(imageID)
	if err != nil {
		return "", fmt.Errorf("reading image %s: %w", imageID, err)
	}
	return img.Digest.String(), nil
}

// exportUncompressed copies the image to a local destination with its
// layers as the store holds them: uncompressed tars. (Buildah's Push
// cannot: it does not pass the OCI "accept uncompressed" setting.)
func (r *Runtime) exportUncompressed(ctx context.Context, imageID, dest string, ref types.ImageReference, sc *types.SystemContext, report io.Writer) (string, error) {
	switch ref.Transport().Name() {
	case "oci", "oci-archive", "docker-archive":
	default:
		return "", fmt.Errorf("exporting to %s: uncompressed layers are for oci:, oci-archive: and docker-archive: outputs", dest)
	}
	src, err := istorage.Transport.NewStoreReference(r.store, nil, imageID)
	if err != nil {
		return "", fmt.Errorf("exporting to %s: %w", dest, err)
	}
	sc.OCIAcceptUncompressedLayers = true
	pc, err := policyContext(sc)
	if err != nil {
		return "", err
	}
	defer func() { _ = pc.Destroy() }()
	mt := "application/vnd.oci.image.manifest.v1+json"
	if ref.Transport().Name() == "docker-archive" {
		mt = "application/vnd.docker.distribution.manifest.v2+json"
	}
	man, err := copy.Image(ctx, pc, ref, src, &copy.Options{
		SourceCtx: sc, DestinationCtx: sc, ReportWriter: report,
		ForceManifestMIMEType: mt,
	})
	if err != nil {
		return "", fmt.Errorf("exporting to %s: %w", dest, err)
	}
	d, err := manifest.Digest(man)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
