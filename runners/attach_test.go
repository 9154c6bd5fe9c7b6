package runners

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stratabuild/strata/attest"
)

// A layout with one tagged image, as an export leaves it.
func testLayout(t *testing.T) (dir string, subject v1.Descriptor) {
	t.Helper()
	dir = t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{v1.AnnotationRefName: "v1"})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	desc, err := layoutDescriptor(dir, digest.Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	return dir, desc
}

func statement(t *testing.T, subject v1.Descriptor, note string) *Attachment {
	t.Helper()
	st := []byte(`{"_type":"` + attest.StatementType + `","note":"` + note + `"}`)
	a, err := attest.NewArtifact(st, attest.PredicateSLSAProvenance, subject)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAttachLayout(t *testing.T) {
	dir, sub := testLayout(t)
	if err := attachLayout(dir, sub.Digest, []*Attachment{statement(t, sub, "first")}); err != nil {
		t.Fatal(err)
	}
	// A second build's provenance replaces the first.
	second := statement(t, sub, "second")
	if err := attachLayout(dir, sub.Digest, []*Attachment{second}); err != nil {
		t.Fatal(err)
	}
	got, atts, err := layoutAttestations(dir, "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != sub.Digest {
		t.Errorf("subject %s, want %s", got.Digest, sub.Digest)
	}
	if len(atts) != 1 || atts[0].Digest != second.Digest || !strings.Contains(string(atts[0].Statement), "second") {
		t.Fatalf("attestations read back: %+v", atts)
	}
	// index.json: the image, and one referrers index named by the
	// subject's digest (the tag schema's name).
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range idx.Manifests {
		names = append(names, m.Annotations[v1.AnnotationRefName])
	}
	if want := []string{"v1", attest.ReferrersTag(sub.Digest)}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("index.json names %q, want %q", names, want)
	}
}

func TestLayoutAttestationsRefusesForgery(t *testing.T) {
	dir, sub := testLayout(t)
	a := statement(t, sub, "x")
	if err := attachLayout(dir, sub.Digest, []*Attachment{a}); err != nil {
		t.Fatal(err)
	}
	// Replace the statement blob's content in place.
	var m v1.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "blobs", "sha256", m.Layers[0].Digest.Encoded())
	if err := os.WriteFile(blob, []byte(`{"_type":"forged"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := layoutAttestations(dir, "v1", ""); err == nil || !strings.Contains(err.Error(), "its content has digest") {
		t.Fatalf("a replaced statement was read: %v", err)
	}
}

func TestMergeReferrers(t *testing.T) {
	sub := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("img"), Size: 10}
	other := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, ArtifactType: "application/vnd.example.sig", Digest: digest.FromString("sig"), Size: 5}
	a, b := statement(t, sub, "a"), statement(t, sub, "b")
	list := mergeReferrers([]v1.Descriptor{other}, []*Attachment{a})
	list = mergeReferrers(list, []*Attachment{b})
	if len(list) != 2 {
		t.Fatalf("%d referrers, want the other artifact and the newest provenance: %+v", len(list), list)
	}
	found := map[digest.Digest]bool{}
	for _, d := range list {
		found[d.Digest] = true
	}
	if !found[other.Digest] || !found[b.Digest] || found[a.Digest] {
		t.Errorf("referrers %+v: want %s and %s", list, other.Digest, b.Digest)
	}
}
