package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/attest"
	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// NoProvenance leaves the provenance attestation out of the build's
// outputs. By default every tagged oci: layout (oci:DIR:TAG) and every
// push gets one: an
// in-toto statement with a SLSA provenance v1 predicate made from the
// build's step recipes (package attest), attached as an OCI 1.1 artifact
// whose subject is the image manifest written there. It never holds a
// secret's value, a registry password, or a host path outside the
// context. (oci-archive: and docker-archive: files hold no attachments.)
func NoProvenance() BuildOption {
	return named("NoProvenance", func(o *buildOptions) { o.noProvenance = true })
}

// DefinedBySpec records in the provenance that the image was defined by the
// spec file at path (package spec), whose relative paths resolve against
// dir: its path relative to dir and its digest, so that strata verify
// reads it again from the context it is given. strata build --spec gives
// it.
func DefinedBySpec(path, dir string) BuildOption {
	return named("DefinedBySpec", func(o *buildOptions) {
		data, err := os.ReadFile(path)
		if err != nil {
			o.err = fmt.Errorf("DefinedBySpec: %w", err)
			return
		}
		o.specFile, o.specDir, o.specDigest = path, dir, "sha256:"+sha256Hex(data)
	})
}

// Attestation is one attestation written beside an export.
type Attestation struct {
	// PredicateType says what it holds (attest.PredicateSLSAProvenance).
	PredicateType string
	// Digest is the digest of its artifact manifest in the destination.
	Digest string
	// Platform, in a multi-platform build, is the platform of the
	// manifest it is about.
	Platform string
}

// strataVersion is the module version of strata in this binary.
func strataVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if bi.Main.Path == "github.com/stratabuild/strata" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/stratabuild/strata" {
			return d.Version
		}
	}
	return "unknown"
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// chainsOf lists p and every plan it copies from, dependencies first.
func chainsOf(p *Plan) []*Plan {
	var out []*Plan
	seen := map[*Plan]bool{}
	var visit func(*Plan)
	visit = func(q *Plan) {
		if seen[q] {
			return
		}
		seen[q] = true
		for _, st := range q.Steps {
			for _, d := range st.deps {
				visit(d)
			}
		}
		out = append(out, q)
	}
	visit(p)
	return out
}

// provenanceSteps turns a plan's steps into the recorded recipes.
func provenanceSteps(p *Plan) []attest.Step {
	var out []attest.Step
	var parent layers.Key
	for i, st := range p.Steps {
		s := attest.Step{Index: st.Index, Method: st.Method, Key: st.Key, Spec: st.Spec, Trees: st.trees}
		if i > 0 {
			s.Parent = parent
		}
		parent = st.Key
		out = append(out, s)
	}
	return out
}

