// Package runners executes strata's steps with Buildah: it opens the
// containers/storage store, imports bases, creates one working container per
// step, runs commands in it (rootless, with runc, in the host network
// namespace), copies local files, sets image config, and commits the result.
//
// A program that uses this package must call InitReexec first thing in main;
// see its doc. Buildah's types never leave this package: callers describe a
// step with the plain Step struct.
//
// This package never decides whether a step runs; it runs what it is given.
package runners
