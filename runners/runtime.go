package runners

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"
	"go.podman.io/buildah"
	"go.podman.io/common/pkg/config"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/homedir"
	"go.podman.io/storage/pkg/unshare"
)

// Config says where and how steps run. Its zero value uses the user's
// default containers/storage location and driver, as podman does
// (storeDrivers), and the runc found in PATH.
type Config struct {
	// GraphRoot and RunRoot override the store's locations.
	GraphRoot, RunRoot string
	// Driver is the storage driver: "" takes storage.conf's, else the
	// store's own, else overlay, then vfs (storeDrivers).
	Driver string
	// Runtime is the OCI runtime binary; default "runc" from PATH.
	Runtime string
	// Insecure allows plain-HTTP and unverified-TLS registries.
	Insecure bool
	// CertDir holds the CA certificates (*.crt) registries are verified
	// against, and client certificates (*.cert with *.key), for every
	// registry (containers/image's DockerCertPath).
	CertDir string
	// RegistriesDir replaces the registries.d directories (lookaside and
	// use-sigstore-attachments settings; containers/image's
	// RegistriesDirPath).
	RegistriesDir string
	// GPU configures steps that ask for GPUs.
	GPU GPUConfig
	// PullPolicy is the registry bases' pull policy (Resolver.PullPolicy):
	// with "never", a base is never pulled.
	PullPolicy string
}

// Runtime holds an open store and everything a step needs to run. It is safe
// for concurrent use by several builds.
type Runtime struct {
	store      storage.Store
	ws         *workStore // the store working containers are made in (worklayer.go)
	runtime    string
	policyPath string
	rootless   bool
	insecure   bool
	certDir    string
	regDir     string
	ulimits    []string
	runRoot    string
	gpuCfg     GPUConfig
	gpu        gpuState
	pullNever  bool
	// noStaging: every step is committed the plain way (NoStagingEnv)
	noStaging bool
	// buildahRun: commands run through Buildah's Run (BuildahRunEnv)
	buildahRun bool
	// buildahCopy: local copies go through Buildah's Add (BuildahCopyEnv)
	buildahCopy bool
	reaped      Reaped
	guard       *guard
	guardOnce   sync.Once // starts guard (ensureGuard), or, at Close, rules it out
	guardErr    error
	guardFor    int // a guard's Runtime: the PID of the dead process it cleans up after (0: none); it starts no guard

	leftMu    sync.Mutex
	leftovers []*buildah.Builder // working containers whose removal failed

	deleteMu sync.Mutex // one removal at a time (deleteInBackground)
	pendMu   sync.Mutex // guards pending and settled
	pending  int        // working containers being removed
	settled  *sync.Cond // pending went to 0 (on pendMu; made by SettleDeletes)

	runDirs dirPool // OCI bundle directories free for the next command (takeRunDir)
}

// NoStagingEnv, set to 1, makes every step commit the plain way, through
// Buildah's commit, which reads the layer and writes its files a second
// time, instead of moving the working container's own files into the layer
// (directcommit.go, staged.go): the path the shortcuts are tested against,
// and a way around them.
const NoStagingEnv = "STRATA_NO_STAGED_LAYERS"

// Open opens (creating if needed) the store described by cfg. The first
// step it executes starts the build guard (guard.go), which cleans up
// after this process if it dies without Close.
func Open(cfg Config) (*Runtime, error) { return open(cfg, 0) }

// open is Open; guardFor, when not 0, opens for the guard (guard.go) of
// that dead process, which holds the reap lock from before open to after
// Close and starts no guard of its own.
func open(cfg Config, guardFor int) (*Runtime, error) {
	asGuard := guardFor != 0
	if err := checkReexec(); err != nil {
		return nil, err
	}
	logrus.SetLevel(logrus.ErrorLevel)
	if !asGuard {
		// The first working container reads containers.conf (Buildah's
		// defaults: about 4 ms here); read it now, while the caller plans
		// its build, so that the first step that runs finds it read.
		go func() { _, _ = config.Default() }()
	}
	rt := cfg.Runtime
	if rt == "" {
		rt = "runc"
	}
	rtPath, err := exec.LookPath(rt)
	if err != nil {
		return nil, fmt.Errorf("OCI runtime %q not found (install runc: apt-get install runc): %w", rt, err)
	}
	opts, err := storage.DefaultStoreOptions()
	if err != nil {
		return nil, fmt.Errorf("reading storage defaults: %w", err)
	}
	if cfg.GraphRoot != "" {
		opts.GraphRoot = cfg.GraphRoot
	}
	if cfg.RunRoot != "" {
		opts.RunRoot = cfg.RunRoot
	}
	if os.Getenv("XDG_RUNTIME_DIR") == "" {
		// runc keeps its state under XDG_RUNTIME_DIR; without logind it is
		// unset. Take the directory containers/storage itself falls back
		// to (/run/user/UID, else $TMPDIR/storage-run-UID, owned by the
		// user and private): it outlives any one store, so programs this
		// process starts later (which inherit the variable) never find it
		// pointing at a store's run root that was deleted.
		dir, err := homedir.GetRuntimeDir()
		if err != nil {
			return nil, fmt.Errorf("no runtime directory for runc (set XDG_RUNTIME_DIR to a private directory): %w", err)
		}
		os.Setenv("XDG_RUNTIME_DIR", dir)
	}
	var store storage.Store
	var errs []error
	for _, d := range storeDrivers(cfg.Driver, opts) {
		o := opts
		o.GraphDriverName, o.GraphDriverOptions = d.name, d.options
		s, err := storage.GetStore(o)
		if err == nil {
			store = s
			break
		}
		errs = append(errs, fmt.Errorf("driver %s: %w", d.name, err))
	}
	if store == nil {
		return nil, fmt.Errorf("opening storage at %s: %w", opts.GraphRoot, errors.Join(errs...))
	}
	policy, err := policyPath()
	if err != nil {
		store.Shutdown(false)
		return nil, err
	}
	var lim syscall.Rlimit
	var ulimits []string
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		// Buildah asks for a large default that a process without
		// CAP_SYS_RESOURCE cannot grant; ask for what we have.
		ulimits = append(ulimits, fmt.Sprintf("nofile=%d:%d", lim.Cur, lim.Max))
	}
	r := &Runtime{
		store:       store,
		runtime:     rtPath,
		policyPath:  policy,
		rootless:    unshare.IsRootless(),
		insecure:    cfg.Insecure,
		certDir:     cfg.CertDir,
		regDir:      cfg.RegistriesDir,
		ulimits:     ulimits,
		runRoot:     opts.RunRoot,
		gpuCfg:      cfg.GPU,
		pullNever:   cfg.PullPolicy == "never",
		noStaging:   os.Getenv(NoStagingEnv) == "1",
		buildahRun:  os.Getenv(BuildahRunEnv) == "1",
		buildahCopy: os.Getenv(BuildahCopyEnv) == "1",
		guardFor:    guardFor,
	}
	r.ws = newWorkStore(store)
	if err := r.lockProcess(); err != nil {
		store.Shutdown(false)
		return nil, err
	}
	if asGuard {
		r.reaped = r.reap()
	} else {
		r.reaped = r.reapLocked()
	}
	// The guard starts with the first step that runs (ensureGuard): a
	// build whose steps are all cached never starts one.
	return r, nil
}

