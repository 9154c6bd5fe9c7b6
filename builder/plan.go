package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/mount"
	"github.com/stratabuild/strata/runners"
)

// EnvForceBuild names the variable that, set to "1" or "true", forces every
// step to run (Modal's MODAL_FORCE_BUILD).
const EnvForceBuild = "STRATA_FORCE_BUILD"

var defaultShell = []string{"/bin/sh", "-c"}

// Plan is an image definition lowered to the ordered steps a build runs,
// each with its cache key. Making a plan runs nothing: it resolves the base
// to a digest and reads local inputs.
type Plan struct {
	// Steps start with the base (Index 0). Local files added without Copy()
	// come last, in the order they were added.
	Steps []PlannedStep
	// Notes are things the user should know that are not errors, such as
	// Dockerfile instructions that OCI images cannot hold.
	Notes []string
}

// PlannedStep is one step of a Plan.
type PlannedStep struct {
	// Index is the step's position in the chain as written (0 = base).
	Index int
	// Method is the chain method that made the step, e.g. "RunCommands".
	Method string
	// Description is a short readable summary of the step's arguments.
	Description string
	// Key is the step's cache key.
	Key layers.Key
	// Spec is what Key digests (besides the parent key).
	Spec layers.Spec
	// Force is set when the step runs even on a cache hit.
	Force bool

	base    *runners.Base
	run     runners.Step
	secrets []Secret
	// deps are the plans of images this step copies from (COPY --from):
	// they are built first, and copy i reads from deps[fromDep[i]].
	deps    []*Plan
	fromDep map[int]int
	// mountDep: run mount i is read from deps[mountDep[i]] (RUN
	// --mount=type=bind,from=...).
	mountDep map[int]int
	// secretMounts are RUN --mount=type=secret files, written when the
	// step runs.
	secretMounts []runMount
	// volumes are the host directories of Volumes, made when the step runs
	volumes []string
	// unkeyedEnv reaches the step's commands without entering its key.
	unkeyedEnv []string
	// trees are the files of the step's local inputs, kept with its cache
	// entry so that a later miss can name the files that changed.
	trees []layers.Tree
	// why says why the step runs (set by Build on a miss).
	why string
	// cacheMounts are the step's cache mounts, and inlines the heredoc
	// files it copies: both are made on the host when the step runs, not
	// when it is planned.
	cacheMounts []cacheMountDir
	inlines     []inlineFile
	// downloads are the ADD URLs it copies, fetched when it runs.
	downloads []urlFile
}

// cacheMountDir is a cache mount's host directory, made with the mount's
// owner and mode the first time a step that uses it runs.
type cacheMountDir struct {
	id, dir        string
	mode, uid, gid *uint64
	// seed: a cache mount from= a stage or image starts, when new, with
	// the files at seedSrc in that image (the step's dependency seedDep)
	seed    bool
	seedDep int
	seedSrc string
}

// inlineFile is a heredoc of COPY <<EOF, written as dir/name (dir is named
// by its content) when the step runs.
type inlineFile struct{ dir, name, data string }

// Name returns "step N (Method)", the form used in errors and progress.
func (s PlannedStep) Name() string { return fmt.Sprintf("step %d (%s)", s.Index, s.Method) }

// Plan lowers the image to a Plan without building. FromID bases need an
// open session: use Session.Plan for them. It takes the settings an Open
// without options would: SOURCE_DATE_EPOCH and STRATA_FORCE_BUILD from
// the environment. Planning reads (base digests, local files, the content
// of an ADD URL without --checksum) but writes nothing.
// Like Session.Plan it takes Format and one platform (Platforms).
func (i Image) Plan(ctx context.Context, opts ...BuildOption) (*Plan, error) {
	bo, err := planOptions("Plan", opts, "Format", "Platforms")
	if err != nil {
		return nil, err
	}
	sde, err := envSourceDateEpoch()
	if err != nil {
		return nil, err
	}
	pe := newPlanEnv(&runners.Resolver{}, sde, "")
	pe.forceAll = envForce()
	pe.format, pe.platform = bo.format, bo.platform
	return plan(ctx, i, pe)
}

// planEnv is what planning needs besides the image: how to resolve bases,
// the reproducibility setting, where cache mounts live, and what was
// translated already (a stage copied from twice is planned once).
type planEnv struct {
	res       *runners.Resolver
	sde       *time.Time
	cleanup   bool   // ReproducibleCleanup
	forceAll  bool   // ForceBuildAll, STRATA_FORCE_BUILD
	format    string // Format: "docker", or "" for OCI
	platform  string // Platforms: the target platform, "" for the host's
	mountRoot string
	digests   *mount.DigestCache // nil: every local file is read
	expanded  map[*node]Image
	plans     map[*node]*Plan
	notes     []string
	// recordedBases (Verify): the base digests a provenance records, by
	// method, used for a base that no longer resolves; baseNotes say so.
	recordedBases map[string][]string
	baseNotes     []string
}