// provenanceOf makes the provenance predicate of the build of img (its
// plan p) for one platform.
func (s *Session) provenanceOf(img Image, p *Plan, bo buildOptions, platform string, started, finished time.Time) *attest.Provenance {
	ext := attest.ExternalParameters{Definition: "chain", Platform: platform, Format: "oci"}
	if platform == "" {
		ext.Platform = hostPlatform()
	}
	if bo.format != "" {
		ext.Format = bo.format
	}
	if s.sde != nil {
		e := s.sde.Unix()
		ext.SourceDateEpoch = &e
	}
	ext.ReproducibleCleanup = s.cleanup
	if df := img.root().df; df != nil && df.method == "FromDockerfile" {
		ext.Definition = "dockerfile"
		dp := &attest.DockerfileParameters{Digest: "sha256:" + sha256Hex(df.data), Target: df.opts.target}
		if rel, ok := relInside(df.ctxDir, df.name); ok {
			dp.File = rel
		}
		for k, v := range df.opts.buildArgs {
			// The proxy arguments enter no key and may hold credentials
			// (http://user:password@proxy): never recorded.
			if slices.Contains(dockerfile.ProxyArgs, k) {
				continue
			}
			if dp.BuildArgs == nil {
				dp.BuildArgs = map[string]string{}
			}
			dp.BuildArgs[k] = v
		}
		if df.opts.noNetwork {
			dp.Network = "none"
		}
		for _, sec := range df.opts.run.secrets {
			dp.Secrets = append(dp.Secrets, sec.Name())
		}
		ext.Dockerfile = dp
	}
	if bo.specFile != "" && ext.Definition == "chain" {
		ext.Definition = "spec"
		sp := &attest.SpecParameters{Digest: bo.specDigest}
		if rel, ok := relInside(bo.specDir, bo.specFile); ok {
			sp.File = rel
		}
		ext.Spec = sp
	}
	var chains []attest.Chain
	var deps []attest.ResourceDescriptor
	seenDep := map[string]bool{}
	for ci, q := range chainsOf(p) {
		steps := provenanceSteps(q)
		chains = append(chains, attest.Chain{Steps: steps})
		for _, st := range q.Steps {
			if st.Index == 0 && st.base != nil {
				if rd, ok := baseDependency(st); ok && !seenDep[rd.URI+rd.Name+st.Spec.Args[0]] {
					seenDep[rd.URI+rd.Name+st.Spec.Args[0]] = true
					deps = append(deps, rd)
				}
				continue
			}
			for _, in := range st.Spec.Inputs {
				if ds := attest.Digests(in.Digest); ds != nil && !strings.HasPrefix(in.Name, "from") && !strings.HasPrefix(in.Name, "bind-from") {
					deps = append(deps, attest.ResourceDescriptor{Name: fmt.Sprintf("chain %d step %d (%s) input %s", ci, st.Index, st.Method, in.Name), Digest: ds})
				}
			}
		}
	}
	pv := &attest.Provenance{
		BuildDefinition: attest.BuildDefinition{
			BuildType:            attest.BuildType,
			ExternalParameters:   ext,
			InternalParameters:   attest.InternalParameters{RecipeVersion: layers.RecipeVersion, Chains: chains},
			ResolvedDependencies: deps,
		},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: attest.BuilderID, Version: map[string]string{"strata": strataVersion()}}},
	}
	if s.sde == nil {
		st, fi := started.UTC(), finished.UTC()
		pv.RunDetails.Metadata = &attest.Metadata{StartedOn: &st, FinishedOn: &fi}
	}
	return pv
}

// baseDependency names a chain's base as a resolved dependency: registry
// bases by reference and digest, the others by digest only (their
// paths are the host's).
func baseDependency(st PlannedStep) (attest.ResourceDescriptor, bool) {
	b := st.base
	if b.Kind == runners.BaseScratch || len(st.Spec.Args) == 0 {
		return attest.ResourceDescriptor{}, false
	}
	ds := attest.Digests(st.Spec.Args[0])
	if ds == nil {
		return attest.ResourceDescriptor{}, false
	}
	rd := attest.ResourceDescriptor{Name: "base (" + st.Method + ")", Digest: ds}
	switch b.Kind {
	case runners.BaseRegistry:
		rd.URI = "docker://" + strings.TrimPrefix(b.Ref, "docker://")
	case runners.BaseDebian:
		if b.Debian != nil {
			rd.Name = "base (" + st.Method + " " + b.Debian.Suite + ")"
		}
	}
	return rd, true
}

// relInside returns path relative to dir when it lies inside dir.
func relInside(dir, path string) (string, bool) {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return "", false
	}
	rel, err := filepath.Rel(ad, ap)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// attestExport attaches the build's attestations to the image export
// wrote to dest (manifest digest d).
func (s *Session) attestExport(ctx context.Context, dest string, d string, pv *attestations, auth *types.DockerAuthConfig, pr *progress) ([]Attestation, error) {
	if pv.empty() || !getsAttestations(dest) {
		return nil, nil
	}
	sub, err := s.rt.AttachmentSubject(ctx, dest, digest.Digest(d), auth)
	if err != nil {
		return nil, fmt.Errorf("attesting %s: %w", dest, err)
	}
	return s.attach(ctx, dest, sub, pv, auth, pr)
}

// getsAttestations reports whether dest gets attestations: registries and
// tagged oci: layouts. An untagged layout stays a layout of one image
// (readers take it as oci:DIR only while index.json lists one manifest).
func getsAttestations(dest string) bool {
	if !runners.CanAttach(dest) {
		return false
	}
	if rest, ok := strings.CutPrefix(dest, "oci:"); ok {
		_, tag := runners.OCIDirOf(rest)
		return tag != ""
	}
	return true
}

