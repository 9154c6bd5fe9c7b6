package runners

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/pkg/docker/config"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/pkg/tlsclientconfig"
	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/attest"
)

// Attachment is one artifact to attach to an exported image: an
// attestation made for the manifest Export wrote.
type Attachment = attest.Artifact

// AttachmentSubject returns the descriptor of the manifest digest d in the
// export destination dest (oci:DIR[:TAG] or docker://REF): the subject an
// attestation names. Other destinations hold no attachments.
func (r *Runtime) AttachmentSubject(ctx context.Context, dest string, d digest.Digest, auth *types.DockerAuthConfig) (v1.Descriptor, error) {
	switch tr, rest, _ := strings.Cut(dest, ":"); tr {
	case "oci":
		dir, _ := OCIDirOf(rest)
		return layoutDescriptor(dir, d)
	case "docker":
		c, err := r.remoteRepo(strings.TrimPrefix(rest, "//"), auth)
		if err != nil {
			return v1.Descriptor{}, err
		}
		desc, err := remote.Head(c.repo.Digest(d.String()), c.opts(ctx)...)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("reading %s@%s: %w", c.repo, d, err)
		}
		return v1.Descriptor{MediaType: string(desc.MediaType), Digest: d, Size: desc.Size}, nil
	}
	return v1.Descriptor{}, fmt.Errorf("%s holds no attestations: they go to oci: layouts and registries", dest)
}

// CanAttach reports whether dest can hold attachments.
func CanAttach(dest string) bool {
	return strings.HasPrefix(dest, "oci:") || strings.HasPrefix(dest, "docker://")
}

// Attach writes the artifacts beside the image they refer to in dest: into
// an oci: layout (their blobs, and the referrers index named
// "sha256-<hex of the subject>" in index.json) or to a registry (pushed by
// digest; where the registry lacks the referrers API, the index tagged
// "sha256-<hex>" is updated, as the OCI distribution spec's referrers tag
// schema says).
func (r *Runtime) Attach(ctx context.Context, dest string, subject digest.Digest, arts []*Attachment, auth *types.DockerAuthConfig) error {
	if len(arts) == 0 {
		return nil
	}
	switch tr, rest, _ := strings.Cut(dest, ":"); tr {
	case "oci":
		dir, _ := OCIDirOf(rest)
		return attachLayout(dir, subject, arts)
	case "docker":
		c, err := r.remoteRepo(strings.TrimPrefix(rest, "//"), auth)
		if err != nil {
			return err
		}
		return attachRemote(ctx, c, subject, arts)
	}
	return fmt.Errorf("%s holds no attestations: they go to oci: layouts and registries", dest)
}

// OCIDirOf splits an oci: reference "DIR[:TAG]" (without "oci:") as
// containers/image's oci transport does.
func OCIDirOf(ref string) (dir, tag string) {
	dir, tag, _ = strings.Cut(ref, ":")
	return dir, tag
}

func layoutDescriptor(dir string, d digest.Digest) (v1.Descriptor, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	desc, err := findDescriptor(ii, d, 0)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return desc, nil
}