func newPlanEnv(res *runners.Resolver, sde *time.Time, mountRoot string) *planEnv {
	if mountRoot == "" {
		mountRoot = defaultMountRoot()
	}
	return &planEnv{res: res, sde: sde, mountRoot: mountRoot, expanded: map[*node]Image{}, plans: map[*node]*Plan{}}
}

// defaultMountRoot is where cache mounts, ADD downloads and heredoc files
// are kept: the user's cache directory.
func defaultMountRoot() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "strata")
}

// EnvSourceDateEpoch is the variable that, when no SourceDateEpoch option
// is given, sets it in seconds since 1970 (the reproducible-builds.org
// convention).
const EnvSourceDateEpoch = "SOURCE_DATE_EPOCH"

func envSourceDateEpoch() (*time.Time, error) {
	v := os.Getenv(EnvSourceDateEpoch)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s=%q: want seconds since 1970", EnvSourceDateEpoch, v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

func plan(ctx context.Context, img Image, pe *planEnv) (*Plan, error) {
	if err := img.root().err; err != nil {
		return nil, err
	}
	p, err := pe.plan(ctx, img)
	if err != nil {
		return nil, err
	}
	p.Notes = pe.notes
	return p, nil
}

func (pe *planEnv) plan(ctx context.Context, img Image) (*Plan, error) {
	if err := img.root().err; err != nil {
		return nil, err
	}
	if p, ok := pe.plans[img.n]; ok && img.n != nil {
		return p, nil
	}
	orig := img.n
	img, err := pe.expand(ctx, img)
	if err != nil {
		return nil, err
	}
	res := pe.res
	leaf := img.root()
	if leaf.err != nil {
		return nil, leaf.err
	}
	var nodes []*node
	for n := leaf; n != nil; n = n.parent {
		nodes = append(nodes, n)
	}
	// nodes[len-1] is the root; put build steps first, then non-copy adds.
	var build, late []*node
	for k := len(nodes) - 2; k >= 0; k-- {
		s := nodes[k].step
		if s.kind == layers.KindAdd && !s.copy {
			late = append(late, nodes[k])
		} else {
			build = append(build, nodes[k])
		}
	}
	forceAll := pe.forceAll
	root := nodes[len(nodes)-1]
	if root.base.platformSet {
		// A chain for its own platform (FROM --platform): its steps, and
		// the plans they copy from, are for that platform.
		saved := pe.platform
		pe.platform = root.base.platform
		defer func() { pe.platform = saved }()
	}

	p := &Plan{}
	b := root.base.src
	b.Platform = pe.platform
	d, err := res.Resolve(ctx, b)
	if err != nil {
		// Verify: a base that no longer resolves is planned with the
		// digest the provenance records, and reported.
		rec := pe.recordedBases[root.base.method]
		if len(rec) == 0 {
			return nil, fmt.Errorf("step 0 (%s): %w", root.base.method, err)
		}
		d, pe.recordedBases[root.base.method] = rec[0], rec[1:]
		pe.baseNotes = append(pe.baseNotes, fmt.Sprintf("step 0 (%s) %s no longer resolves (%v): its recorded digest %s was used", root.base.method, b.Ref, err, layers.ShortDigest(d)))
	}
	bs := PlannedStep{
		Index:       0,
		Method:      root.base.method,
		Description: baseDescription(root.base.src, d),
		// The platform is keyed even for the host's and for scratch: a
		// cache shared by runners of several architectures holds each
		// platform's entries side by side.
		Spec:  layers.Spec{Kind: layers.KindBase, Args: []string{d}, Options: map[string]string{"platform": pe.targetPlatform()}},
		Force: forceAll && root.base.src.Kind != runners.BaseScratch,
	}
	bs.base = &b
	if bs.Key, err = layers.Compute("", bs.Spec); err != nil {
		return nil, err
	}
	p.Steps = append(p.Steps, bs)
	parent := bs.Key
	for _, n := range append(build, late...) {
		ps, err := pe.lower(ctx, n)
		if err != nil {
			if n.step.pos != "" {
				return nil, fmt.Errorf("%s: %s: %w", ps.Name(), n.step.pos, err)
			}
			return nil, fmt.Errorf("%s: %w", ps.Name(), err)
		}
		if ps.Key, err = layers.Compute(parent, ps.Spec); err != nil {
			return nil, fmt.Errorf("%s: %w", ps.Name(), err)
		}
		parent = ps.Key
		p.Steps = append(p.Steps, ps)
	}
	if orig != nil {
		pe.plans[orig] = p
	}
	return p, nil
}

func envForce() bool {
	v := strings.ToLower(os.Getenv(EnvForceBuild))
	return v == "1" || v == "true" || v == "yes"
}

func baseDescription(b runners.Base, digest string) string {
	switch b.Kind {
	case runners.BaseScratch:
		return "scratch"
	case runners.BaseRegistry:
		return b.Ref + "@" + digest
	}
	return b.Ref
}

// targetPlatform is the platform the plan builds for.
func (pe *planEnv) targetPlatform() string {
	if pe.platform != "" {
		return pe.platform
	}
	return hostPlatform()
}
