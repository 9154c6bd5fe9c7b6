package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.podman.io/image/v5/types"
	"go.podman.io/storage"

	"github.com/stratabuild/strata/gpu"
	"github.com/stratabuild/strata/layers"
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

// Option configures a Session.
type Option interface{ applySession(*sessionOptions) }

type sessionOptions struct {
	cfg       runners.Config
	cache     layers.Cache
	sde       *time.Time
	mountRoot string
	cleanup   bool
}

type sessionOption func(*sessionOptions)

func (f sessionOption) applySession(o *sessionOptions) { f(o) }

// WithStore puts the image store at graphRoot, with run-time state in
// runRoot. Default: the user's containers/storage defaults
// (~/.local/share/containers/storage for an ordinary user).
func WithStore(graphRoot, runRoot string) Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.GraphRoot, o.cfg.RunRoot = graphRoot, runRoot })
}

// WithStorageDriver picks the storage driver. Default: native overlay, or
// vfs where overlay cannot be used.
func WithStorageDriver(driver string) Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.Driver = driver })
}

// WithRuntime picks the OCI runtime binary. Default: runc from PATH.
func WithRuntime(path string) Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.Runtime = path })
}

// WithInsecureRegistries allows plain HTTP and unverified TLS for registry
// pulls and pushes. Default: off.
func WithInsecureRegistries() Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.Insecure = true })
}

// WithRegistryCertDir verifies registries' TLS certificates against the
// CA certificates (*.crt) in dir, and presents the client certificate in it
// (*.cert with *.key) when there is one, for every pull, push and cache
// lookup. Default: the system's CAs and /etc/containers/certs.d.
func WithRegistryCertDir(dir string) Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.CertDir = dir })
}

// WithGPUDiscovery replaces how GPU steps find the host's GPUs and describe
// the driver's files: d lists the GPUs (default: NVML), spec describes the
// host to the CDI spec generator (default: the real driver root and /dev).
// Tests use it with go-nvml's mocks and a fake driver tree.
func WithGPUDiscovery(d gpu.Discoverer, spec gpu.SpecOptions) Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.GPU.Discoverer, o.cfg.GPU.Spec = d, spec })
}

// WithHostCDISpecs gives GPU steps the devices of the CDI specs an
// administrator generated in /etc/cdi or /var/run/cdi (nvidia-ctk cdi
// generate) instead of the spec strata writes. Those specs usually carry
// hooks that write into the container's filesystem, and so into the
// layer. Default: off.
func WithHostCDISpecs() Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.GPU.HostSpecs = true })
}

// WithSharedGPUs lets concurrent GPU steps use the same GPU. Default: each
// GPU serves one step at a time, and a step waits for a free one.
func WithSharedGPUs() Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.GPU.Shared = true })
}

// SourceDateEpoch makes builds reproducible: every timestamp that strata
// writes (file times in the layers a step commits, the image's creation
// time, its history) is clamped to t, so building the same definition in
// two empty stores gives the same manifest digest. It enters every step's
// cache key. Default: the SOURCE_DATE_EPOCH variable when set, else off.
// What a step's own commands write into files (apt's logs and caches,
// pip's records of install times) can still differ between builds.
func SourceDateEpoch(t time.Time) Option {
	return sessionOption(func(o *sessionOptions) { u := t.UTC(); o.sde = &u })
}

// VolatileFiles are the files ReproducibleCleanup removes after every run
// step: logs and caches that package managers rewrite with the time or the
// order of events, so that two builds of one definition differ.
var VolatileFiles = []string{
	"/var/log/apt/*.log", "/var/log/apt/eipp.log.xz", "/var/log/dpkg.log",
	"/var/log/alternatives.log", "/var/log/bootstrap.log",
	"/var/cache/ldconfig/aux-cache", "/var/cache/apt/*.bin",
	"/var/cache/debconf/*-old", "/var/lib/dpkg/*-old",
	"/var/lib/apt/lists/*_Packages", "/var/lib/apt/lists/*_InRelease", "/var/lib/apt/lists/*_Release*",
	"/var/lib/apt/lists/*_Translation-*", "/var/lib/apt/lists/*_Sources",
	"/root/.cache/pip", "/var/cache/fontconfig/*",
}

