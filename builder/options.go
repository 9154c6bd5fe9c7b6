package builder

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/cloudauth"
	"github.com/stratabuild/strata/gpu"
	"github.com/stratabuild/strata/runners"
)

type stepOptions struct {
	mounts      []runMount // CacheMount
	force       bool
	env         map[string]string
	secrets     []Secret
	secretFiles []runMount // SecretFile: type secret, with its Secret
	gpu         gpu.Request
	err         error
}

// StepOption changes any step. ForceBuild is one.
type StepOption interface {
	RunOption
	AddOption
	applyStep(*stepOptions)
}

// RunOption changes a RunCommands or RunFunction step. Every RunOption is
// also a PackageOption.
type RunOption interface {
	applyRun(*stepOptions)
	applyPkg(*pkgOptions)
	applyDockerfile(*dfOptions)
}

// AddOption changes an AddLocalFile or AddLocalDir step.
type AddOption interface{ applyAdd(*addOptions) }

// IgnoreOption is Ignore: it applies to AddLocalDir and to Dockerfiles
// (where it replaces the .dockerignore file).
type IgnoreOption interface {
	AddOption
	DockerfileOption
}

type addOptions struct {
	stepOptions
	copy       bool
	ignore     []string
	ignoreFunc func(string) bool
	pythonPath []string
}

type stepOption func(*stepOptions)

func (f stepOption) applyStep(o *stepOptions) { f(o) }
func (f stepOption) applyRun(o *stepOptions)  { f(o) }
func (f stepOption) applyAdd(o *addOptions)   { f(&o.stepOptions) }

type runOption func(*stepOptions)

func (f runOption) applyRun(o *stepOptions) { f(o) }

type addOption func(*addOptions)

func (f addOption) applyAdd(o *addOptions) { f(o) }

func applyStep(o *stepOptions, opts []StepOption) {
	for _, op := range opts {
		op.applyStep(o)
	}
}

// ForceBuild runs the step even when its cache entry exists, and with it
// every later step. Default: off. STRATA_FORCE_BUILD=1 turns it on for every
// step.
func ForceBuild() StepOption { return stepOption(func(o *stepOptions) { o.force = true }) }

// WithEnv sets environment variables for this RunCommands step only; they
// are not written to the image config. They are part of the cache key.
func WithEnv(vars map[string]string) RunOption {
	return runOption(func(o *stepOptions) {
		if o.env == nil {
			o.env = map[string]string{}
		}
		for k, v := range vars {
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsAny(v, "\x00") {
				o.err = fmt.Errorf("WithEnv: bad variable %q", k)
				continue
			}
			o.env[k] = v
		}
	})
}

// WithSecrets exposes secrets to this RunCommands step only, as environment
// variables. Their names enter the cache key; their values never enter a key,
// a layer, the image config or a log line (output that contains a value is
// redacted).
func WithSecrets(secrets ...Secret) RunOption {
	return runOption(func(o *stepOptions) {
		for _, s := range secrets {
			if s.err != nil {
				o.err = s.err
			}
		}
		o.secrets = append(o.secrets, secrets...)
	})
}

// SecretFile mounts the value of key in secret as the file target while
// this step runs only: a private file outside the image (mode 0400),
// mounted read-only, and no environment variable. The secret's name, the
// key and the target enter the cache key; the value never enters a key, a
// layer, the image config or a log line (output holding it is redacted).
// A key the secret does not hold fails the step before it runs. For
// Dockerfiles, RUN --mount=type=secret,id=KEY,target=PATH does the same.
func SecretFile(secret Secret, key, target string) RunOption {
	return runOption(func(o *stepOptions) {
		switch {
		case secret.err != nil:
			o.err = secret.err
		case key == "":
			o.err = errors.New("SecretFile: no key given")
		case !path.IsAbs(target) || path.Clean(target) == "/":
			o.err = fmt.Errorf("SecretFile(%s, %s): the target %q must be an absolute file path", secret.name, key, target)
		}
		sec := secret
		o.secretFiles = append(o.secretFiles, runMount{typ: "secret", id: key, target: path.Clean(target), required: true, secret: &sec})
	})
}