type storeDriver struct {
	name    string
	options []string
}

// storeDrivers is the storage driver to open the store with, and its
// options, in the order to try them, as podman and buildah choose: the
// one Config names; else the one storage.conf (the user's, else the
// system's, or $CONTAINERS_STORAGE_CONF) or $STORAGE_DRIVER names, with
// the options it gives, so that podman lists and runs what strata builds
// in the same store; else the driver the store already holds (a store
// podman made with vfs stays vfs); else native overlay (without a
// configured mount_program: fuse-overlayfs needs /dev/fuse, which
// ordinary users often cannot open), then vfs.
func storeDrivers(driver string, opts storage.StoreOptions) []storeDriver {
	switch {
	case driver != "" && driver == opts.GraphDriverName:
		return []storeDriver{{driver, opts.GraphDriverOptions}}
	case driver != "":
		return []storeDriver{{driver, nil}}
	case opts.GraphDriverName != "":
		return []storeDriver{{opts.GraphDriverName, opts.GraphDriverOptions}}
	}
	var native []string
	for _, o := range opts.GraphDriverOptions {
		if !strings.Contains(o, "mount_program") {
			native = append(native, o)
		}
	}
	overlay, vfs := storeDriver{"overlay", native}, storeDriver{"vfs", nil}
	has := func(d string) bool {
		st, err := os.Stat(filepath.Join(opts.GraphRoot, d+"-layers"))
		return err == nil && st.IsDir()
	}
	if has("vfs") && !has("overlay") {
		return []storeDriver{vfs}
	}
	return []storeDriver{overlay, vfs}
}

// Store returns the open store.
func (r *Runtime) Store() storage.Store { return r.store }

// Close releases the store.
func (r *Runtime) Close() error {
	r.guardOnce.Do(func() {}) // no guard starts after this
	r.SettleDeletes()
	r.retryDeletes()
	r.gpuCleanup()
	r.dropRunDirs()
	r.ws.dropDirs()
	r.unlockProcess()
	_, err := r.store.Shutdown(false)
	r.guard.stop()
	return err
}

// SystemContext returns the containers/image settings for pulls and pushes.
func (r *Runtime) SystemContext() *types.SystemContext {
	sc := &types.SystemContext{SignaturePolicyPath: r.policyPath}
	// Honour REGISTRY_AUTH_FILE as podman and buildah do; otherwise
	// containers/image looks in the usual auth.json places.
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		sc.AuthFilePath = p
	}
	if r.certDir != "" {
		sc.DockerCertPath = r.certDir
	}
	if r.regDir != "" {
		sc.RegistriesDirPath = r.regDir
	}
	if r.insecure {
		sc.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
		sc.OCIInsecureSkipTLSVerify = true
	}
	return sc
}

// policyPath returns "" when the user or the system has a signature policy,
// else the path of a policy that accepts everything, written once into the
// user's own config directory.
func policyPath() (string, error) {
	cfgDir, err := os.UserConfigDir()
	if err == nil {
		if _, err := os.Stat(filepath.Join(cfgDir, "containers", "policy.json")); err == nil {
			return "", nil
		}
	}
	if _, err := os.Stat("/etc/containers/policy.json"); err == nil {
		return "", nil
	}
	if cfgDir == "" {
		return "", errors.New("no signature policy found and no user config directory to write one: create /etc/containers/policy.json")
	}
	p := filepath.Join(cfgDir, "strata", "policy.json")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("writing default signature policy: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing default signature policy: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("writing default signature policy: %w", err)
	}
	return p, nil
}