// findDescriptor finds manifest d in an index or the indexes it lists.
func findDescriptor(ii ggcrv1.ImageIndex, d digest.Digest, depth int) (v1.Descriptor, error) {
	im, err := ii.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, m := range im.Manifests {
		if m.Digest.String() == d.String() {
			return v1.Descriptor{MediaType: string(m.MediaType), Digest: d, Size: m.Size}, nil
		}
	}
	if depth < 2 {
		for _, m := range im.Manifests {
			if !m.MediaType.IsIndex() {
				continue
			}
			child, err := ii.ImageIndex(m.Digest)
			if err != nil {
				continue
			}
			if desc, err := findDescriptor(child, d, depth+1); err == nil {
				return desc, nil
			}
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no manifest %s", d)
}

func hashOf(d digest.Digest) ggcrv1.Hash {
	return ggcrv1.Hash{Algorithm: d.Algorithm().String(), Hex: d.Encoded()}
}

// attachLayout writes the artifacts into the layout at dir.
func attachLayout(dir string, subject digest.Digest, arts []*Attachment) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	for _, a := range arts {
		for d, b := range a.Blobs {
			if err := p.WriteBlob(hashOf(d), io.NopCloser(bytes.NewReader(b))); err != nil {
				return fmt.Errorf("writing attestation to %s: %w", dir, err)
			}
		}
		if err := p.WriteBlob(hashOf(a.Digest), io.NopCloser(bytes.NewReader(a.Manifest))); err != nil {
			return fmt.Errorf("writing attestation to %s: %w", dir, err)
		}
	}
	tag := attest.ReferrersTag(subject)
	ii, err := p.ImageIndex()
	if err != nil {
		return fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex}
	for _, m := range im.Manifests {
		if m.Annotations[v1.AnnotationRefName] != tag {
			continue
		}
		b, err := p.Bytes(m.Digest)
		if err != nil {
			return fmt.Errorf("reading the referrers index %s of %s: %w", tag, dir, err)
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("the referrers index %s of %s does not parse: %w", tag, dir, err)
		}
	}
	idx.Manifests = mergeReferrers(idx.Manifests, arts)
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	d := digest.FromBytes(b)
	if err := p.WriteBlob(hashOf(d), io.NopCloser(bytes.NewReader(b))); err != nil {
		return fmt.Errorf("writing attestation to %s: %w", dir, err)
	}
	if err := p.RemoveDescriptors(match.Annotation(v1.AnnotationRefName, tag)); err != nil {
		return fmt.Errorf("updating %s/index.json: %w", dir, err)
	}
	if err := p.AppendDescriptor(ggcrv1.Descriptor{MediaType: ggcrtypes.OCIImageIndex, Digest: hashOf(d), Size: int64(len(b)),
		Annotations: map[string]string{v1.AnnotationRefName: tag}}); err != nil {
		return fmt.Errorf("updating %s/index.json: %w", dir, err)
	}
	return nil
}

// mergeReferrers adds the artifacts to a referrers list, replacing older
// attestations of the same predicate type (a rebuilt image's provenance
// replaces the one before), sorted by digest.
func mergeReferrers(list []v1.Descriptor, arts []*Attachment) []v1.Descriptor {
	for _, a := range arts {
		list = slices.DeleteFunc(list, func(d v1.Descriptor) bool {
			return d.Digest == a.Digest || d.ArtifactType == attest.MediaTypeInToto && d.Annotations[attest.AnnotationPredicateType] == a.PredicateType
		})
		list = append(list, a.Descriptor())
	}
	slices.SortFunc(list, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return list
}

// regConn reaches one repository with the credentials and TLS settings
// containers/image would use for it.
type regConn struct {
	ref  name.Reference
	repo name.Repository
	auth authn.Authenticator
	tr   http.RoundTripper
}

func (c *regConn) opts(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(c.auth), remote.WithTransport(c.tr)}
}

// client returns an HTTP client authorized for scope (push or pull) on
// the repository.
func (c *regConn) client(ctx context.Context, scope string) (*http.Client, error) {
	rt, err := transport.NewWithContext(ctx, c.repo.Registry, c.auth, c.tr, []string{c.repo.Scope(scope)})
	if err != nil {
		return nil, fmt.Errorf("reaching %s: %w", c.repo, err)
	}
	return &http.Client{Transport: rt}, nil
}

// remoteRepo returns the connection to the repository of ref.
func (r *Runtime) remoteRepo(ref string, auth *types.DockerAuthConfig) (*regConn, error) {
	sc := r.SystemContext()
	insecure := r.insecure
	if reg, err := sysregistriesv2.FindRegistry(sc, ref); err == nil && reg != nil && reg.Insecure {
		insecure = true
	}
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	parsed, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("registry reference %q: %w", ref, err)
	}
	repo := parsed.Context()
	host := repo.RegistryStr()
	var cred types.DockerAuthConfig
	if auth != nil {
		cred = *auth
	} else if cred, err = config.GetCredentials(sc, host); err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", host, err)
	}
	var a authn.Authenticator = authn.Anonymous
	if cred.Username != "" || cred.IdentityToken != "" {
		a = authn.FromConfig(authn.AuthConfig{Username: cred.Username, Password: cred.Password, IdentityToken: cred.IdentityToken})
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // the user asked for an insecure registry
	certDirs := []string{filepath.Join("/etc/containers/certs.d", host)}
	if home, err := os.UserHomeDir(); err == nil {
		certDirs = append([]string{filepath.Join(home, ".config/containers/certs.d", host)}, certDirs...)
	}
	if sc.DockerCertPath != "" {
		certDirs = []string{sc.DockerCertPath}
	}
	for _, d := range certDirs {
		if _, err := os.Stat(d); err == nil {
			if err := tlsclientconfig.SetupCertificates(d, tr.TLSClientConfig); err != nil {
				return nil, fmt.Errorf("certificates of %s in %s: %w", host, d, err)
			}
			break
		}
	}
	return &regConn{ref: parsed, repo: repo, auth: a, tr: tr}, nil
}

