// Package sbom writes an SPDX 2.3 JSON software bill of materials of a
// root filesystem with Anchore's syft: Debian packages (the dpkg
// database), Python packages (dist-info, egg-info), Go binaries (their
// build information) and the other installed-software catalogers syft runs
// on images.
//
// It is a Go module of its own (github.com/stratabuild/strata/sbom): syft
// and its dependencies are large and pin containers/image and
// containers/storage versions of their own, so strata's core never links
// them. strata runs its command, strata-sbom (sbom/cmd/strata-sbom), on
// the mounted root filesystem of the image it built (builder.SBOM).
package sbom
