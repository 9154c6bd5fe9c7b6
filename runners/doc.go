// Package runners executes strata's steps with Buildah: it opens the
// containers/storage store, imports bases, creates one working container per
// step, runs commands in it (rootless, with runc, in the host network
// namespace), copies local files, sets image config, and commits the result.
//
// A step's commands run through one `runc run` each, with a runtime spec
// this package writes as Buildah's Run would (ocirun.go; a GPU step, and
// every step under STRATA_BUILDAH_RUN=1, goes through Buildah's Run), a
// local COPY/ADD is written by this package (copydirect.go), and a
// COPY/ADD-only step's layer is made of the working container's own files
// rather than written again by the commit (staged.go).
//
// A program that uses this package must call InitReexec first thing in main;
// see its doc. Buildah's types never leave this package: callers describe a
// step with the plain Step struct.
//
// This package never decides whether a step runs; it runs what it is given.
package runners