// attachRemote pushes the artifacts to repo.
func attachRemote(ctx context.Context, c *regConn, subject digest.Digest, arts []*Attachment) error {
	repo, opts := c.repo, c.opts(ctx)
	for _, a := range arts {
		for d, b := range a.Blobs {
			mt := ggcrtypes.MediaType(attest.MediaTypeInToto)
			if d == v1.DescriptorEmptyJSON.Digest {
				mt = ggcrtypes.MediaType(v1.MediaTypeEmptyJSON)
			}
			if err := remote.WriteLayer(repo, static.NewLayer(b, mt), opts...); err != nil {
				return fmt.Errorf("pushing attestation to %s: %w", repo, err)
			}
		}
	}
	client, err := c.client(ctx, transport.PushScope)
	if err != nil {
		return err
	}
	supported := false
	for _, a := range arts {
		hdr, err := putManifest(ctx, client, repo, a.Digest.String(), a.Manifest, v1.MediaTypeImageManifest)
		if err != nil {
			return fmt.Errorf("pushing attestation %s to %s: %w", a.Digest, repo, err)
		}
		if hdr.Get("OCI-Subject") == subject.String() {
			supported = true
		}
	}
	if supported {
		return nil // the registry keeps the referrers list
	}
	// The referrers tag schema: the index tagged sha256-<hex>.
	tag := attest.ReferrersTag(subject)
	idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex}
	b, status, err := getManifest(ctx, client, repo, tag, v1.MediaTypeImageIndex)
	switch {
	case err != nil:
		return fmt.Errorf("reading the referrers index %s:%s: %w", repo, tag, err)
	case status == http.StatusOK:
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("the referrers index %s:%s does not parse: %w", repo, tag, err)
		}
	}
	idx.Manifests = mergeReferrers(idx.Manifests, arts)
	b, err = json.Marshal(idx)
	if err != nil {
		return err
	}
	if _, err := putManifest(ctx, client, repo, tag, b, v1.MediaTypeImageIndex); err != nil {
		return fmt.Errorf("updating the referrers index %s:%s: %w", repo, tag, err)
	}
	return nil
}

func putManifest(ctx context.Context, c *http.Client, repo name.Repository, ref string, body []byte, mt string) (http.Header, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), ref)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mt)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK, http.StatusCreated, http.StatusAccepted); err != nil {
		return nil, err
	}
	return resp.Header, nil
}

func getManifest(ctx context.Context, c *http.Client, repo name.Repository, ref string, accept string) ([]byte, int, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), ref)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", accept)
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK, http.StatusNotFound); err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return b, resp.StatusCode, err
}

// Attestation is an attestation read back from where an image was
// exported.
type Attestation struct {
	// Digest is the attestation manifest's digest.
	Digest digest.Digest
	// PredicateType is the statement's predicate type.
	PredicateType string
	// Statement is the in-toto statement.
	Statement []byte
}