// GPU runs the step with GPUs, as Modal's gpu= parameter: "any", "all",
// a model ("H100", "A100-80GB", case-insensitive, matched against the
// driver's name), a count ("H100:2"), or several acceptable types in order
// of preference (GPU("H100", "A100")). The GPUs are injected through CDI
// for the step only: nothing GPU-specific reaches the layer. The request,
// in canonical form, enters the step's cache key; the host's GPUs (UUIDs,
// driver version) do not, so the same definition hits the cache on another
// GPU host. A host without the NVIDIA driver fails GPU steps only, with an
// error that matches gpu.ErrNoDriver. Default: no GPU.
func GPU(types ...string) RunOption {
	return runOption(func(o *stepOptions) {
		req, err := gpu.ParseRequest(types...)
		if err != nil {
			o.err = err
			return
		}
		o.gpu = req
	})
}

// Copy makes an AddLocalFile or AddLocalDir a normal build step, so later
// steps see the files. Default: off (files are added after every build step).
func Copy() AddOption { return addOption(func(o *addOptions) { o.copy = true }) }

// Ignore excludes files from AddLocalDir with dockerignore patterns relative
// to the local directory ("**" spans directories, "!" re-includes, a leading
// "/" is the directory's root). Default: nothing is excluded.
func Ignore(patterns ...string) IgnoreOption {
	return addOption(func(o *addOptions) { o.ignore = append(o.ignore, patterns...) })
}

// IgnoreFunc excludes from AddLocalDir the files and directories for
// which ignore returns true, as Modal's callable ignore= does. It is called
// when the build starts with each path under the local directory,
// relative and slash-separated ("src/app.pyc"), after the Ignore patterns;
// a directory it excludes is not descended into. The step's key covers the
// files it leaves in (their names, modes and contents), as for Ignore.
func IgnoreFunc(ignore func(path string) bool) AddOption {
	return addOption(func(o *addOptions) { o.ignoreFunc = ignore })
}

// Secret is a named set of environment variables whose values are kept out
// of every layer, config, key, log and error.
type Secret struct {
	name string
	env  map[string]string
	err  error
}

// SecretFromMap returns a secret holding vars.
func SecretFromMap(name string, vars map[string]string) Secret {
	return Secret{name: name, env: copyMap(vars)}
}

// SecretFromEnv returns a secret holding the named variables of the calling
// process's environment. A variable that is not set is an error at Build.
func SecretFromEnv(names ...string) Secret {
	s := Secret{name: "env", env: map[string]string{}}
	for _, n := range names {
		v, ok := os.LookupEnv(n)
		if !ok {
			s.err = fmt.Errorf("secret variable %s is not set in the environment", n)
			continue
		}
		s.env[n] = v
	}
	return s
}

// SecretFromDotenv returns a secret named name holding the variables of a
// dotenv file (KEY=value lines; blank lines and lines starting with # are
// skipped; an optional "export " prefix and quotes around the value are
// removed), as Modal's Secret.from_dotenv. An unreadable or malformed file
// is an error at Build that names the file and line, never a value.
func SecretFromDotenv(name, path string) Secret {
	s := Secret{name: name, env: map[string]string{}}
	raw, err := os.ReadFile(path)
	if err != nil {
		s.err = fmt.Errorf("secret %s: %w", name, err)
		return s
	}
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\x00") {
			s.err = fmt.Errorf("secret %s: %s line %d is not KEY=value", name, path, i+1)
			return s
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		s.env[k] = v
	}
	return s
}

// Name returns the secret's name.
func (s Secret) Name() string { return s.name }

func (s Secret) keys() []string { return slices.Sorted(maps.Keys(s.env)) }

// BaseOption changes how a registry base is pulled.
type BaseOption interface{ applyBase(*baseOptions) }

type baseOptions struct {
	auth *types.DockerAuthConfig
	err  error

	used   map[string]bool // base-specific options given, by name
	debian runners.Debian  // DebianMirror settings
	mirror *runners.Debian // DebianSlim: build from a mirror instead

	exchange  cloudauth.Exchanger // FromAWSECR, FromGCPArtifactRegistry
	addPython string              // registry bases

	platformSet bool   // Platform
	platform    string // "" the host's
}

// named records that the option name was given.
func (o *baseOptions) named(name string) {
	if o.used == nil {
		o.used = map[string]bool{}
	}
	o.used[name] = true
}

// check rejects base options that method does not take.
func (o *baseOptions) check(method string, allowed ...string) error {
	for _, name := range slices.Sorted(maps.Keys(o.used)) {
		if !slices.Contains(allowed, name) {
			return fmt.Errorf("option %s does not apply to %s", name, method)
		}
	}
	return o.err
}

type baseOption func(*baseOptions)

