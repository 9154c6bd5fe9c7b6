package builder

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.podman.io/storage"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/mount"
	"github.com/stratabuild/strata/runners"
)

// InitReexec must be called first thing in main by any program that builds;
// when it returns true, main must return at once. See the package doc.
//
// In a copy of the program started by RunFunction inside a build container,
// InitReexec runs the registered function and exits.
func InitReexec() bool {
	runRegistered()
	return runners.InitReexec()
}

// ErrNoReexec is returned by Open when InitReexec was not called first.
var ErrNoReexec = runners.ErrNoReexec

// StepError reports a step whose command failed: the step, the command, its
// exit code and the last lines of its output. Reach it with errors.As.
type StepError = runners.StepError

// Session is an open store with its settings. Open it once and build many
// images with it, from several goroutines at once if you like.
type Session struct {
	rt       *runners.Runtime
	cache    layers.Cache
	resolver *runners.Resolver

	sde       *time.Time
	mountRoot string
	cleanup   bool            // ReproducibleCleanup
	force     string          // why every step is forced (ForceBuildAll, STRATA_FORCE_BUILD), or ""
	recipes   *layers.Recipes // what each cache entry was made from (explain.go)
	// digests remembers local files' content digests by their stat, so
	// planning an unchanged tree reads no file (mount.DigestCache).
	digests *mount.DigestCache

	mu       sync.Mutex
	inflight map[layers.Key]chan struct{} // steps running now, by key
}

// Open opens a session. It fails with ErrNoReexec when InitReexec was not
// called at the start of main.
//
// Two settings default from the environment, read here once and not
// again by the session's builds: SourceDateEpoch from SOURCE_DATE_EPOCH
// (seconds since 1970; a malformed value is an error) and ForceBuildAll
// from STRATA_FORCE_BUILD (1, true or yes). An option given to Open wins.
func Open(ctx context.Context, opts ...Option) (*Session, error) {
	var so sessionOptions
	for _, o := range opts {
		o.applySession(&so)
	}
	if so.err != nil {
		return nil, so.err
	}
	rt, err := runners.Open(so.cfg)
	if err != nil {
		return nil, err
	}
	c := so.cache
	if c == nil {
		c = layers.NewStoreCache(rt.Store())
	}
	sde := so.sde
	if sde == nil {
		if sde, err = envSourceDateEpoch(); err != nil {
			_ = rt.Close()
			return nil, err
		}
	}
	force := ""
	switch {
	case so.force:
		force = ReasonForcedAll
	case envForce():
		force = ReasonForcedEnv
	}
	return &Session{
		force: force,
		rt:    rt,
		cache: c,
		resolver: &runners.Resolver{Store: rt.Store(), SystemContext: rt.SystemContext(), PullPolicy: so.cfg.PullPolicy,
			DigestFile: filepath.Join(rt.Store().GraphRoot(), "strata-archive-digests.json")},
		sde:       sde,
		mountRoot: so.mountRoot,
		cleanup:   so.cleanup,
		recipes:   layers.OpenRecipes(filepath.Join(rt.Store().GraphRoot(), "strata-recipes")),
		digests:   mount.OpenDigestCache(filepath.Join(rt.Store().GraphRoot(), "strata-file-digests")),
		inflight:  map[layers.Key]chan struct{}{},
	}, nil
}

// Store returns the session's containers/storage store, for inspection
// (listing images, containers and layers). Changing it behind the session's
// back can break the cache.
func (s *Session) Store() storage.Store { return s.rt.Store() }

// Reaped says what Open removed that strata processes killed earlier had
// left behind in this store: working containers and temporary
// directories. Only strata's own leftovers are ever removed, and only when
// the process that made them is gone.
type Reaped = runners.Reaped

// Reaped returns what Open removed.
func (s *Session) Reaped() Reaped { return s.rt.Reaped() }

// Close releases the store. Builds must have returned.
func (s *Session) Close() error { return s.rt.Close() }

// Plan lowers img to a Plan without building. Of the build options it
// takes Format and Platforms (one platform: the keys differ per platform,
// so plan each in turn); the plan is for the host's platform by default.
func (s *Session) Plan(ctx context.Context, img Image, opts ...BuildOption) (*Plan, error) {
	bo, err := planOptions("Plan", opts, "Format", "Platforms")
	if err != nil {
		return nil, err
	}
	return s.planFormat(ctx, img, bo.format, bo.platform)
}

// planOptions reads the build options that where (Plan, Explain) takes,
// the allowed ones, with at most one platform: the keys differ per
// platform.
func planOptions(where string, opts []BuildOption, allowed ...string) (buildOptions, error) {
	var bo buildOptions
	for _, o := range opts {
		o.applyBuild(&bo)
	}
	if bo.err != nil {
		return bo, bo.err
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " and " + allowed[len(allowed)-1]
	if err := bo.only(where+" (it reads "+list+" only)", allowed...); err != nil {
		return bo, err
	}
	if len(bo.platforms) > 1 {
		return bo, fmt.Errorf("%s: Platforms names %d platforms; %s one platform at a time", where, len(bo.platforms), strings.ToLower(where))
	}
	return bo, nil
}

// planFormat plans img for an image format ("docker", or "" for OCI) and
// a target platform ("" for the host's).
func (s *Session) planFormat(ctx context.Context, img Image, format, platform string) (*Plan, error) {
	pe := newPlanEnv(s.resolver, s.sde, s.mountRoot)
	pe.cleanup = s.cleanup
	pe.forceAll = s.force != ""
	pe.format = format
	pe.platform = platform
	pe.digests = s.digests
	p, err := plan(ctx, img, pe)
	// What the walks learnt, for the next build (a cache: a failed write
	// costs only time).
	_ = s.digests.Save()
	return p, err
}
