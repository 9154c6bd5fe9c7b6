// Package runners executes strata's steps with Buildah: it opens the
// containers/storage store, imports bases, creates one working container per
// step, runs commands in it (rootless, with runc, in the host network
// namespace), copies local files, sets image config, and commits the result.
//
// A step's commands run through one `runc run` each, with a runtime spec
// this package writes as Buildah's Run would (ocirun.go; a GPU step, and
// every step under STRATA_BUILDAH_RUN=1, goes through Buildah's Run), a
// local COPY/ADD is written by this package (copydirect.go), and a step's
// image is written by this package too (directcommit.go): its layer is the
// working container's upper directory moved into the store, not written
// again, and its manifest and config are Buildah's, made as for an empty
// layer, with the layer added. Where that does not apply (a GPU step,
// SOURCE_DATE_EPOCH, another storage driver, STRATA_NO_STAGED_LAYERS=1)
// Buildah's commit writes the layer, a COPY/ADD step's from hard links to
// the container's files (staged.go).
//
// A program that uses this package must call InitReexec first thing in main;
// see its doc. Buildah's types never leave this package: callers describe a
// step with the plain Step struct.
//
// This package never decides whether a step runs; it runs what it is given.
package runners