// volatileFilesVersion names the VolatileFiles list in cache keys.
const volatileFilesVersion = "volatile-v1"

// ReproducibleCleanup removes VolatileFiles (apt and dpkg logs, apt's
// package lists and binary caches, ldconfig's cache, pip's cache) from the
// image after every run step, before its layer is committed: what a step's
// own commands write with the time in it, which SourceDateEpoch cannot
// clamp. It enters every run step's cache key. Default: off.
func ReproducibleCleanup() Option {
	return sessionOption(func(o *sessionOptions) { o.cleanup = true })
}

// WithCacheMountDir keeps the directories of cache mounts (RUN
// --mount=type=cache), ADD downloads and heredoc files under dir.
// Default: strata/ in the user's cache directory (~/.cache/strata).
func WithCacheMountDir(dir string) Option {
	return sessionOption(func(o *sessionOptions) { o.mountRoot = dir })
}

// WithCache replaces the layer cache. Default: entries kept as image names in
// the store (layers.NewStoreCache), so a lookup never scans images.
func WithCache(c layers.Cache) Option {
	return sessionOption(func(o *sessionOptions) { o.cache = c })
}

// Session is an open store with its settings. Open it once and build many
// images with it, from several goroutines at once if you like.
type Session struct {
	rt       *runners.Runtime
	cache    layers.Cache
	resolver *runners.Resolver

	sde       *time.Time
	mountRoot string
	cleanup   bool            // ReproducibleCleanup
	recipes   *layers.Recipes // what each cache entry was made from (explain.go)

	mu       sync.Mutex
	inflight map[layers.Key]chan struct{} // steps running now, by key
}

