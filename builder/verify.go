package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stratabuild/strata/attest"
	"github.com/stratabuild/strata/layers"
)

// Verification is what Session.Verify found.
type Verification struct {
	// Image is the image checked, as given; ManifestDigest the manifest
	// whose provenance was read.
	Image, ManifestDigest string
	// Provenance is the provenance read.
	Provenance *attest.Provenance
	// Steps are the recorded steps, dependency chains first (as in the
	// provenance), each with its verdict.
	Steps []StepVerification
	// Notes say what was checked another way (a base that no longer
	// resolves, a provenance of another strata).
	Notes []string
	// OK is true when every recorded key follows from its recipe and
	// every step's key reproduces from the source.
	OK bool
}

// StepVerification is one recorded step and whether its key reproduces.
type StepVerification struct {
	// Chain is the chain's position in the provenance; Image is true for
	// the image's own chain (the last).
	Chain int
	Image bool
	Index int
	// Method is the recorded step's method.
	Method string
	// Recorded is the key in the provenance; Computed the key planned
	// from the source now ("" when the source has no such step).
	Recorded, Computed layers.Key
	// Same is true when they are equal.
	Same bool
	// Why says how the step differs, in Session.Explain's words (the
	// inputs, the files), or why its recorded key cannot be trusted.
	Why string
}

// Name says which step this is: "step 3 (COPY)", or "chain 0 step 3
// (COPY)" for a chain the image copies from.
func (v StepVerification) Name() string {
	if v.Image {
		return fmt.Sprintf("step %d (%s)", v.Index, v.Method)
	}
	return fmt.Sprintf("chain %d step %d (%s)", v.Chain, v.Index, v.Method)
}

// ReadProvenance reads the strata provenance attached to image
// (oci:DIR[:TAG] or docker://REF). For an image index it reads the
// manifest of the platform given with Platforms (default: the host's).
// It returns the provenance and the manifest digest it is about. With
// RequireSignedBy, the image and the provenance must carry sigstore
// signatures by that key (docker:// images only).
func (s *Session) ReadProvenance(ctx context.Context, image string, opts ...BuildOption) (*attest.Provenance, string, error) {
	bo, err := planOptions("ReadProvenance", opts, "Platforms", "PushAuth", "RequireSignedBy")
	if err != nil {
		return nil, "", err
	}
	if bo.verifyKey != "" && !strings.HasPrefix(image, "docker://") {
		return nil, "", fmt.Errorf("RequireSignedBy: %s is not in a registry: signatures are kept beside pushed images (docker://REF)", image)
	}
	sub, atts, err := s.rt.Attestations(ctx, image, bo.platform, bo.pushAuth)
	if err != nil {
		return nil, "", fmt.Errorf("reading the attestations of %s: %w", image, err)
	}
	d := sub.Digest.String()
	var perr error
	for _, a := range atts {
		if a.PredicateType != attest.PredicateSLSAProvenance {
			continue
		}
		_, pv, err := attest.ParseProvenance(a.Statement, d)
		if err == nil {
			if bo.verifyKey != "" {
				if err := s.checkSigned(ctx, image, d, a.Digest.String(), bo); err != nil {
					return nil, d, err
				}
			}
			return pv, d, nil
		}
		if !errors.Is(err, attest.ErrNotProvenance) {
			perr = fmt.Errorf("image %s (%s): attestation %s: %w", image, layers.ShortDigest(d), a.Digest, err)
		}
	}
	if perr != nil {
		return nil, d, perr
	}
	return nil, d, fmt.Errorf("image %s (%s) has no strata provenance attached (built with --provenance=false or NoProvenance, or by another builder)", image, layers.ShortDigest(d))
}

// RequireSignedBy makes Verify and ReadProvenance check that the image
// (as its reference names it, and its platform's manifest) and its
// provenance carry sigstore signatures by the public key in
// publicKeyFile, as a policy.json sigstoreSigned requirement would. The
// registry's registries.d entry must say use-sigstore-attachments: true.
func RequireSignedBy(publicKeyFile string) BuildOption {
	return named("RequireSignedBy", func(o *buildOptions) { o.verifyKey = publicKeyFile })
}

// checkSigned checks the signatures of image, of its manifest d and of
// the attestation att.
func (s *Session) checkSigned(ctx context.Context, image, d, att string, bo buildOptions) error {
	repo := repoOf(image)
	refs := []string{image}
	if !strings.HasSuffix(image, "@"+d) {
		refs = append(refs, repo+"@"+d)
	}
	for _, ref := range refs {
		if err := s.rt.CheckSigned(ctx, ref, bo.verifyKey, bo.pushAuth); err != nil {
			return fmt.Errorf("image %s: %w", image, err)
		}
	}
	if err := s.rt.CheckSigned(ctx, repo+"@"+att, bo.verifyKey, bo.pushAuth); err != nil {
		return fmt.Errorf("image %s: its provenance %s: %w", image, att, err)
	}
	return nil
}

// Verify checks the provenance attached to image (oci:DIR[:TAG] or
// docker://REF) against img, the definition it says it was built from:
// every recorded key must follow from its recorded recipe, and planning
// img here (with the recorded platform, format, SOURCE_DATE_EPOCH and
// ReproducibleCleanup) must give the same key for every step. A step that differs
// is named with what differs, in Session.Explain's words (for a local
// input, the files). Nothing is built or written. A base that no longer
// resolves is planned with its recorded digest and reported in Notes.
// It takes Platforms (which image of an index), PushAuth (the
// registry's credentials, default auth.json) and RequireSignedBy.
func (s *Session) Verify(ctx context.Context, img Image, image string, opts ...BuildOption) (*Verification, error) {
	bo, err := planOptions("Verify", opts, "Platforms", "PushAuth", "RequireSignedBy")
	if err != nil {
		return nil, err
	}
	pv, d, err := s.ReadProvenance(ctx, image, opts...)
	if err != nil {
		return nil, err
	}
	return s.VerifyProvenance(ctx, img, pv, image, d, bo.platform)
}

