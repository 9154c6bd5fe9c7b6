package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// BuildOption configures one Build.
type BuildOption interface{ applyBuild(*buildOptions) }

type buildOptions struct {
	tags        []string
	exports     []string
	output      io.Writer
	session     []Option
	pushAuth    *types.DockerAuthConfig
	compression string
	format      string   // "docker", or "" for OCI
	platform    string   // Platforms: the target platform, "" for the host's
	platforms   []string // Platforms: every platform (several: an index)
	annotations map[string]string
	remote      remoteOptions     // CacheFrom, CacheTo, CacheAuth (remotecache.go)
	mounts      mountCacheOptions // CacheMountsTo, CacheMountsFrom (mountcache.go)
	progressFn  func(ProgressEvent)
	// noProvenance: NoProvenance; wantProvenance: a platform's build of a
	// multi-platform build returns its attestations (Result.attest)
	noProvenance, wantProvenance bool
	sign                         *signSpec // SignBy
	sbom                         string    // SBOM: the strata-sbom binary
	verifyKey                    string    // RequireSignedBy (Verify)
	// DefinedBySpec: the spec file, the directory its paths resolve against,
	// its digest
	specFile, specDir, specDigest string
	err                           error
	// ownSignals: WithoutSignalHandling; signalsWatched: the package-level
	// Build watches them for the whole session (signals.go).
	ownSignals, signalsWatched bool
	// fromBuild: the package-level Build calls Session.Build (WithSession
	// applies there); used: the names of the options given (named).
	fromBuild bool
	used      []string
}

type buildOption func(*buildOptions)

func (f buildOption) applyBuild(o *buildOptions) { f(o) }

// named is the BuildOption called name: the options record their names, so
// that one given where it does not apply is an error that names it.
func named(name string, f func(*buildOptions)) BuildOption {
	return buildOption(func(o *buildOptions) { o.used = append(o.used, name); f(o) })
}

// only returns an error naming the first option used that is not in
// allowed, for where.
func (o *buildOptions) only(where string, allowed ...string) error {
	for _, n := range o.used {
		if !slices.Contains(allowed, n) {
			return fmt.Errorf("%s does not apply to %s", n, where)
		}
	}
	return nil
}

// WithTag names the final image in the store ("app" is stored as
// "localhost/app:latest"). Default: no name. A failed build tags nothing.
func WithTag(name string) BuildOption {
	return named("WithTag", func(o *buildOptions) { o.tags = append(o.tags, name) })
}

// Format picks the image format of every step and of the result: "oci"
// (the default) or "docker" (Docker's schema 2, as buildah and podman
// build --format docker write it). In the docker format a Dockerfile's
// HEALTHCHECK, SHELL and ONBUILD are written to their native config
// fields (ONBUILD also to strata's label), pushes and docker-archive
// outputs are Docker manifests, and oci: layouts are converted to OCI. It
// enters every step's key.
func Format(format string) BuildOption {
	return named("Format", func(o *buildOptions) {
		switch format {
		case "oci":
			o.format = ""
		case "docker":
			o.format = "docker"
		default:
			o.err = fmt.Errorf("Format(%q): use oci or docker", format)
		}
	})
}

// Annotations sets annotations on the final image's manifest, as docker
// buildx build --annotation does (e.g. org.opencontainers.image.source,
// .revision, .created): in the store, in every ExportTo output and Push.
// They are the build's last step, keyed as one (a config-only step with
// no layer; its history entry says "strata: manifest annotations ...").
func Annotations(annotations map[string]string) BuildOption {
	return named("Annotations", func(o *buildOptions) {
		if o.annotations == nil {
			o.annotations = map[string]string{}
		}
		maps.Copy(o.annotations, annotations)
	})
}

// ExportTo writes the final image to dest after a successful build:
// "oci:DIR[:TAG]" (an OCI layout directory) or "oci-archive:FILE", or
// "docker-archive:FILE". Default: no export.
func ExportTo(dest string) BuildOption {
	return named("ExportTo", func(o *buildOptions) { o.exports = append(o.exports, dest) })
}

// Push pushes the final image to a registry after a successful build
// ("registry.example.com/team/app:1"), as ExportTo("docker://"+ref).
// Credentials come from PushAuth, or else from auth.json.
func Push(ref string) BuildOption {
	return named("Push", func(o *buildOptions) { o.exports = append(o.exports, "docker://"+strings.TrimPrefix(ref, "docker://")) })
}

// PushAuth pushes with the credentials in secret (its REGISTRY_USERNAME and
// REGISTRY_PASSWORD variables). Default: auth.json.
func PushAuth(secret Secret) BuildOption {
	return named("PushAuth", func(o *buildOptions) {
		var bo baseOptions
		WithRegistryAuth(secret).applyBase(&bo)
		o.pushAuth, o.err = bo.auth, bo.err
	})
}