// Open opens a session. It fails with ErrNoReexec when InitReexec was not
// called at the start of main.
func Open(ctx context.Context, opts ...Option) (*Session, error) {
	var so sessionOptions
	for _, o := range opts {
		o.applySession(&so)
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
	return &Session{
		rt:        rt,
		cache:     c,
		resolver:  &runners.Resolver{Store: rt.Store(), SystemContext: rt.SystemContext()},
		sde:       sde,
		mountRoot: so.mountRoot,
		cleanup:   so.cleanup,
		recipes:   layers.OpenRecipes(filepath.Join(rt.Store().GraphRoot(), "strata-recipes")),
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

// Plan lowers img to a Plan without building.
func (s *Session) Plan(ctx context.Context, img Image) (*Plan, error) {
	pe := newPlanEnv(s.resolver, s.sde, s.mountRoot)
	pe.cleanup = s.cleanup
	return plan(ctx, img, pe)
}

// BuildOption configures one Build.
type BuildOption interface{ applyBuild(*buildOptions) }

type buildOptions struct {
	tags        []string
	exports     []string
	output      io.Writer
	session     []Option
	pushAuth    *types.DockerAuthConfig
	compression string
	remote      remoteOptions     // CacheFrom, CacheTo, CacheAuth (remotecache.go)
	mounts      mountCacheOptions // CacheMountsTo, CacheMountsFrom (mountcache.go)
	progressFn  func(ProgressEvent)
	err         error
}

type buildOption func(*buildOptions)

func (f buildOption) applyBuild(o *buildOptions) { f(o) }

// WithTag names the final image in the store ("app" is stored as
// "localhost/app:latest"). Default: no name. A failed build tags nothing.
func WithTag(name string) BuildOption {
	return buildOption(func(o *buildOptions) { o.tags = append(o.tags, name) })
}

// ExportTo writes the final image to dest after a successful build:
// "oci:DIR[:TAG]" (an OCI layout directory) or "oci-archive:FILE", or
// "docker-archive:FILE". Default: no export.
func ExportTo(dest string) BuildOption {
	return buildOption(func(o *buildOptions) { o.exports = append(o.exports, dest) })
}

// Push pushes the final image to a registry after a successful build
// ("registry.example.com/team/app:1"), as ExportTo("docker://"+ref).
// Credentials come from PushAuth, or else from auth.json.
func Push(ref string) BuildOption {
	return buildOption(func(o *buildOptions) { o.exports = append(o.exports, "docker://"+strings.TrimPrefix(ref, "docker://")) })
}

// PushAuth pushes with the credentials in secret (its REGISTRY_USERNAME and
// REGISTRY_PASSWORD variables). Default: auth.json.
func PushAuth(secret Secret) BuildOption {
	return buildOption(func(o *buildOptions) {
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
	return buildOption(func(o *buildOptions) { o.compression = c })
}

// WithOutput streams progress lines and each step's command output, prefixed
// with the step's name, to w. Default: nothing is printed.
func WithOutput(w io.Writer) BuildOption {
	return buildOption(func(o *buildOptions) { o.output = w })
}

// WithSession passes session options to the package-level Build, which
// opens its own session. Session.Build ignores it.
func WithSession(opts ...Option) BuildOption {
	return buildOption(func(o *buildOptions) { o.session = append(o.session, opts...) })
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
func (s *Session) Build(ctx context.Context, img Image, opts ...BuildOption) (*Result, error) {
	var bo buildOptions
	for _, o := range opts {
		o.applyBuild(&bo)
	}
	if bo.err != nil {
		return nil, bo.err
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
	p, err := s.Plan(ctx, img)
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
		id, err := s.rt.Execute(ctx, "", runners.Step{Name: "step 0 (Scratch)", SourceDateEpoch: s.sde})
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
	runners.Failpoint("export")
	for _, dest := range bo.exports {
		if _, err := s.rt.Export(ctx, parentID, dest, nil, runners.ExportOptions{Auth: bo.pushAuth, Compression: bo.compression}); err != nil {
			return nil, err
		}
		pr.printf("exported to %s\n", dest)
	}
	return res, nil
}

// claim marks key k as running in this session and returns the func that
// releases it. When another build of the session runs k now, it returns
// instead a channel that is closed when that build is done with k.
func (s *Session) claim(k layers.Key) (release func(), busy <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.inflight[k]; ok {
		return nil, ch
	}
	ch := make(chan struct{})
	s.inflight[k] = ch
	return func() {
		s.mu.Lock()
		delete(s.inflight, k)
		s.mu.Unlock()
		close(ch)
	}, nil
}

// buildSteps builds the steps of p in order (first the images its steps
// copy from) and returns the last step's image ID ("" for a bare scratch).
// built remembers the plans already built in this Build.
// buildRun is the state of one Build that its steps share.
type buildRun struct {
	held  []func() // shared key locks of the entries in use
	pr    *progress
	rc    *remoteCache
	ms    *mountSync
	res   *Result
	built map[*Plan]string
}

func (s *Session) buildSteps(ctx context.Context, p *Plan, b *buildRun, name string) (string, error) {
	pr, rc, res, built := b.pr, b.rc, b.res, b.built
	if id, ok := built[p]; ok {
		return id, nil
	}
	parentID := ""
	forced := false
	ex := s.newExplainer(p, name)
	for si, st := range p.Steps {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		start := time.Now()
		// A forced step forces every later step: their keys are unchanged,
		// but their parent is new. A step that ran on a plain miss needs no
		// such rule: later keys chain from its key, so any later entry that
		// still exists was built on identical inputs.
		forced = forced || st.Force
		var id string
		cached, remote := false, false
		release := func() {}
		if st.base != nil && st.base.Kind == runners.BaseScratch {
			cached = true // nothing to import or record
		} else if !forced {
			// Claim the key, or wait for the build in this session that
			// runs it now and then take its result from the cache.
			for {
				// A shared key lock, held until the build ends, keeps a
				// prune from removing the entry while this build uses it.
				unshare, err := s.rt.ShareKey(ctx, st.Key.Hex())
				if err != nil {
					return "", fmt.Errorf("%s: %w", st.Name(), err)
				}
				e, err := s.cache.Get(ctx, st.Key)
				if err == nil {
					id, cached = e.ImageID, true
					b.held = append(b.held, unshare)
					break
				}
				unshare()
				if !errors.Is(err, layers.ErrNotFound) {
					return "", fmt.Errorf("%s: %w", st.Name(), err)
				}
				rel, busy := s.claim(st.Key)
				if busy == nil {
					// Other processes on this store take the same key
					// lock; one that held it may have recorded the entry.
					unlock, err := s.rt.LockKey(ctx, st.Key.Hex())
					if err != nil {
						rel()
						return "", fmt.Errorf("%s: %w", st.Name(), err)
					}
					if _, err := s.cache.Get(ctx, st.Key); err == nil {
						// Recorded meanwhile: take it under a shared lock.
						unlock()
						rel()
						continue
					}
					release = func() { unlock(); rel() }
					break
				}
				select {
				case <-ctx.Done():
					return "", ctx.Err()
				case <-busy:
				}
			}
		}
		if !cached {
			err := func() error {
				defer release()
				// Hold the entry this step records for the rest of the
				// build, before it can be seen: a prune leaves it alone.
				unshare, err := s.rt.ShareKey(ctx, st.Key.Hex())
				if err != nil {
					return fmt.Errorf("%s: %w", st.Name(), err)
				}
				b.held = append(b.held, unshare)
				// Remote cache hit (remotecache.go): pulled and recorded, not run.
				if rid, ok := rc.fetch(ctx, st, forced); ok {
					id, remote = rid, true
					ex.record(si)
					return nil
				}
				// Why it runs (explain.go), for the progress line and result.
				if st.why = ex.forced(si); st.why == "" {
					st.why = ex.why(si)
				}
				ex.ran(si)
				pr.start(st)
				if st.base != nil {
					id, err = s.rt.ImportBase(ctx, *st.base, st.Spec.Args[0], pr.stepWriter(st, nil))
					if err != nil {
						return fmt.Errorf("%s: %w", st.Name(), err)
					}
				} else {
					rs := st.run
					// Images this step copies from (COPY --from) are built
					// only now, on a miss.
					if len(st.deps) > 0 {
						ids := make([]string, len(st.deps))
						for i, dp := range st.deps {
							did, err := s.buildSteps(ctx, dp, b, "")
							if err != nil {
								return err
							}
							if did == "" {
								return fmt.Errorf("%s: the image it copies from is empty (scratch)", st.Name())
							}
							ids[i] = did
						}
						rs.Copies = slices.Clone(rs.Copies)
						for ci, di := range st.fromDep {
							rs.Copies[ci].FromImage = ids[di]
						}
						rs.Mounts = slices.Clone(rs.Mounts)
						for mi, di := range st.mountDep {
							rs.Mounts[mi].FromImage = ids[di]
						}
					}
					rs.RunEnv = append(slices.Clone(rs.RunEnv), st.unkeyedEnv...)
					b.ms.prepare(ctx, st) // restore cache mounts (mountcache.go)
					cleanup, err := secretMounts(st, &rs)
					if err != nil {
						return err
					}
					defer cleanup()
					red := redactorFor(st.secrets)
					rs.Output = pr.stepWriter(st, red)
					for _, sec := range st.secrets {
						for _, k := range sec.keys() {
							rs.RunEnv = append(rs.RunEnv, k+"="+sec.env[k])
						}
					}
					runners.Failpoint("step")
					id, err = s.rt.Execute(ctx, parentID, rs)
					if err != nil {
						return red.err(err)
					}
				}
				runners.Failpoint("before-record")
				if id != "" {
					if err := s.cache.Put(ctx, st.Key, layers.Entry{ImageID: id}); err != nil {
						return fmt.Errorf("%s: %w", st.Name(), err)
					}
					runners.Failpoint("after-record")
					ex.record(si)
					rc.store(st, id) // background push to CacheTo (remotecache.go)
				}
				return nil
			}()
			if err != nil {
				return "", err
			}
		}
		d := time.Since(start)
		if remote {
			pr.remote(st, d)
		} else {
			pr.done(st, cached, d)
		}
		res.Steps = append(res.Steps, StepResult{
			Index: st.Index, Method: st.Method, Description: st.Description,
			Key: st.Key, Cached: cached, Remote: remote, ImageID: id, Duration: d, Reason: st.why,
		})
		parentID = id
	}
	built[p] = parentID
	return parentID, nil
}
