package sbom

import (
	"context"
	"fmt"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/cataloging/pkgcataloging"
	"github.com/anchore/syft/syft/format"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/source"

	// The RPM database of newer distributions is SQLite.
	_ "modernc.org/sqlite"
)

// Options name what the SBOM describes.
type Options struct {
	// Name and Version name the image (its reference and manifest
	// digest): the SBOM says these, never the directory it was read from.
	Name, Version string
	// Tool and ToolVersion name the builder in the SBOM's creation info.
	Tool, ToolVersion string
}

// Generate catalogs the root filesystem at dir (absolute symbolic links
// resolve inside it, as in the image) with syft's installed-software
// catalogers and returns the SBOM as SPDX 2.3 JSON.
func Generate(ctx context.Context, dir string, o Options) ([]byte, error) {
	if o.Name == "" {
		o.Name = "image"
	}
	src, err := syft.GetSource(ctx, dir, syft.DefaultGetSourceConfig().WithSources("dir").WithBasePath(dir).
		WithAlias(source.Alias{Name: o.Name, Version: o.Version}))
	if err != nil {
		return nil, fmt.Errorf("reading the root filesystem: %w", err)
	}
	defer func() { _ = src.Close() }()
	cfg := syft.DefaultCreateSBOMConfig().
		// A root filesystem: the catalogers of installed software, as
		// for an image, not those of a source tree.
		WithCatalogerSelection(cataloging.NewSelectionRequest().WithDefaults(pkgcataloging.ImageTag)).
		WithoutFiles().
		// Packages and how they relate, not every file each owns (the
		// dpkg lists alone are megabytes); overlapping binaries are
		// still dropped in favour of the package that owns them.
		WithRelationshipsConfig(cataloging.RelationshipsConfig{PackageFileOwnership: false, PackageFileOwnershipOverlap: true, ExcludeBinaryPackagesWithFileOwnershipOverlap: true})
	if o.Tool != "" {
		cfg = cfg.WithTool(o.Tool, o.ToolVersion)
	}
	s, err := syft.CreateSBOM(ctx, src, cfg)
	if err != nil {
		return nil, fmt.Errorf("cataloging the root filesystem: %w", err)
	}
	enc, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.DefaultEncoderConfig())
	if err != nil {
		return nil, err
	}
	b, err := format.Encode(*s, enc)
	if err != nil {
		return nil, fmt.Errorf("encoding the SBOM: %w", err)
	}
	return b, nil
}
