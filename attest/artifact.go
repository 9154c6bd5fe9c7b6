package attest

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types and annotations of strata's attestation artifacts.
const (
	// MediaTypeInToto is the artifact type of an attestation and the
	// media type of its one layer (an in-toto statement).
	MediaTypeInToto = "application/vnd.in-toto+json"
	// AnnotationPredicateType names the statement's predicate type on
	// the layer and on the manifest (as BuildKit and cosign write it).
	AnnotationPredicateType = "in-toto.io/predicate-type"
)

// Artifact is one attestation ready to be written: its manifest and the
// blobs the manifest names.
type Artifact struct {
	// PredicateType is the statement's predicate type.
	PredicateType string
	// Manifest is the OCI image manifest (artifactType
	// MediaTypeInToto, with a subject).
	Manifest []byte
	// Digest is the manifest's digest.
	Digest digest.Digest
	// Blobs are the config (the empty JSON) and the statement, by digest.
	Blobs map[digest.Digest][]byte
}

// Descriptor returns the artifact's descriptor as a referrers index lists
// it.
func (a *Artifact) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: v1.MediaTypeImageManifest, ArtifactType: MediaTypeInToto, Digest: a.Digest,
		Size: int64(len(a.Manifest)), Annotations: map[string]string{AnnotationPredicateType: a.PredicateType}}
}

// NewArtifact makes the artifact that carries statement (an in-toto
// statement with the given predicate type) for the manifest subject.
func NewArtifact(statement []byte, predicateType string, subject v1.Descriptor) (*Artifact, error) {
	if subject.Digest == "" || subject.Size == 0 || subject.MediaType == "" {
		return nil, fmt.Errorf("attestation subject %q: the digest, size and media type of the image manifest are needed", subject.Digest)
	}
	empty := v1.DescriptorEmptyJSON
	layer := v1.Descriptor{MediaType: MediaTypeInToto, Digest: digest.FromBytes(statement), Size: int64(len(statement)),
		Annotations: map[string]string{AnnotationPredicateType: predicateType}}
	sub := v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := v1.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    v1.MediaTypeImageManifest,
		ArtifactType: MediaTypeInToto,
		Config:       v1.Descriptor{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size},
		Layers:       []v1.Descriptor{layer},
		Subject:      &sub,
		Annotations:  map[string]string{AnnotationPredicateType: predicateType},
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding attestation manifest: %w", err)
	}
	return &Artifact{PredicateType: predicateType, Manifest: b, Digest: digest.FromBytes(b),
		Blobs: map[digest.Digest][]byte{empty.Digest: []byte("{}"), layer.Digest: statement}}, nil
}

// ReferrersTag is the tag the referrers tag schema gives the index of the
// artifacts that refer to the manifest d: "sha256-<hex>".
func ReferrersTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// Statement returns the statement an attestation manifest carries, from
// the blobs read by fetch, checking each blob's digest.
func StatementOf(manifest []byte, fetch func(digest.Digest) ([]byte, error)) (predicateType string, statement []byte, subject *v1.Descriptor, err error) {
	var m v1.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return "", nil, nil, fmt.Errorf("attestation manifest does not parse: %w", err)
	}
	if m.ArtifactType != MediaTypeInToto || len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeInToto {
		return "", nil, nil, fmt.Errorf("not an in-toto attestation (artifactType %q, %d layers)", m.ArtifactType, len(m.Layers))
	}
	l := m.Layers[0]
	b, err := fetch(l.Digest)
	if err != nil {
		return "", nil, nil, fmt.Errorf("reading attestation %s: %w", l.Digest, err)
	}
	if digest.FromBytes(b) != l.Digest {
		return "", nil, nil, fmt.Errorf("attestation blob %s: its content has digest %s", l.Digest, digest.FromBytes(b))
	}
	return l.Annotations[AnnotationPredicateType], b, m.Subject, nil
}
