// Package mount reads local inputs of a build: it walks files and
// directories under dockerignore-style patterns (moby/patternmatcher) and
// computes content digests that go into cache keys.
//
// A digest covers, for every entry that survives the patterns, in sorted
// order: its path relative to the source, its type, its permission bits
// (setuid, setgid and sticky included), a symlink's target and a regular
// file's SHA-256. It never covers modification times or the owner (files are
// copied into images owned by root, so the host owner cannot change the
// result). Symlinks are recorded, never followed. Names and link targets
// that are not valid UTF-8 enter the digest as raw bytes, so no two
// different names digest alike.
//
// This package never writes to the files it reads and never imports Buildah.
package mount