// Attestations reads the image src (oci:DIR[:TAG] or docker://REF; for
// an index, the manifest of platform, "" the host's) and the in-toto
// attestations that refer to its manifest.
func (r *Runtime) Attestations(ctx context.Context, src, platform string, auth *types.DockerAuthConfig) (v1.Descriptor, []Attestation, error) {
	if platform == "" {
		platform = HostPlatform
	}
	switch tr, rest, _ := strings.Cut(src, ":"); tr {
	case "oci":
		dir, tag := OCIDirOf(rest)
		return layoutAttestations(dir, tag, platform)
	case "docker":
		c, err := r.remoteRepo(strings.TrimPrefix(rest, "//"), auth)
		if err != nil {
			return v1.Descriptor{}, nil, err
		}
		return remoteAttestations(ctx, c, platform)
	}
	return v1.Descriptor{}, nil, fmt.Errorf("image %q: give oci:DIR[:TAG] or docker://REF (attestations are kept there)", src)
}

func layoutAttestations(dir, tag, platform string) (v1.Descriptor, []Attestation, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	var found []ggcrv1.Descriptor
	for _, m := range im.Manifests {
		rn := m.Annotations[v1.AnnotationRefName]
		if tag != "" && rn == tag || tag == "" && !strings.HasPrefix(rn, "sha256-") && m.ArtifactType == "" {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		what := "tag " + tag
		if tag == "" {
			what = "an image (name one: oci:" + dir + ":TAG)"
		}
		return v1.Descriptor{}, nil, fmt.Errorf("OCI layout %s: %d images with %s", dir, len(found), what)
	}
	subject, err := subjectOf(found[0], func() (ggcrv1.ImageIndex, error) { return ii.ImageIndex(found[0].Digest) }, platform)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	rt := attest.ReferrersTag(subject.Digest)
	var out []Attestation
	for _, m := range im.Manifests {
		if m.Annotations[v1.AnnotationRefName] != rt {
			continue
		}
		b, err := p.Bytes(m.Digest)
		if err != nil {
			return subject, nil, fmt.Errorf("reading the referrers index %s of %s: %w", rt, dir, err)
		}
		var idx v1.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return subject, nil, fmt.Errorf("the referrers index %s of %s does not parse: %w", rt, dir, err)
		}
		for _, d := range idx.Manifests {
			if d.ArtifactType != attest.MediaTypeInToto {
				continue
			}
			mb, err := p.Bytes(hashOf(d.Digest))
			if err != nil {
				return subject, nil, fmt.Errorf("reading attestation %s in %s: %w", d.Digest, dir, err)
			}
			a, err := readAttestation(d.Digest, mb, subject.Digest, func(bd digest.Digest) ([]byte, error) { return p.Bytes(hashOf(bd)) })
			if err != nil {
				return subject, nil, fmt.Errorf("OCI layout %s: %w", dir, err)
			}
			out = append(out, a)
		}
	}
	return subject, out, nil
}

func readAttestation(d digest.Digest, manifest []byte, subject digest.Digest, fetch func(digest.Digest) ([]byte, error)) (Attestation, error) {
	if digest.FromBytes(manifest) != d {
		return Attestation{}, fmt.Errorf("attestation manifest %s: its content has digest %s", d, digest.FromBytes(manifest))
	}
	pt, st, sub, err := attest.StatementOf(manifest, fetch)
	if err != nil {
		return Attestation{}, fmt.Errorf("attestation %s: %w", d, err)
	}
	if sub == nil || sub.Digest != subject {
		return Attestation{}, fmt.Errorf("attestation %s names another subject than %s", d, subject)
	}
	return Attestation{Digest: d, PredicateType: pt, Statement: st}, nil
}

// subjectOf is the manifest an attestation of top is about: top itself,
// or for an index (read by index) its manifest for platform.
func subjectOf(top ggcrv1.Descriptor, index func() (ggcrv1.ImageIndex, error), platform string) (v1.Descriptor, error) {
	if top.MediaType.IsIndex() {
		ii, err := index()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("reading the index %s: %w", top.Digest, err)
		}
		im, err := ii.IndexManifest()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("reading the index %s: %w", top.Digest, err)
		}
		if top, err = pickPlatform(im.Manifests, platform); err != nil {
			return v1.Descriptor{}, err
		}
	}
	return v1.Descriptor{MediaType: string(top.MediaType), Digest: digest.Digest(top.Digest.String()), Size: top.Size}, nil
}

