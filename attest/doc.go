// Package attest holds the attestations strata writes beside an image: an
// in-toto statement with a SLSA provenance v1 predicate made from the
// build's recipes, and the OCI 1.1 artifact manifests that carry them.
//
// # Provenance
//
// A strata provenance is a SLSA v1 predicate whose buildType is BuildType.
// Its externalParameters say what the user gave (the Dockerfile, its
// target and build arguments, the platform, the format); its
// internalParameters hold the recipe of every step: the step's kind,
// arguments, variables, options, secret names (never values), input
// digests with their file lists, the parent key and the cache key, in the
// key format package layers documents. resolvedDependencies lists every
// base image by digest and every local input by content digest.
//
// Because the recipes are the keys' own inputs, a second party can check a
// provenance by recomputing it: [Provenance.Check] recomputes every key
// from the recorded specs, and builder's Session.Verify plans the
// definition again from the source and compares key by key.
//
// # Where attestations go
//
// Each attestation is an OCI 1.1 artifact: an image manifest with
// artifactType [MediaTypeInToto], the empty config, one layer holding the
// statement, and a subject naming the image manifest it describes.
// Registries find them through the referrers API, or through the referrers
// tag schema ("sha256-<hex of the subject>", an image index) where the
// registry lacks that API; an OCI layout holds that index under the same
// name.
package attest
