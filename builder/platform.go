package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/containerd/platforms"

	"github.com/stratabuild/strata/runners"
)

// hostPlatform is this machine's platform as images name it
// ("linux/amd64").
func hostPlatform() string { return runners.HostPlatform }

// normalizePlatform parses an OS/architecture[/variant] name
// ("linux/arm64", "linux/arm/v7", "arm64") into its canonical form.
func normalizePlatform(p string) (string, error) {
	spec, err := platforms.Parse(p)
	if err != nil {
		return "", fmt.Errorf("platform %q: %w", p, err)
	}
	return platforms.Format(platforms.Normalize(spec)), nil
}

// Platforms builds for the given platforms instead of the host's
// ("linux/arm64", docker buildx build --platform a,b). Registry bases are
// taken for each platform from their index, each image says its platform
// in its config, and steps on another architecture run through the host's
// emulator (qemu-user-static registered with binfmt_misc; a build that
// needs one that is missing fails before any container starts). The
// platform enters every step's key, so runners of several architectures
// can share one cache. With one platform the result is that platform's
// image; with several, an image index (an OCI index, or a Docker manifest
// list in the docker Format) of one image per platform, built as many at
// once as there are cores: WithTag names the index in the store (a manifest list, as
// buildah manifest makes), ExportTo and Push write the index with every
// image (docker-archive: cannot hold one), and Result.Platforms gives each
// platform's image and steps.
func Platforms(ps ...string) BuildOption {
	return named("Platforms", func(o *buildOptions) {
		if len(ps) == 0 {
			o.err = fmt.Errorf("Platforms: no platform given")
			return
		}
		o.platforms = nil
		for _, p := range ps {
			n, err := normalizePlatform(p)
			if err != nil {
				o.err = fmt.Errorf("Platforms: %w", err)
				return
			}
			if n == hostPlatform() {
				n = ""
			}
			if !slices.Contains(o.platforms, n) {
				o.platforms = append(o.platforms, n)
			}
		}
		o.platform = o.platforms[0]
	})
}

// PlatformResult is one platform's image of a multi-platform build.
type PlatformResult struct {
	// Platform is "os/arch[/variant]".
	Platform string
	// ImageID and ManifestDigest name the platform's image in the store.
	ImageID, ManifestDigest string
	// Steps are the platform's steps, as Result.Steps.
	Steps []StepResult
}

// buildPlatforms builds img once per platform of bo, as many at once as
// the machine has cores (the steps of one platform are independent of
// another's; a step both share, with one key, runs once), then makes the
// index of their images, names it and writes it out.
func (s *Session) buildPlatforms(ctx context.Context, img Image, bo buildOptions, tags []string, sg *runners.SigstoreSigner) (*Result, error) {
	res := &Result{Platforms: make([]PlatformResult, len(bo.platforms))}
	pvs := make([]*attestations, len(bo.platforms))
	errs := make([]error, len(bo.platforms))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(1, runtime.NumCPU()))
	var wg sync.WaitGroup
	for i, p := range bo.platforms {
		one := bo
		one.platform, one.platforms, one.tags, one.exports = p, nil, nil, nil
		one.wantProvenance = (!bo.noProvenance || bo.sbom != "") && slices.ContainsFunc(bo.exports, getsAttestations)
		one.sign = nil
		name := p
		if name == "" {
			name = hostPlatform()
		}
		if bo.output != nil {
			one.output = &prefixWriter{w: bo.output, prefix: "[" + name + "] "}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := s.build(ctx, img, one)
			if err != nil {
				errs[i] = fmt.Errorf("[%s] %w", name, err)
				cancel() // the others stop: the index cannot be made
				return
			}
			res.Platforms[i] = PlatformResult{Platform: name, ImageID: r.ImageID, ManifestDigest: r.ManifestDigest, Steps: r.Steps}
			pvs[i] = r.attest
		}()
	}
	wg.Wait()
	var ids []string
	for i := range bo.platforms {
		if errs[i] != nil && !errors.Is(errs[i], context.Canceled) {
			return nil, errs[i]
		}
	}
	for i := range bo.platforms {
		if errs[i] != nil {
			return nil, errs[i]
		}
		ids = append(ids, res.Platforms[i].ImageID)
	}
	id, d, err := s.rt.Index(ctx, ids, tags, bo.format == "docker")
	if err != nil {
		return nil, err
	}
	res.ImageID, res.ManifestDigest, res.Tags = id, d, tags
	pr := newProgress(bo.output, 0, bo.progressFn)
	for _, dest := range bo.exports {
		w := pr.noteWriter("[export] ")
		ed, err := s.rt.ExportIndex(ctx, id, dest, w, runners.ExportOptions{Auth: bo.pushAuth, Compression: bo.compression, Format: bo.format})
		flushOutput(w)
		if err != nil {
			return nil, err
		}
		pr.printf("exported the index of %d platforms to %s\n", len(ids), dest)
		noteUnattested(dest, bo, pr)
		byPlatform := map[string]*attestations{}
		for i, pv := range pvs {
			if pv != nil {
				byPlatform[res.Platforms[i].Platform] = pv
			}
		}
		atts, err := s.attestIndex(ctx, dest, ed, byPlatform, bo.pushAuth, pr)
		if err != nil {
			return nil, err
		}
		if err := s.signPush(ctx, sg, dest, ed, atts, bo.pushAuth, pr); err != nil {
			return nil, err
		}
		res.Exports = append(res.Exports, Export{Dest: dest, ManifestDigest: ed, Attestations: atts})
	}
	return res, nil
}

// prefixWriter puts prefix before every line written to w (a platform's
// progress in a multi-platform build).
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	mid    bool // within a line
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for _, c := range b {
		if !p.mid {
			out = append(out, p.prefix...)
			p.mid = true
		}
		out = append(out, c)
		if c == '\n' {
			p.mid = false
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// archOf is the architecture of an "os/arch[/variant]" platform.
func archOf(platform string) string {
	_, arch, _ := runners.SplitPlatform(platform)
	return arch
}