// VerifyProvenance is Verify with the provenance already read (for the
// image of name and manifest digest d), planning for platform ("" the
// recorded one).
func (s *Session) VerifyProvenance(ctx context.Context, img Image, pv *attest.Provenance, name, d, platform string) (*Verification, error) {
	v := &Verification{Image: name, ManifestDigest: d, Provenance: pv, OK: true}
	ext := pv.BuildDefinition.ExternalParameters
	if platform == "" {
		platform = ext.Platform
	}
	format := ""
	if ext.Format == "docker" {
		format = "docker"
	}
	bad := map[[2]int]string{}
	if err := pv.Check(); err != nil {
		v.OK = false
		var ke *attest.KeyError
		for _, e := range unjoin(err) {
			if errors.As(e, &ke) {
				bad[[2]int{ke.Chain, ke.Step}] = "the recorded key does not follow from the recorded recipe (the provenance was changed after the build, or written by another strata): " + ke.Error()
			} else {
				v.Notes = append(v.Notes, e.Error())
			}
		}
	}
	if img.Err() != nil {
		return nil, img.Err()
	}
	if dp := ext.Dockerfile; dp != nil {
		if df := img.root().df; df != nil && df.method == "FromDockerfile" {
			if d := "sha256:" + sha256Hex(df.data); d != dp.Digest {
				v.Notes = append(v.Notes, fmt.Sprintf("the Dockerfile %s is not the one built (%s here, %s recorded)", df.name, layers.ShortDigest(d), layers.ShortDigest(dp.Digest)))
			}
		} else {
			v.Notes = append(v.Notes, "the image was built from a Dockerfile; the definition given is not one")
		}
	}
	// The recorded settings that enter keys, not this session's.
	var sde *time.Time
	if ext.SourceDateEpoch != nil {
		t := time.Unix(*ext.SourceDateEpoch, 0).UTC()
		sde = &t
	}
	pe := newPlanEnv(s.resolver, sde, s.mountRoot)
	pe.cleanup = ext.ReproducibleCleanup
	pe.format, pe.platform = format, platform
	pe.digests = s.digests
	if platform == hostPlatform() {
		pe.platform = ""
	}
	pe.recordedBases = recordedBases(pv)
	p, err := plan(ctx, img, pe)
	_ = s.digests.Save()
	if err != nil {
		return nil, fmt.Errorf("planning the definition to verify %s: %w", name, err)
	}
	v.Notes = append(v.Notes, pe.baseNotes...)
	planned := chainsOf(p)
	recorded := pv.BuildDefinition.InternalParameters.Chains
	// Chains pair from the end: the image's own chain is last in both.
	for ci, c := range recorded {
		pi := len(planned) - len(recorded) + ci
		var q *Plan
		if pi >= 0 {
			q = planned[pi]
		}
		for si, rs := range c.Steps {
			sv := StepVerification{Chain: ci, Image: ci == len(recorded)-1, Index: rs.Index, Method: rs.Method, Recorded: rs.Key}
			switch {
			case bad[[2]int{ci, rs.Index}] != "":
				sv.Why = bad[[2]int{ci, rs.Index}]
			case q == nil || si >= len(q.Steps):
				sv.Why = "the definition has no such step now"
			default:
				ps := q.Steps[si]
				sv.Computed = ps.Key
				sv.Same = ps.Key == rs.Key
				if !sv.Same {
					sv.Why = verifyWhy(rs, ps, q, si)
				}
			}
			if !sv.Same {
				v.OK = false
			}
			v.Steps = append(v.Steps, sv)
		}
		if q != nil && len(q.Steps) > len(c.Steps) {
			v.OK = false
			v.Notes = append(v.Notes, fmt.Sprintf("chain %d: the definition has %d steps now, the provenance %d", ci, len(q.Steps), len(c.Steps)))
		}
	}
	if len(planned) != len(recorded) {
		v.OK = false
		v.Notes = append(v.Notes, fmt.Sprintf("the definition builds %d chains now, the provenance records %d", len(planned), len(recorded)))
	}
	return v, nil
}

// verifyWhy says how planned step ps (step si of q) differs from the
// recorded rs.
func verifyWhy(rs attest.Step, ps PlannedStep, q *Plan, si int) string {
	cur := layers.Recipe{Key: ps.Key, Index: ps.Index, Method: ps.Method, Spec: ps.Spec, Trees: ps.trees}
	if si > 0 {
		cur.Parent = q.Steps[si-1].Key
	}
	lines := layers.Diff(rs.Recipe(), cur)
	if rs.Parent != cur.Parent && si > 0 {
		lines = append([]string{fmt.Sprintf("parent changed (step %d differs)", q.Steps[si-1].Index)}, lines...)
	}
	if len(lines) == 0 {
		return "the key differs, the recipe does not (another recipe version?)"
	}
	return strings.Join(lines, "; ")
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// recordedBases are the base digests a provenance records, by method.
func recordedBases(pv *attest.Provenance) map[string][]string {
	out := map[string][]string{}
	for _, c := range pv.BuildDefinition.InternalParameters.Chains {
		if len(c.Steps) > 0 && c.Steps[0].Spec.Kind == layers.KindBase && len(c.Steps[0].Spec.Args) == 1 {
			out[c.Steps[0].Method] = append(out[c.Steps[0].Method], c.Steps[0].Spec.Args[0])
		}
	}
	return out
}
