// Package layers computes strata's cache keys and stores the mapping from a
// key to the committed image that holds that step's result.
//
// # Key format (recipe version 1)
//
// A step's key is the SHA-256 digest, written "sha256:<hex>", of the JSON
// document
//
//	{"v":2,"parent":"<parent key>","spec":<Spec>}
//
// encoded by encoding/json (struct fields in declaration order, map keys
// sorted, no insignificant whitespace, HTML escaping on). The base of a chain
// has no parent; its Spec has Kind "base" and names the resolved content
// digest of the base (a manifest digest for registry and OCI-layout bases,
// the SHA-256 of the file for archives, the image ID for FromID, or "scratch").
// A local input enters a Spec as its destination plus the content digest that
// package mount computes over the files that survive the ignore patterns; the
// host path it was read from is not part of the key.
//
// What never enters a key: secret values (only their names), absolute host
// paths, timestamps, host facts (GPU UUIDs, driver versions), proxy settings.
//
// Because the encoding is plain JSON over documented fields, a key can be
// reproduced by hand with any JSON encoder that sorts map keys.
//
// # Remote cache
//
// Entries shared through a registry are images tagged <repo>:<key hex>;
// the format is described in remote.go (RemoteTag, RemoteKeyAnnotation).
//
// This package never runs a step and never imports Buildah.
package layers
