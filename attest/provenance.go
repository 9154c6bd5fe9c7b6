package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/stratabuild/strata/layers"
)

// In-toto and SLSA names.
const (
	// StatementType is the in-toto statement version strata writes.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateSLSAProvenance is SLSA provenance v1.
	PredicateSLSAProvenance = "https://slsa.dev/provenance/v1"
	// PredicateSPDX is an SPDX document (the SBOM, SPDX 2.3 JSON).
	PredicateSPDX = "https://spdx.dev/Document"
	// BuildType names strata's provenance format: the parameters and
	// step recipes described in the package doc.
	BuildType = "https://github.com/stratabuild/strata/attest/build/v1"
	// BuilderID identifies strata as the builder.
	BuilderID = "https://github.com/stratabuild/strata"
)

// Statement is an in-toto statement.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Subject is one artifact a statement is about.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Provenance is a SLSA provenance v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built and from what.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	InternalParameters   InternalParameters   `json:"internalParameters"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ExternalParameters are the inputs the user gave.
type ExternalParameters struct {
	// Definition is "dockerfile", "spec" (a spec file, package spec) or
	// "chain" (a Go chain).
	Definition string `json:"definition"`
	// Dockerfile is set for a Dockerfile build.
	Dockerfile *DockerfileParameters `json:"dockerfile,omitempty"`
	// Spec is set for a spec-file build.
	Spec *SpecParameters `json:"spec,omitempty"`
	// Platform is the platform built ("linux/amd64").
	Platform string `json:"platform"`
	// Format is "oci" or "docker".
	Format string `json:"format"`
	// SourceDateEpoch is the build's SOURCE_DATE_EPOCH, if any.
	SourceDateEpoch *int64 `json:"sourceDateEpoch,omitempty"`
	// ReproducibleCleanup: the RUN steps' volatile files were removed.
	ReproducibleCleanup bool `json:"reproducibleCleanup,omitempty"`
}

// DockerfileParameters describe a Dockerfile build.
type DockerfileParameters struct {
	// File is the Dockerfile's path relative to the context ("" when it
	// lies outside the context: its content is then known by digest only).
	File string `json:"file,omitempty"`
	// Digest is the SHA-256 of the Dockerfile's content.
	Digest string `json:"digest"`
	// Target is the stage built ("" for the last one).
	Target string `json:"target,omitempty"`
	// BuildArgs are the --build-arg values given.
	BuildArgs map[string]string `json:"buildArgs,omitempty"`
	// Network is the RUN network asked for ("none"), or "".
	Network string `json:"network,omitempty"`
	// Secrets are the names of the secrets given to every RUN (never
	// their values).
	Secrets []string `json:"secrets,omitempty"`
}

// SpecParameters describe a spec-file build.
type SpecParameters struct {
	// File is the spec file's path relative to the directory its
	// relative paths resolve against ("" when it lies outside).
	File string `json:"file,omitempty"`
	// Digest is the SHA-256 of its content.
	Digest string `json:"digest"`
}

// InternalParameters hold strata's recipes.
type InternalParameters struct {
	// RecipeVersion is layers.RecipeVersion of the builder.
	RecipeVersion int `json:"recipeVersion"`
	// Chains are the step chains built: the images copied from (stages,
	// COPY --from images) first, the image's own chain last.
	Chains []Chain `json:"chains"`
}

// Chain is one chain of steps from a base.
type Chain struct {
	Steps []Step `json:"steps"`
}

// Step is one step's recipe: what its cache key digests.
type Step struct {
	Index  int         `json:"index"`
	Method string      `json:"method"`
	Key    layers.Key  `json:"key"`
	Parent layers.Key  `json:"parent,omitempty"`
	Spec   layers.Spec `json:"spec"`
	// Trees list the files of the step's local inputs.
	Trees []layers.Tree `json:"trees,omitempty"`
}

// Recipe returns the step as a layers.Recipe (for layers.Diff).
func (s Step) Recipe() layers.Recipe {
	return layers.Recipe{Key: s.Key, Parent: s.Parent, Index: s.Index, Method: s.Method, Spec: s.Spec, Trees: s.Trees}
}

// ResourceDescriptor names one dependency by digest.
type ResourceDescriptor struct {
	Name   string            `json:"name,omitempty"`
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest"`
}

// RunDetails say who built it.
type RunDetails struct {
	Builder  Builder   `json:"builder"`
	Metadata *Metadata `json:"metadata,omitempty"`
}

// Builder identifies the builder.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// Metadata are the build's times (left out when SOURCE_DATE_EPOCH is
// set, so that the provenance is reproducible too).
type Metadata struct {
	StartedOn  *time.Time `json:"startedOn,omitempty"`
	FinishedOn *time.Time `json:"finishedOn,omitempty"`
}

// Digests splits "sha256:<hex>" into an in-toto digest set.
func Digests(d string) map[string]string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" || hex == "" {
		return nil
	}
	return map[string]string{alg: hex}
}