// LayerCompression picks how exported and pushed layers are compressed:
// "gzip" (the default), "zstd", or "none" (uncompressed layers, for local
// outputs only: oci:, oci-archive:, docker-archive:; a build that also
// pushes with "none" fails before it starts).
func LayerCompression(c string) BuildOption {
	return named("LayerCompression", func(o *buildOptions) { o.compression = c })
}

// WithOutput streams progress lines and each step's command output, prefixed
// with the step's name, to w. Default: nothing is printed.
func WithOutput(w io.Writer) BuildOption {
	return named("WithOutput", func(o *buildOptions) { o.output = w })
}

// WithSession passes session options to the package-level Build, which
// opens its own session. Session.Build refuses it (give the options to
// Open).
func WithSession(opts ...Option) BuildOption {
	return named("WithSession", func(o *buildOptions) { o.session = append(o.session, opts...) })
}

// Result describes a finished build.
type Result struct {
	// ImageID is the final image's ID in the store.
	ImageID string
	// ManifestDigest is the digest of its manifest in the store.
	ManifestDigest string
	// Tags are the store names given with WithTag.
	Tags []string
	// Steps in the order they were built (base first).
	Steps []StepResult
	// Exports are the images ExportTo and Push wrote, in order.
	Exports []Export
	// Platforms, for a build of several platforms, gives each one's image;
	// ImageID and ManifestDigest are then the index's (a manifest list
	// image in the store).
	Platforms []PlatformResult

	attest *attestations // wantProvenance
}

// Export is one image written by ExportTo or Push.
type Export struct {
	// Dest is where: "oci:DIR:TAG", "docker://REF", ...
	Dest string
	// ManifestDigest is the digest of the manifest written there (its
	// layers are compressed, so it differs from Result.ManifestDigest).
	ManifestDigest string
	// Attestations are the attestations attached to it (oci: layouts and
	// registries; none with NoProvenance).
	Attestations []Attestation
}

// StepResult describes one step of a finished build.
type StepResult struct {
	Index       int
	Method      string
	Description string
	Key         layers.Key
	// Cached is true when the step's result came from the cache and no
	// working container was created for it.
	Cached bool
	// Remote is true when the step's result was pulled from a CacheFrom
	// repository (and then recorded in the local cache); Cached is then
	// false. No working container was created for it either.
	Remote   bool
	ImageID  string
	Duration time.Duration
	// Reason says why a step ran (empty when it came from a cache): the
	// inputs that changed since the nearest earlier build of the same
	// position, as Session.Explain reports them.
	Reason string
}

// Build opens a session with the WithSession options, builds img and closes
// the session.
func Build(ctx context.Context, img Image, opts ...BuildOption) (*Result, error) {
	var bo buildOptions
	for _, o := range opts {
		o.applyBuild(&bo)
	}
	// A chain or option that is wrong says so before a store is opened.
	if err := img.Err(); err != nil {
		return nil, err
	}
	if bo.err != nil {
		return nil, bo.err
	}
	if !bo.ownSignals {
		// Watched from Open to Close, so that the exit that follows a
		// signal finds the session closed.
		var release func()
		ctx, release = watchSignals(ctx)
		defer release()
		opts = append(opts, buildOption(func(o *buildOptions) { o.signalsWatched = true }))
	}
	opts = append(opts, buildOption(func(o *buildOptions) { o.fromBuild = true }))
	s, err := Open(ctx, bo.session...)
	if err != nil {
		return nil, err
	}
	res, err := s.Build(ctx, img, opts...)
	if cerr := s.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return res, err
}

// Build builds img: each step whose cache entry exists is taken from the
// cache (no container is created), every other step runs in a new working
// container and is committed and recorded. A failed build records nothing
// for the failed step, tags nothing and leaves no working container.
//
// While it runs, SIGINT, SIGTERM and SIGHUP cancel it (see "Signals" in the
// package doc) unless WithoutSignalHandling is given.
func (s *Session) Build(ctx context.Context, img Image, opts ...BuildOption) (*Result, error) {
	var bo buildOptions
	for _, o := range opts {
		o.applyBuild(&bo)
	}
	if !bo.ownSignals && !bo.signalsWatched {
		var release func()
		ctx, release = watchSignals(ctx)
		defer release()
	}
	return s.build(ctx, img, bo)
}

