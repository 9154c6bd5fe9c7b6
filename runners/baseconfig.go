package runners

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
)

// ImageConfig is an image's config as a Dockerfile stage inherits it: the
// OCI fields, and Docker's SHELL (Docker-format images only).
type ImageConfig struct {
	v1.ImageConfig
	Shell []string
}

// BaseConfig returns the image config of b: what a Dockerfile stage
// inherits from its base (environment, working directory, user, shell).
// Scratch, rootfs tarballs and Debian bootstraps have an empty config
// (nil).
func (r *Resolver) BaseConfig(ctx context.Context, b Base) (*ImageConfig, error) {
	var ref types.ImageReference
	sc := r.sysCtx(b)
	switch b.Kind {
	case BaseScratch, BaseDebian:
		return nil, nil
	case BaseRegistry:
		ab, err := b.withAuth(ctx)
		if err != nil {
			return nil, err
		}
		sc = r.sysCtx(ab)
		named, err := ParseRegistryRef(b.Ref)
		if err != nil {
			return nil, err
		}
		if ref, err = docker.NewReference(named); err != nil {
			return nil, fmt.Errorf("bad image reference %q: %w", b.Ref, err)
		}
	case BaseArchive:
		t, err := r.archiveKind(b.Ref)
		if err != nil {
			return nil, err
		}
		if t == "tarball" {
			return nil, nil
		}
		if ref, err = alltransports.ParseImageName(t + ":" + b.Ref); err != nil {
			return nil, fmt.Errorf("base archive %s: %w", b.Ref, err)
		}
	case BaseOCILayout:
		lr, err := layoutRef(b.Ref)
		if err != nil {
			return nil, err
		}
		if ref, err = layout.ParseReference(lr); err != nil {
			return nil, fmt.Errorf("OCI layout %s: %w", b.Ref, err)
		}
	case BaseID:
		if r.Store == nil {
			return nil, fmt.Errorf("FromID needs an open session (use Session.Plan or Session.Build)")
		}
		img, err := r.Store.Image(b.Ref)
		if err != nil {
			return nil, fmt.Errorf("image %q not found in the store: %w", b.Ref, err)
		}
		if ref, err = istorage.Transport.NewStoreReference(r.Store, nil, img.ID); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown base kind %q", b.Kind)
	}
	src, err := ref.NewImageSource(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", b.Ref, err)
	}
	defer src.Close()
	raw, mt, err := src.GetManifest(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", b.Ref, err)
	}
	var img types.Image
	if manifest.MIMETypeIsMultiImage(mt) {
		list, err := manifest.ListFromBlob(raw, mt)
		if err != nil {
			return nil, fmt.Errorf("reading the config of %s: %w", b.Ref, err)
		}
		d, err := list.ChooseInstance(sc)
		if err != nil {
			if windowsOnly(list) {
				return nil, fmt.Errorf("%s is a Windows image (every platform of it is windows): it cannot be built on Linux; use a Linux base", b.Ref)
			}
			return nil, fmt.Errorf("reading the config of %s: %w", b.Ref, err)
		}
		img, err = image.FromUnparsedImage(ctx, sc, image.UnparsedInstance(src, &d))
		if err != nil {
			return nil, fmt.Errorf("reading the config of %s: %w", b.Ref, err)
		}
	} else {
		if img, err = image.FromUnparsedImage(ctx, sc, image.UnparsedInstance(src, nil)); err != nil {
			return nil, fmt.Errorf("reading the config of %s: %w", b.Ref, err)
		}
	}
	oc, err := img.OCIConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", b.Ref, err)
	}
	if oc.OS == "windows" {
		return nil, fmt.Errorf("%s is a Windows image (os windows): it cannot be built on Linux; use a Linux base", b.Ref)
	}
	cfg := ImageConfig{ImageConfig: oc.Config}
	// A Docker-format config's SHELL and ONBUILD triggers, which the OCI
	// form drops: the shell as it is, the triggers in the label strata
	// keeps them in.
	var d struct {
		Config struct {
			OnBuild []string
			Shell   []string
		} `json:"config"`
	}
	if raw, err := img.ConfigBlob(ctx); err == nil && json.Unmarshal(raw, &d) == nil {
		cfg.Shell = d.Config.Shell
		if _, ok := cfg.Labels[OnBuildLabel]; !ok && len(d.Config.OnBuild) > 0 {
			j, _ := json.Marshal(d.Config.OnBuild)
			cfg.Labels = maps.Clone(cfg.Labels)
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			cfg.Labels[OnBuildLabel] = string(j)
		}
	}
	return &cfg, nil
}

// OnBuildLabel is the image label that holds a strata image's ONBUILD
// triggers as a JSON list: OCI image configs have no ONBUILD field. A
// Dockerfile whose base carries it (or Docker's own ONBUILD) runs the
// triggers first, as Docker does.
const OnBuildLabel = "org.stratabuild.onbuild"

// OnBuildOf returns the ONBUILD triggers recorded in labels.
func OnBuildOf(labels map[string]string) []string {
	var t []string
	if v, ok := labels[OnBuildLabel]; ok {
		_ = json.Unmarshal([]byte(v), &t)
	}
	return t
}

// windowsOnly reports whether every instance of list is for Windows.
func windowsOnly(list manifest.List) bool {
	ds := list.Instances()
	for _, d := range ds {
		inst, err := list.Instance(d)
		if err != nil || inst.ReadOnly.Platform == nil || inst.ReadOnly.Platform.OS != "windows" {
			return false
		}
	}
	return len(ds) > 0
}