// pickPlatform picks platform's manifest from an index's list.
func pickPlatform(list []ggcrv1.Descriptor, platform string) (ggcrv1.Descriptor, error) {
	var have []string
	for _, m := range list {
		if m.Platform == nil {
			continue
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if m.Platform.Variant != "" {
			p += "/" + m.Platform.Variant
		}
		if p == platform || m.Platform.Variant != "" && m.Platform.OS+"/"+m.Platform.Architecture == platform {
			return m, nil
		}
		have = append(have, p)
	}
	return ggcrv1.Descriptor{}, fmt.Errorf("the image index has no %s image (it has %s): pick one with --platform", platform, strings.Join(have, ", "))
}

func remoteAttestations(ctx context.Context, c *regConn, platform string) (v1.Descriptor, []Attestation, error) {
	opts := c.opts(ctx)
	ref := c.ref.String()
	desc, err := remote.Get(c.ref, opts...)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	subject, err := subjectOf(desc.Descriptor, desc.ImageIndex, platform)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("%s: %w", ref, err)
	}
	refs, err := remote.Referrers(c.repo.Digest(subject.Digest.String()), opts...)
	if err != nil {
		return subject, nil, fmt.Errorf("listing the referrers of %s@%s: %w", c.repo, subject.Digest, err)
	}
	im, err := refs.IndexManifest()
	if err != nil {
		return subject, nil, fmt.Errorf("listing the referrers of %s@%s: %w", c.repo, subject.Digest, err)
	}
	var out []Attestation
	for _, m := range im.Manifests {
		if m.ArtifactType != attest.MediaTypeInToto {
			continue
		}
		md, err := remote.Get(c.repo.Digest(m.Digest.String()), opts...)
		if err != nil {
			return subject, nil, fmt.Errorf("reading attestation %s@%s: %w", c.repo, m.Digest, err)
		}
		fetch := func(bd digest.Digest) ([]byte, error) {
			l, err := remote.Layer(c.repo.Digest(bd.String()), opts...)
			if err != nil {
				return nil, err
			}
			rc, err := l.Compressed()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			return io.ReadAll(io.LimitReader(rc, 256<<20))
		}
		a, err := readAttestation(digest.Digest(m.Digest.String()), md.Manifest, subject.Digest, fetch)
		if err != nil {
			return subject, nil, fmt.Errorf("%s: %w", c.repo, err)
		}
		out = append(out, a)
	}
	return subject, out, nil
}

// IndexManifests returns the manifests the index d in dest (oci:DIR[:TAG]
// or docker://REF) lists, by platform ("os/arch[/variant]").
func (r *Runtime) IndexManifests(ctx context.Context, dest string, d digest.Digest, auth *types.DockerAuthConfig) (map[string]v1.Descriptor, error) {
	var im *ggcrv1.IndexManifest
	switch tr, rest, _ := strings.Cut(dest, ":"); tr {
	case "oci":
		dir, _ := OCIDirOf(rest)
		p, err := layout.FromPath(dir)
		if err != nil {
			return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
		}
		ii, err := p.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
		}
		child, err := ii.ImageIndex(hashOf(d))
		if err != nil {
			return nil, fmt.Errorf("reading the index %s in %s: %w", d, dir, err)
		}
		if im, err = child.IndexManifest(); err != nil {
			return nil, fmt.Errorf("reading the index %s in %s: %w", d, dir, err)
		}
	case "docker":
		c, err := r.remoteRepo(strings.TrimPrefix(rest, "//"), auth)
		if err != nil {
			return nil, err
		}
		idx, err := remote.Index(c.repo.Digest(d.String()), c.opts(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("reading the index %s@%s: %w", c.repo, d, err)
		}
		if im, err = idx.IndexManifest(); err != nil {
			return nil, fmt.Errorf("reading the index %s@%s: %w", c.repo, d, err)
		}
	default:
		return nil, fmt.Errorf("%s holds no attestations: they go to oci: layouts and registries", dest)
	}
	out := map[string]v1.Descriptor{}
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if m.Platform.Variant != "" {
			p += "/" + m.Platform.Variant
		}
		out[p] = v1.Descriptor{MediaType: string(m.MediaType), Digest: digest.Digest(m.Digest.String()), Size: m.Size}
	}
	return out, nil
}