// NewStatement wraps p in a statement about the manifest digest of name.
func NewStatement(name, manifestDigest string, p *Provenance) ([]byte, error) {
	pb, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding provenance: %w", err)
	}
	return NewStatementOf(name, manifestDigest, PredicateSLSAProvenance, pb)
}

// NewStatementOf wraps a predicate (JSON) of predicateType in a statement
// about the manifest digest of name.
func NewStatementOf(name, manifestDigest, predicateType string, predicate []byte) ([]byte, error) {
	ds := Digests(manifestDigest)
	if ds == nil {
		return nil, fmt.Errorf("attestation subject %q: not a digest", manifestDigest)
	}
	if !json.Valid(predicate) {
		return nil, fmt.Errorf("the %s predicate is not JSON", predicateType)
	}
	b, err := json.Marshal(Statement{Type: StatementType, Subject: []Subject{{Name: name, Digest: ds}},
		PredicateType: predicateType, Predicate: predicate})
	if err != nil {
		return nil, fmt.Errorf("encoding the %s statement: %w", predicateType, err)
	}
	return b, nil
}

// ErrNotProvenance is returned by ParseProvenance for a statement that
// is not a strata provenance.
var ErrNotProvenance = errors.New("not a strata provenance")

// ParseProvenance reads a statement holding a strata provenance and
// checks that it is about manifestDigest (when not "").
func ParseProvenance(data []byte, manifestDigest string) (*Statement, *Provenance, error) {
	var st Statement
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, nil, fmt.Errorf("provenance does not parse: %w", err)
	}
	if st.Type != StatementType {
		return nil, nil, fmt.Errorf("provenance: statement type %q, want %q: %w", st.Type, StatementType, ErrNotProvenance)
	}
	if st.PredicateType != PredicateSLSAProvenance {
		return nil, nil, fmt.Errorf("provenance: predicate type %q, want %q: %w", st.PredicateType, PredicateSLSAProvenance, ErrNotProvenance)
	}
	var p Provenance
	if err := json.Unmarshal(st.Predicate, &p); err != nil {
		return nil, nil, fmt.Errorf("provenance predicate does not parse: %w", err)
	}
	if p.BuildDefinition.BuildType != BuildType {
		return nil, nil, fmt.Errorf("provenance: build type %q, want %q: %w", p.BuildDefinition.BuildType, BuildType, ErrNotProvenance)
	}
	if manifestDigest != "" {
		want := Digests(manifestDigest)
		found := false
		for _, s := range st.Subject {
			if len(s.Digest) > 0 && maps.Equal(s.Digest, want) {
				found = true
			}
		}
		if !found {
			return nil, nil, fmt.Errorf("provenance is about %s, not the image %s", subjectsText(st.Subject), manifestDigest)
		}
	}
	if len(p.BuildDefinition.InternalParameters.Chains) == 0 {
		return nil, nil, errors.New("provenance lists no steps")
	}
	return &st, &p, nil
}

func subjectsText(ss []Subject) string {
	var out string
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		for alg, h := range s.Digest {
			out += alg + ":" + h
		}
	}
	if out == "" {
		return "no subject"
	}
	return out
}

// KeyError says that a recorded step's key does not follow from its
// recorded recipe.
type KeyError struct {
	Chain, Step int
	Method      string
	Recorded    layers.Key
	Computed    layers.Key
	Reason      string
}

func (e *KeyError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("provenance chain %d step %d (%s): %s", e.Chain, e.Step, e.Method, e.Reason)
	}
	return fmt.Sprintf("provenance chain %d step %d (%s): recorded key %s, but its recipe gives %s", e.Chain, e.Step, e.Method, e.Recorded.Short(), e.Computed.Short())
}

// Check recomputes every recorded key from its recorded parent and spec:
// a provenance whose keys do not follow from its recipes was not written
// by a strata of this recipe version, or was changed after.
func (p *Provenance) Check() error {
	ip := p.BuildDefinition.InternalParameters
	if ip.RecipeVersion != layers.RecipeVersion {
		return fmt.Errorf("provenance has recipe version %d; this strata computes version %d keys (build again with this version, or verify with the strata that built it)", ip.RecipeVersion, layers.RecipeVersion)
	}
	var errs []error
	for ci, c := range ip.Chains {
		var parent layers.Key
		for si, s := range c.Steps {
			if si > 0 && s.Parent != parent {
				errs = append(errs, &KeyError{Chain: ci, Step: s.Index, Method: s.Method, Recorded: s.Key,
					Reason: fmt.Sprintf("parent %s is not the key of the step before (%s)", s.Parent.Short(), parent.Short())})
			}
			k, err := layers.Compute(s.Parent, s.Spec)
			switch {
			case err != nil:
				errs = append(errs, &KeyError{Chain: ci, Step: s.Index, Method: s.Method, Recorded: s.Key, Reason: err.Error()})
			case k != s.Key:
				errs = append(errs, &KeyError{Chain: ci, Step: s.Index, Method: s.Method, Recorded: s.Key, Computed: k})
			}
			parent = s.Key
		}
	}
	return errors.Join(errs...)
}
