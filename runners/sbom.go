package runners

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// SBOMOptions name what an SBOM describes.
type SBOMOptions struct {
	// Tool is the strata-sbom binary.
	Tool string
	// Name and Version name the image (a reference, a digest).
	Name, Version string
	// Builder and BuilderVersion name strata in the SBOM.
	Builder, BuilderVersion string
}

// SBOM returns the SPDX 2.3 JSON SBOM of the image imageID: the image's
// root filesystem is mounted read-only and catalogued by o.Tool
// (strata-sbom, module github.com/stratabuild/strata/sbom), then
// unmounted.
func (r *Runtime) SBOM(ctx context.Context, imageID string, o SBOMOptions) ([]byte, error) {
	dir, err := r.store.MountImage(imageID, []string{"ro"}, "")
	if err != nil {
		return nil, fmt.Errorf("mounting image %s for its SBOM: %w", shortID(imageID), err)
	}
	defer func() { _, _ = r.store.UnmountImage(imageID, false) }()
	args := []string{"--name", o.Name, "--version", o.Version}
	if o.Builder != "" {
		args = append(args, "--tool", o.Builder, "--tool-version", o.BuilderVersion)
	}
	cmd := exec.CommandContext(ctx, o.Tool, append(args, dir)...)
	var out bytes.Buffer
	tail := newTailWriter(10)
	cmd.Stdout, cmd.Stderr = &out, tail
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("cataloging image %s with %s: %w: %s", shortID(imageID), o.Tool, err, strings.Join(tail.Lines(), " / "))
	}
	return out.Bytes(), nil
}