func (s *Session) build(ctx context.Context, img Image, bo buildOptions) (*Result, error) {
	started := time.Now()
	// Working containers are removed in the background while later steps
	// run; none is left when the build returns.
	if s != nil && s.rt != nil {
		defer s.rt.SettleDeletes()
	}
	if bo.err != nil {
		return nil, bo.err
	}
	if !bo.fromBuild && slices.Contains(bo.used, "WithSession") {
		return nil, errors.New("WithSession does not apply to Session.Build: it builds in the session it is called on (give those options to Open)")
	}
	switch bo.compression {
	case "", "gzip", "zstd":
	case "none":
		for _, d := range bo.exports {
			if strings.HasPrefix(d, "docker://") {
				return nil, fmt.Errorf("layer compression none is for local outputs; %s is a registry: use gzip or zstd", d)
			}
		}
	default:
		return nil, fmt.Errorf("layer compression %q: use gzip, zstd or none", bo.compression)
	}
	var tags []string
	for _, t := range bo.tags {
		n, err := runners.NormalizeTag(t)
		if err != nil {
			return nil, err
		}
		tags = append(tags, n)
	}
	sg, err := openSigner(bo)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sg.Close() }()
	if err := checkSBOM(&bo); err != nil {
		return nil, err
	}
	if len(bo.platforms) > 1 {
		return s.buildPlatforms(ctx, img, bo, tags, sg)
	}
	if len(bo.annotations) > 0 {
		var err error
		for k := range bo.annotations {
			if k == "" || strings.ContainsRune(k, 0) {
				err = fmt.Errorf("bad annotation name %q", k)
			}
		}
		img = img.push(&stepDef{method: "Annotations", kind: layers.KindAnnotation, env: copyMap(bo.annotations)}, err)
	}
	p, err := s.planFormat(ctx, img, bo.format, bo.platform)
	if err != nil {
		return nil, err
	}
	pr := newProgress(bo.output, len(p.Steps), bo.progressFn)
	// Remote layer cache (remotecache.go): nil without CacheFrom/CacheTo.
	// Build waits for its background pushes on every return.
	rc, err := s.newRemoteCache(ctx, bo.remote, pr, len(p.Steps))
	if err != nil {
		return nil, err
	}
	defer rc.wait()
	res := &Result{}
	for _, n := range p.Notes {
		pr.printf("note: %s\n", n)
	}
	name := ""
	if len(tags) > 0 {
		name = tags[0]
	}
	ms, err := s.newMountSync(bo.mounts, bo.remote.auth, pr)
	if err != nil {
		return nil, err
	}
	b := &buildRun{pr: pr, rc: rc, ms: ms, res: res, built: map[*Plan]string{}}
	defer func() {
		for _, u := range b.held {
			u()
		}
	}()
	parentID, err := s.buildSteps(ctx, p, b, name)
	if err != nil {
		return nil, err
	}
	ms.finish(ctx)
	if parentID == "" {
		// A bare scratch image: commit an empty image so there is something to
		// tag and export.
		id, err := s.rt.Execute(ctx, "", runners.Step{Name: "step 0 (Scratch)", SourceDateEpoch: s.sde, Format: bo.format, Platform: bo.platform})
		if err != nil {
			return nil, err
		}
		parentID = id
	}
	res.ImageID = parentID
	if res.ManifestDigest, err = s.rt.ManifestDigest(parentID); err != nil {
		return nil, err
	}
	runners.Failpoint("tag")
	for _, t := range tags {
		if err := s.rt.Tag(parentID, t); err != nil {
			return nil, err
		}
	}
	res.Tags = tags
	// Remember this build's steps under its names, so that the next
	// build of the same name can say what changed (explain.go).
	var keys []layers.Key
	for _, st := range p.Steps {
		keys = append(keys, st.Key)
	}
	for _, t := range tags {
		_ = s.recipes.PutImage(t, keys)
	}
	pv := &attestations{}
	if bo.wantProvenance || slices.ContainsFunc(bo.exports, getsAttestations) {
		if !bo.noProvenance {
			pv.pv = s.provenanceOf(img, p, bo, bo.platform, started, time.Now())
		}
		if bo.sbom != "" {
			if pv.sbom, err = s.sbomOf(ctx, parentID, res.ManifestDigest, name, bo.sbom, pr); err != nil {
				return nil, err
			}
		}
		res.attest = pv
	}
	runners.Failpoint("export")
	if err := s.export(ctx, parentID, bo, pr, res, pv, sg); err != nil {
		return nil, err
	}
	return res, nil
}

// export writes image id to each of the build's outputs (ExportTo, Push).
func (s *Session) export(ctx context.Context, id string, bo buildOptions, pr *progress, res *Result, pv *attestations, sg *runners.SigstoreSigner) error {
	for _, dest := range bo.exports {
		w := pr.noteWriter("[export] ")
		d, err := s.rt.Export(ctx, id, dest, w, runners.ExportOptions{Auth: bo.pushAuth, Compression: bo.compression, Format: bo.format})
		flushOutput(w)
		if err != nil {
			return err
		}
		pr.printf("exported to %s\n", dest)
		noteUnattested(dest, bo, pr)
		atts, err := s.attestExport(ctx, dest, d, pv, bo.pushAuth, pr)
		if err != nil {
			return err
		}
		if err := s.signPush(ctx, sg, dest, d, atts, bo.pushAuth, pr); err != nil {
			return err
		}
		res.Exports = append(res.Exports, Export{Dest: dest, ManifestDigest: d, Attestations: atts})
	}
	return nil
}
