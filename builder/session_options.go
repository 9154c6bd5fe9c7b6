package builder

import (
	"fmt"
	"time"

	"github.com/stratabuild/strata/gpu"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// Option configures a Session.
type Option interface{ applySession(*sessionOptions) }

type sessionOptions struct {
	cfg       runners.Config
	cache     layers.Cache
	sde       *time.Time
	mountRoot string
	cleanup   bool
	force     bool
	err       error
}

type sessionOption func(*sessionOptions)

func (f sessionOption) applySession(o *sessionOptions) { f(o) }

// PullPolicy says when a registry base's tag is looked up at the registry
// (podman build --pull): "always" (the default: at every build, pulling
// only layers the store lacks), "missing" (only when the store holds no
// image of that name; strata names each base it pulls, as podman pull
// does), or "never" (the store's image of that name, else an error; a
// build that needs no registry works offline).
func PullPolicy(policy string) Option {
	return sessionOption(func(o *sessionOptions) {
		switch policy {
		case "always", "missing", "never":
			o.cfg.PullPolicy = policy
		default:
			o.err = fmt.Errorf("PullPolicy(%q): use always, missing or never", policy)
		}
	})
}

// WithStore puts the image store at graphRoot, with run-time state in
// runRoot. Default: the user's containers/storage defaults
// (~/.local/share/containers/storage for an ordinary user).
func WithStore(graphRoot, runRoot string) Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.GraphRoot, o.cfg.RunRoot = graphRoot, runRoot })
}

// WithStorageDriver picks the storage driver. Default, as podman and
// buildah choose: the driver storage.conf names (the user's, else the
// system's, or $CONTAINERS_STORAGE_CONF; or $STORAGE_DRIVER) with its
// options; else the one the store already holds; else native overlay, or
// vfs where overlay cannot be used. So podman lists and runs what strata
// builds in the user's default store.
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

// WithRegistriesDir reads the registries.d configuration (where
// signatures are kept: use-sigstore-attachments, lookaside) from dir
// instead of ~/.config/containers/registries.d or
// /etc/containers/registries.d, as skopeo's --registries.d does.
func WithRegistriesDir(dir string) Option {
	return sessionOption(func(o *sessionOptions) { o.cfg.RegistriesDir = dir })
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

// VolatileFiles returns the files ReproducibleCleanup removes after every
// run step: logs and caches that package managers rewrite with the time or
// the order of events, so that two builds of one definition differ. The
// list is part of the cache key of every such step (as
// volatileFilesVersion, which TestVolatileFilesVersion pins to the list).
func VolatileFiles() []string {
	return []string{
		"/var/log/apt/*.log", "/var/log/apt/eipp.log.xz", "/var/log/dpkg.log",
		"/var/log/alternatives.log", "/var/log/bootstrap.log",
		"/var/cache/ldconfig/aux-cache", "/var/cache/apt/*.bin",
		"/var/cache/debconf/*-old", "/var/lib/dpkg/*-old",
		"/var/lib/apt/lists/*_Packages", "/var/lib/apt/lists/*_InRelease", "/var/lib/apt/lists/*_Release*",
		"/var/lib/apt/lists/*_Translation-*", "/var/lib/apt/lists/*_Sources",
		"/root/.cache/pip", "/var/cache/fontconfig/*",
	}
}

// volatileFilesVersion names the VolatileFiles list in cache keys: a
// change to the list must come with a new version (and RecipeVersion
// stays), which TestVolatileFilesVersion enforces.
const volatileFilesVersion = "volatile-v1"

// ForceBuildAll runs every step of the session's builds even when its
// cache entry exists, as ForceBuild on the first step would. Default: off,
// unless STRATA_FORCE_BUILD is "1", "true" or "yes" when Open is called
// (Modal's MODAL_FORCE_BUILD); the variable is read there only.
func ForceBuildAll() Option {
	return sessionOption(func(o *sessionOptions) { o.force = true })
}

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
