package attest_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stratabuild/strata/attest"
	"github.com/stratabuild/strata/layers"
)

// chain builds a recorded chain whose keys follow from its specs.
func chain(t *testing.T, specs ...layers.Spec) attest.Chain {
	t.Helper()
	var c attest.Chain
	var parent layers.Key
	for i, s := range specs {
		k, err := layers.Compute(parent, s)
		if err != nil {
			t.Fatal(err)
		}
		c.Steps = append(c.Steps, attest.Step{Index: i, Method: string(s.Kind), Key: k, Parent: parent, Spec: s})
		parent = k
	}
	return c
}

func sample(t *testing.T) *attest.Provenance {
	return &attest.Provenance{
		BuildDefinition: attest.BuildDefinition{
			BuildType:          attest.BuildType,
			ExternalParameters: attest.ExternalParameters{Definition: "chain", Platform: "linux/amd64", Format: "oci"},
			InternalParameters: attest.InternalParameters{RecipeVersion: layers.RecipeVersion, Chains: []attest.Chain{chain(t,
				layers.Spec{Kind: layers.KindBase, Args: []string{"sha256:" + strings.Repeat("a", 64)}},
				layers.Spec{Kind: layers.KindRun, Args: []string{"echo hi > /hi"}, Shell: []string{"/bin/sh", "-c"}},
				layers.Spec{Kind: layers.KindEnv, Env: map[string]string{"A": "1"}},
			)}},
		},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: attest.BuilderID}},
	}
}

const subjectDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestStatementRoundTrip(t *testing.T) {
	p := sample(t)
	b, err := attest.NewStatement("app:1", subjectDigest, p)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["_type"] != attest.StatementType || raw["predicateType"] != attest.PredicateSLSAProvenance {
		t.Errorf("statement header: %v %v", raw["_type"], raw["predicateType"])
	}
	_, got, err := attest.ParseProvenance(b, subjectDigest)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Check(); err != nil {
		t.Errorf("Check of an untouched provenance: %v", err)
	}
	if n := len(got.BuildDefinition.InternalParameters.Chains[0].Steps); n != 3 {
		t.Errorf("%d steps read back, want 3", n)
	}
}

func TestParseProvenanceRefuses(t *testing.T) {
	good, err := attest.NewStatement("app:1", subjectDigest, sample(t))
	if err != nil {
		t.Fatal(err)
	}
	other := sample(t)
	other.BuildDefinition.BuildType = "https://example.com/other-builder"
	otherB, _ := attest.NewStatement("app:1", subjectDigest, other)
	for _, tc := range []struct {
		name, data, digest, want string
		notProvenance            bool
	}{
		{"garbage", "{not json", subjectDigest, "does not parse", false},
		{"another subject", string(good), "sha256:" + strings.Repeat("2", 64), "not the image sha256:2222", false},
		{"another builder", string(otherB), subjectDigest, "build type", true},
		{"not a statement", `{"_type":"x"}`, subjectDigest, "statement type", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := attest.ParseProvenance([]byte(tc.data), tc.digest)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if errors.Is(err, attest.ErrNotProvenance) != tc.notProvenance {
				t.Errorf("errors.Is(ErrNotProvenance) = %v, want %v", !tc.notProvenance, tc.notProvenance)
			}
		})
	}
}

func TestCheckFindsChangedRecipes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *attest.Provenance)
		want   string
	}{
		{"command changed", func(p *attest.Provenance) {
			p.BuildDefinition.InternalParameters.Chains[0].Steps[1].Spec.Args[0] = "echo bye > /hi"
		}, "step 1 (run): recorded key"},
		{"parent replaced", func(p *attest.Provenance) {
			p.BuildDefinition.InternalParameters.Chains[0].Steps[2].Parent = layers.Key("sha256:" + strings.Repeat("b", 64))
		}, "step 2 (env): parent bbbbbbbbbbbb is not the key of the step before"},
		{"key replaced", func(p *attest.Provenance) {
			p.BuildDefinition.InternalParameters.Chains[0].Steps[0].Key = layers.Key("sha256:" + strings.Repeat("c", 64))
		}, "step 0 (base): recorded key cccccccccccc"},
		{"another recipe version", func(p *attest.Provenance) {
			p.BuildDefinition.InternalParameters.RecipeVersion = layers.RecipeVersion + 1
		}, "recipe version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := sample(t)
			tc.change(p)
			err := p.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestArtifact(t *testing.T) {
	st, err := attest.NewStatement("app:1", subjectDigest, sample(t))
	if err != nil {
		t.Fatal(err)
	}
	sub := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.Digest(subjectDigest), Size: 123}
	a, err := attest.NewArtifact(st, attest.PredicateSLSAProvenance, sub)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != attest.MediaTypeInToto || m.Subject == nil || m.Subject.Digest != sub.Digest || m.Subject.Size != 123 {
		t.Errorf("manifest: artifactType %q subject %+v", m.ArtifactType, m.Subject)
	}
	if m.Config.Digest != v1.DescriptorEmptyJSON.Digest || string(a.Blobs[m.Config.Digest]) != "{}" {
		t.Errorf("config %+v is not the empty JSON blob", m.Config)
	}
	if a.Digest != digest.FromBytes(a.Manifest) {
		t.Errorf("Digest %s is not the manifest's", a.Digest)
	}
	fetch := func(d digest.Digest) ([]byte, error) { return a.Blobs[d], nil }
	pt, got, gotSub, err := attest.StatementOf(a.Manifest, fetch)
	if err != nil || pt != attest.PredicateSLSAProvenance || string(got) != string(st) || gotSub.Digest != sub.Digest {
		t.Fatalf("StatementOf: %q %v %v", pt, gotSub, err)
	}
	// A statement blob that was replaced is found out.
	bad := func(d digest.Digest) ([]byte, error) { return []byte(`{"_type":"forged"}`), nil }
	if _, _, _, err := attest.StatementOf(a.Manifest, bad); err == nil || !strings.Contains(err.Error(), "its content has digest") {
		t.Errorf("StatementOf with a replaced blob: %v", err)
	}
	if _, err := attest.NewArtifact(st, attest.PredicateSLSAProvenance, v1.Descriptor{Digest: sub.Digest}); err == nil {
		t.Error("NewArtifact took a subject without size and media type")
	}
	if got := attest.ReferrersTag(sub.Digest); got != "sha256-"+strings.Repeat("1", 64) {
		t.Errorf("ReferrersTag = %s", got)
	}
}