// Platform builds the chain that starts from this base for platform p
// ("linux/arm64"), whatever the build's Platforms are (Dockerfile's FROM
// --platform): the platform's image of a registry index or OCI layout,
// or the platform a rootfs archive is for (an archive cannot say), or the
// architecture DebianMirror bootstraps. It applies to FromRegistry,
// FromArchive, FromOCILayout and DebianMirror.
func Platform(p string) BaseOption {
	return baseOption(func(o *baseOptions) {
		n, err := normalizePlatform(p)
		o.pinPlatform("Platform", n, err)
	})
}

// pinPlatform records the option named option, which pins the base's
// chain to platform p (normalized; the host's is kept as ""), or err.
func (o *baseOptions) pinPlatform(option, p string, err error) {
	o.named(option)
	if err != nil {
		o.err = fmt.Errorf("%s: %w", option, err)
		return
	}
	if p == hostPlatform() {
		p = ""
	}
	o.platformSet, o.platform = true, p
}

// withPlatform applies a Platform option to the base of img.
func (o *baseOptions) withPlatform(img Image) Image {
	if o.platformSet && img.n != nil && img.n.base != nil {
		img.n.base.platformSet, img.n.base.platform = true, o.platform
	}
	return img
}

func (f baseOption) applyBase(o *baseOptions) { f(o) }

// WithRegistryAuth pulls with the credentials in secret, read from its
// REGISTRY_USERNAME and REGISTRY_PASSWORD variables (as Modal's
// from_registry does). Default: credentials from auth.json.
func WithRegistryAuth(secret Secret) BaseOption {
	return baseOption(func(o *baseOptions) {
		o.named("WithRegistryAuth")
		if secret.err != nil {
			o.err = secret.err
			return
		}
		u, p := secret.env["REGISTRY_USERNAME"], secret.env["REGISTRY_PASSWORD"]
		if u == "" || p == "" {
			o.err = errors.New("WithRegistryAuth: the secret needs REGISTRY_USERNAME and REGISTRY_PASSWORD")
			return
		}
		o.auth = &types.DockerAuthConfig{Username: u, Password: p}
	})
}

// CacheMount mounts a persistent cache directory at target while the step
// runs, like Dockerfile's RUN --mount=type=cache,target=...: its content
// is kept between builds (per user, under WithCacheMountDir), shared by
// every step that names the same target, and never committed to a layer
// or keyed. Given to PipInstall, UvPipInstall or AptInstall, the package
// manager keeps its downloads there instead of not caching:
//
//	img.PipInstall([]string{"numpy"}, builder.CacheMount("/root/.cache/pip"))
//
// Default: no cache mount.
func CacheMount(target string) RunOption { return cacheMount(target, "shared") }

// LockedCacheMount is CacheMount for tools that cannot share their cache
// with a concurrent build (apt): steps that use it wait for each other.
func LockedCacheMount(target string) RunOption { return cacheMount(target, "locked") }

// Volumes mounts named, persistent read-write directories while the step
// runs, as Modal's volumes= does: each key is the target path, each value
// the volume's name ([A-Za-z0-9_.-], not starting with a dot). A volume
// lives under WithCacheMountDir (volumes/NAME), is shared by every step
// and build that names it, and is never committed to a layer; its name
// and target enter the key, its content does not (a step that reads a
// volume is not rebuilt when the volume changes: ForceBuild it). Unlike a
// cache mount it is not saved by CacheMountsTo.
func Volumes(volumes map[string]string) RunOption {
	return runOption(func(o *stepOptions) {
		for _, target := range slices.Sorted(maps.Keys(volumes)) {
			name := volumes[target]
			switch {
			case !path.IsAbs(target) || path.Clean(target) == "/":
				o.err = fmt.Errorf("Volumes: target %q must be an absolute path other than /", target)
				return
			case !validVolumeName(name):
				o.err = fmt.Errorf("Volumes: bad volume name %q for %s (use letters, digits, '_', '.', '-', not starting with '.')", name, target)
				return
			}
			o.mounts = append(o.mounts, runMount{typ: "volume", target: path.Clean(target), id: name})
		}
	})
}

func validVolumeName(n string) bool {
	if n == "" || n[0] == '.' || len(n) > 128 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

func cacheMount(target, sharing string) RunOption {
	return runOption(func(o *stepOptions) {
		if !path.IsAbs(target) {
			o.err = fmt.Errorf("CacheMount: target %q must be an absolute path", target)
			return
		}
		t := path.Clean(target)
		o.mounts = append(o.mounts, runMount{typ: "cache", target: t, id: t, sharing: sharing})
	})
}