// noteUnattested says that an untagged layout gets no attestations the
// build would otherwise write.
func noteUnattested(dest string, bo buildOptions, pr *progress) {
	if strings.HasPrefix(dest, "oci:") && !getsAttestations(dest) && (!bo.noProvenance || bo.sbom != "") {
		pr.printf("note: no attestation attached to %s: name a tag (oci:DIR:TAG) to get them (an untagged layout keeps one manifest)\n", dest)
	}
}

// attestIndex attaches each platform's attestations to its manifest in
// the index d that export wrote to dest.
func (s *Session) attestIndex(ctx context.Context, dest string, d string, pvs map[string]*attestations, auth *types.DockerAuthConfig, pr *progress) ([]Attestation, error) {
	if len(pvs) == 0 || !getsAttestations(dest) {
		return nil, nil
	}
	subs, err := s.rt.IndexManifests(ctx, dest, digest.Digest(d), auth)
	if err != nil {
		return nil, fmt.Errorf("attesting %s: %w", dest, err)
	}
	var out []Attestation
	for _, p := range slices.Sorted(maps.Keys(pvs)) {
		sub, ok := subs[p]
		if !ok && strings.Count(p, "/") == 1 {
			// The index may name a variant the platform did not
			// (linux/arm64/v8).
			for k, v := range subs {
				if strings.HasPrefix(k, p+"/") {
					sub, ok = v, true
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("attesting %s: the index written there has no %s manifest", dest, p)
		}
		atts, err := s.attach(ctx, dest, sub, pvs[p], auth, pr)
		if err != nil {
			return nil, err
		}
		for i := range atts {
			atts[i].Platform = p
		}
		out = append(out, atts...)
	}
	return out, nil
}

// attestations are what a build attaches to each image it writes out.
type attestations struct {
	pv   *attest.Provenance
	sbom []byte // SPDX JSON
}

func (a *attestations) empty() bool { return a == nil || a.pv == nil && a.sbom == nil }

// attach writes the attestations of set for the manifest sub in dest.
func (s *Session) attach(ctx context.Context, dest string, sub v1.Descriptor, set *attestations, auth *types.DockerAuthConfig, pr *progress) ([]Attestation, error) {
	d := sub.Digest.String()
	var arts []*runners.Attachment
	var words []string
	add := func(what, predicateType string, st []byte, err error) error {
		if err != nil {
			return err
		}
		art, err := attest.NewArtifact(st, predicateType, sub)
		if err != nil {
			return err
		}
		arts = append(arts, art)
		words = append(words, what)
		return nil
	}
	if set.pv != nil {
		st, err := attest.NewStatement(subjectName(dest), d, set.pv)
		if err := add("provenance", attest.PredicateSLSAProvenance, st, err); err != nil {
			return nil, err
		}
	}
	if set.sbom != nil {
		st, err := attest.NewStatementOf(subjectName(dest), d, attest.PredicateSPDX, set.sbom)
		if err := add("sbom", attest.PredicateSPDX, st, err); err != nil {
			return nil, err
		}
	}
	if err := s.rt.Attach(ctx, dest, sub.Digest, arts, auth); err != nil {
		return nil, fmt.Errorf("attesting %s (the image itself is written): %w; build with --provenance=false (NoProvenance) to write images without attestations", dest, err)
	}
	var out []Attestation
	for i, art := range arts {
		pr.printf("%s %s attached to %s (%s)\n", words[i], art.Digest, dest, layers.ShortDigest(d))
		out = append(out, Attestation{PredicateType: art.PredicateType, Digest: art.Digest.String()})
	}
	return out, nil
}

// subjectName names an export in its statement: a registry reference as
// given, an OCI layout by its tag only (its directory is the host's).
func subjectName(dest string) string {
	if ref, ok := strings.CutPrefix(dest, "docker://"); ok {
		return ref
	}
	_, rest, _ := strings.Cut(dest, ":")
	if _, tag := runners.OCIDirOf(rest); tag != "" {
		return tag
	}
	return "image"
}
