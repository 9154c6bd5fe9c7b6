// Package imagediff reads an image from an OCI layout and compares two
// images the way a user checks them: the flattened root filesystem (names,
// types, modes, owners, link targets, device numbers and content digests)
// and the runtime config (Env, WorkingDir, User, Entrypoint, Cmd, Labels,
// ExposedPorts, Volumes, StopSignal) with the image's Author.
//
// It never compares times (file mtimes, the image's creation time,
// history): two builders never agree on those. Loading also checks the
// image the way a registry client would: every blob matches its digest and
// every layer's uncompressed digest matches the config's diff ID.
//
// It depends only on the standard library, the OCI image-spec types and a
// zstd decoder; it imports nothing from strata and never runs a builder.
package imagediff
