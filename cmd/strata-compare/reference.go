package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// reference is the builder strata is compared with: it imports the base
// images strata exported, and builds a job into the OCI layout
// dir/<name>, its image named "out".
type reference interface {
	name() string
	// base makes FROM name give the image strata exported to layout:name.
	base(layout, name string) error
	// build runs timed's sequence (cold build, no-change rebuild, export,
	// edited rebuild) for j.
	build(j job, dir string, t *timings, edit string) error
	// remove stops the reference and deletes its store.
	remove()
}

func newReference(c config) (reference, error) {
	switch c.ref {
	case "", "buildah":
		return newBuildah(filepath.Join(c.work, "buildah"))
	case "buildkit":
		return newBuildkit(filepath.Join(c.work, "buildkit"), c.tools)
	}
	return nil, fmt.Errorf("-ref %q: use buildah or buildkit", c.ref)
}

// cleanOldReference removes the store an earlier run left under work:
// files of sub-uids that only the reference's user namespace can remove.
func cleanOldReference(work string) {
	if _, err := os.Stat(filepath.Join(work, "buildah")); err == nil {
		if old, err := newBuildah(filepath.Join(work, "buildah")); err == nil {
			old.remove()
		}
	}
	if _, err := os.Stat(filepath.Join(work, "buildkit")); err == nil {
		removeInUserNS(filepath.Join(work, "buildkit"))
	}
}
