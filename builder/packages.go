package builder

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/stratabuild/strata/layers"
)

// PackageOption changes a package-manager step: AptInstall, PipInstall and
// the other pip, uv, poetry and micromamba steps. ForceBuild, WithEnv and
// WithSecrets are package options too. An option that does not apply to the
// step it is given to (say Groups on PipInstall) is an error at Build.
type PackageOption interface{ applyPkg(*pkgOptions) }

type pkgOptions struct {
	stepOptions
	used map[string]bool // package-specific options given, by name

	findLinks, indexURL, extraIndexURL string
	pre                                bool
	extra                              []string
	requirements                       []string
	uvVersion                          string
	groups, extras                     []string
	frozen                             bool
	poetryWith, poetryWithout, only    []string
	poetryVersion                      string
	lockfile                           string
	ignoreLockfile, oldInstaller       bool
	channels                           []string
	specFile                           string
	optional                           []string
}

func (f stepOption) applyPkg(o *pkgOptions) { f(&o.stepOptions) }
func (f runOption) applyPkg(o *pkgOptions)  { f(&o.stepOptions) }

type pkgOption struct {
	name string
	f    func(*pkgOptions)
}

func (p pkgOption) applyPkg(o *pkgOptions) {
	if o.used == nil {
		o.used = map[string]bool{}
	}
	o.used[p.name] = true
	p.f(o)
}

// collectPkg applies opts over the defaults and rejects package options
// that method does not take.
func collectPkg(method string, allowed []string, opts []PackageOption) (pkgOptions, error) {
	o := pkgOptions{frozen: true, poetryVersion: "latest"}
	for _, op := range opts {
		op.applyPkg(&o)
	}
	for _, name := range slices.Sorted(maps.Keys(o.used)) {
		if !slices.Contains(allowed, name) {
			return o, fmt.Errorf("option %s does not apply to %s", name, method)
		}
	}
	return o, o.err
}

var pipIndexOptions = []string{"FindLinks", "IndexURL", "ExtraIndexURL", "Pre", "ExtraOptions"}

// FindLinks passes --find-links (-f) to pip or uv: a URL or a directory
// inside the image with archives to install from. Default: none.
func FindLinks(url string) PackageOption {
	return pkgOption{"FindLinks", func(o *pkgOptions) { o.findLinks = url }}
}

// IndexURL passes --index-url (-i) to pip or uv. Default: the tool's own
// (PyPI unless the image configures another).
func IndexURL(url string) PackageOption {
	return pkgOption{"IndexURL", func(o *pkgOptions) { o.indexURL = url }}
}

// ExtraIndexURL passes --extra-index-url to pip or uv. Default: none.
func ExtraIndexURL(url string) PackageOption {
	return pkgOption{"ExtraIndexURL", func(o *pkgOptions) { o.extraIndexURL = url }}
}

// Pre allows pre-releases (pip --pre, uv --prerelease allow). Default: off.
func Pre() PackageOption { return pkgOption{"Pre", func(o *pkgOptions) { o.pre = true }} }

// ExtraOptions appends options to the tool's command line, each word quoted
// as given: ExtraOptions("--no-build-isolation", "--no-deps"). Modal takes
// one string; strata takes words so that nothing is split or expanded by a
// shell. Default: none.
func ExtraOptions(words ...string) PackageOption {
	return pkgOption{"ExtraOptions", func(o *pkgOptions) { o.extra = append(o.extra, words...) }}
}

// Requirements adds local requirements files to UvPipInstall (uv pip
// install -r). Their contents enter the step's cache key; they are mounted
// for the step, not copied into the image. Default: none.
func Requirements(paths ...string) PackageOption {
	return pkgOption{"Requirements", func(o *pkgOptions) { o.requirements = append(o.requirements, paths...) }}
}

// UvVersion installs that version of uv with pip before the step runs.
// Default: the uv found on the image's PATH.
func UvVersion(v string) PackageOption {
	return pkgOption{"UvVersion", func(o *pkgOptions) { o.uvVersion = v }}
}

// Groups installs these dependency groups in UvSync (uv sync --group).
func Groups(groups ...string) PackageOption {
	return pkgOption{"Groups", func(o *pkgOptions) { o.groups = append(o.groups, groups...) }}
}

// Extras installs these optional dependencies in UvSync (uv sync --extra).
func Extras(extras ...string) PackageOption {
	return pkgOption{"Extras", func(o *pkgOptions) { o.extras = append(o.extras, extras...) }}
}

// Frozen says whether UvSync installs exactly what uv.lock says (uv sync
// --frozen) when a uv.lock is present. Default: true.
func Frozen(frozen bool) PackageOption {
	return pkgOption{"Frozen", func(o *pkgOptions) { o.frozen = frozen }}
}

// PoetryWith installs these optional dependency groups (poetry install
// --with). Modal's with_.
func PoetryWith(groups ...string) PackageOption {
	return pkgOption{"PoetryWith", func(o *pkgOptions) { o.poetryWith = append(o.poetryWith, groups...) }}
}

// PoetryWithout leaves out these dependency groups (poetry install
// --without).
func PoetryWithout(groups ...string) PackageOption {
	return pkgOption{"PoetryWithout", func(o *pkgOptions) { o.poetryWithout = append(o.poetryWithout, groups...) }}
}

// PoetryOnly installs only these dependency groups (poetry install --only).
func PoetryOnly(groups ...string) PackageOption {
	return pkgOption{"PoetryOnly", func(o *pkgOptions) { o.only = append(o.only, groups...) }}
}

// PoetryVersion picks the poetry that PoetryInstallFromFile installs with
// pip first: "latest" (the default) for the newest the index has, a version
// such as "1.8.3", or "" to install nothing and use the poetry already on
// the image's PATH.
func PoetryVersion(v string) PackageOption {
	return pkgOption{"PoetryVersion", func(o *pkgOptions) { o.poetryVersion = v }}
}

// Lockfile names the poetry.lock to use. Default: poetry.lock beside the
// pyproject.toml, which must exist unless IgnoreLockfile is given.
func Lockfile(path string) PackageOption {
	return pkgOption{"Lockfile", func(o *pkgOptions) { o.lockfile = path }}
}

// IgnoreLockfile makes poetry resolve afresh, without any poetry.lock.
func IgnoreLockfile() PackageOption {
	return pkgOption{"IgnoreLockfile", func(o *pkgOptions) { o.ignoreLockfile = true }}
}

// OldInstaller turns off poetry's parallel installer
// (POETRY_EXPERIMENTAL_NEW_INSTALLER=false).
func OldInstaller() PackageOption {
	return pkgOption{"OldInstaller", func(o *pkgOptions) { o.oldInstaller = true }}
}

// Channels sets the conda channels of MicromambaInstall (-c, in order).
// Default: the image's configured channels.
func Channels(channels ...string) PackageOption {
	return pkgOption{"Channels", func(o *pkgOptions) { o.channels = append(o.channels, channels...) }}
}

// SpecFile installs from a local environment or explicit spec file in
// MicromambaInstall (micromamba install -f). It is mounted for the step and
// its content enters the cache key.
func SpecFile(path string) PackageOption {
	return pkgOption{"SpecFile", func(o *pkgOptions) { o.specFile = path }}
}

// OptionalDependencies also installs these [project.optional-dependencies]
// groups in PipInstallFromPyproject. A group the file does not have is an
// error.
func OptionalDependencies(groups ...string) PackageOption {
	return pkgOption{"OptionalDependencies", func(o *pkgOptions) { o.optional = append(o.optional, groups...) }}
}

// hostInput is a host file mounted read-only for one step; its content
// digest enters the step's key under its container path.
type hostInput struct {
	src, dest string
	optional  bool // skipped, and left out of the key, when missing
}

// inputDir is where a step's host inputs are mounted; the directory never
// reaches a layer.
const inputDir = "/.strata/in"

func (i Image) pkgStep(method string, cmds []string, o pkgOptions, inputs []hostInput, resolve func() ([]string, error), err error) Image {
	// The package manager keeps its downloads in the first cache mount
	// (not in a volume).
	if k := slices.IndexFunc(o.mounts, func(m runMount) bool { return m.typ == "cache" }); k >= 0 {
		target := o.mounts[k].target
		cmds = useCacheMount(cmds, target)
		if resolve != nil {
			r := resolve
			resolve = func() ([]string, error) {
				c, err := r()
				return useCacheMount(c, target), err
			}
		}
	}
	s := &stepDef{
		method:  method,
		kind:    layers.KindRun,
		args:    cmds,
		env:     o.env,
		shell:   defaultShell,
		opts:    o.stepOptions,
		inputs:  inputs,
		resolve: resolve,
		mounts:  o.mounts,
	}
	return i.push(s, err)
}

// useCacheMount makes pip, uv and apt-get keep their downloads in the cache
// mount at dir instead of not caching at all.
func useCacheMount(cmds []string, dir string) []string {
	q := shellQuote(dir)
	out := make([]string, len(cmds))
	for k, c := range cmds {
		c = strings.ReplaceAll(c, "pip install --no-cache-dir", "pip install --cache-dir "+q)
		c = strings.ReplaceAll(c, " --no-cache ", " --cache-dir "+q+" ")
		if strings.Contains(c, "apt-get") {
			c = "mkdir -p " + shellQuote(path.Join(dir, "partial")) + " && " + strings.ReplaceAll(c, "apt-get install",
				"apt-get -o Dir::Cache::Archives="+q+" -o APT::Keep-Downloaded-Packages=true install")
		}
		out[k] = c
	}
	return out
}

var aptName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?([=/][A-Za-z0-9.+~:_-]+)?$`)

// AptInstall installs Debian packages with apt-get (update, then install
// -y, non-interactive), as Modal's apt_install. Names must be Debian package
// names, optionally with "=version", "/release" or ":arch".
func (i Image) AptInstall(pkgs []string, opts ...PackageOption) Image {
	o, err := collectPkg("AptInstall", nil, opts)
	list := sortedUnique(pkgs)
	if err == nil && len(list) == 0 {
		err = errors.New("no packages given")
	}
	for _, p := range list {
		if err == nil && !aptName.MatchString(p) {
			err = fmt.Errorf("%q is not a Debian package name (lowercase letters, digits, \"+\", \"-\", \".\", optionally followed by =version, /release or :arch)", p)
		}
	}
	cmd := "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y " + shellJoin(list)
	return i.pkgStep("AptInstall", []string{cmd}, o, nil, nil, err)
}

// checkPipArgs rejects package arguments that are empty, hold NUL bytes or
// look like options (options go in ExtraOptions).
func checkPipArgs(pkgs []string, allowEmpty bool) error {
	if len(pkgs) == 0 && !allowEmpty {
		return errors.New("no packages given")
	}
	for _, p := range pkgs {
		switch {
		case strings.TrimSpace(p) == "":
			return errors.New("empty package name")
		case strings.ContainsRune(p, 0):
			return fmt.Errorf("package %q contains a NUL byte", p)
		case strings.HasPrefix(p, "-"):
			return fmt.Errorf("package %q looks like an option: pass options with ExtraOptions", p)
		}
	}
	return nil
}

func checkWords(what string, words []string) error {
	for _, w := range words {
		if strings.ContainsRune(w, 0) {
			return fmt.Errorf("%s %q contains a NUL byte", what, w)
		}
	}
	return nil
}

// pipFlags renders the index options shared by pip and uv.
func pipFlags(o pkgOptions, uv bool) []string {
	var f []string
	if o.findLinks != "" {
		f = append(f, "--find-links", o.findLinks)
	}
	if o.indexURL != "" {
		f = append(f, "--index-url", o.indexURL)
	}
	if o.extraIndexURL != "" {
		f = append(f, "--extra-index-url", o.extraIndexURL)
	}
	if o.pre {
		if uv {
			f = append(f, "--prerelease", "allow")
		} else {
			f = append(f, "--pre")
		}
	}
	return append(f, o.extra...)
}

// pipInstall is the pip command line strata runs: pip as a module of the
// image's "python", without a download cache (it would land in the layer).
const pipInstall = "python -m pip install --no-cache-dir"

// PipInstall installs Python packages with pip, as Modal's pip_install.
// Each argument is a requirement specifier ("numpy", "httpx~=0.23.3"),
// passed to pip as one quoted word; they are sorted so that their order
// does not change the cache key. pip runs as "python -m pip", so the image
// needs "python" on its PATH (DebianSlim provides it).
func (i Image) PipInstall(pkgs []string, opts ...PackageOption) Image {
	o, err := collectPkg("PipInstall", pipIndexOptions, opts)
	list := sortedUnique(pkgs)
	if err == nil {
		err = checkPipArgs(list, false)
	}
	if err == nil {
		err = checkWords("option", o.extra)
	}
	cmd := pipInstall + " " + shellJoin(append(list, pipFlags(o, false)...))
	return i.pkgStep("PipInstall", []string{cmd}, o, nil, nil, err)
}

// PipInstallFromRequirements installs the packages of a local
// requirements.txt with pip -r. The file's content enters the cache key; it
// is mounted for the step, not copied into the image (so -r/-c lines that
// name other local files do not resolve: merge them, or copy them in first).
func (i Image) PipInstallFromRequirements(requirementsTxt string, opts ...PackageOption) Image {
	o, err := collectPkg("PipInstallFromRequirements", pipIndexOptions, opts)
	if err == nil && requirementsTxt == "" {
		err = errors.New("requirements path is empty")
	}
	if err == nil {
		err = checkWords("option", o.extra)
	}
	dest := path.Join(inputDir, "requirements", filepath.Base(requirementsTxt))
	cmd := pipInstall + " " + shellJoin(append([]string{"-r", dest}, pipFlags(o, false)...))
	return i.pkgStep("PipInstallFromRequirements", []string{cmd}, o, []hostInput{{src: requirementsTxt, dest: dest}}, nil, err)
}

// PipInstallFromPyproject installs the dependencies listed in a local
// pyproject.toml ([project].dependencies, plus the groups named with
// OptionalDependencies) with pip. The file is read when the build starts;
// the resolved list of requirements, not the file, enters the cache key, so
// edits elsewhere in the file do not rebuild the step.
func (i Image) PipInstallFromPyproject(pyprojectToml string, opts ...PackageOption) Image {
	o, err := collectPkg("PipInstallFromPyproject", append([]string{"OptionalDependencies"}, pipIndexOptions...), opts)
	if err == nil && pyprojectToml == "" {
		err = errors.New("pyproject path is empty")
	}
	if err == nil {
		err = checkWords("option", o.extra)
	}
	resolve := func() ([]string, error) {
		deps, err := pyprojectDependencies(pyprojectToml, o.optional)
		if err != nil {
			return nil, err
		}
		if len(deps) == 0 {
			return nil, fmt.Errorf("%s lists no dependencies", pyprojectToml)
		}
		if err := checkPipArgs(deps, false); err != nil {
			return nil, fmt.Errorf("%s: %w", pyprojectToml, err)
		}
		return []string{pipInstall + " " + shellJoin(append(sortedUnique(deps), pipFlags(o, false)...))}, nil
	}
	return i.pkgStep("PipInstallFromPyproject", nil, o, nil, resolve, err)
}

// pyprojectDependencies reads [project].dependencies and the named
// [project.optional-dependencies] groups.
func pyprojectDependencies(file string, optional []string) ([]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading pyproject: %w", err)
	}
	var doc struct {
		Project struct {
			Dependencies         []string            `toml:"dependencies"`
			OptionalDependencies map[string][]string `toml:"optional-dependencies"`
		} `toml:"project"`
	}
	if err := toml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", file, err)
	}
	deps := append([]string(nil), doc.Project.Dependencies...)
	for _, g := range optional {
		list, ok := doc.Project.OptionalDependencies[g]
		if !ok {
			have := slices.Sorted(maps.Keys(doc.Project.OptionalDependencies))
			return nil, fmt.Errorf("%s has no optional dependency group %q (it has: %s)", file, g, strings.Join(have, ", "))
		}
		deps = append(deps, list...)
	}
	return deps, nil
}

// PipInstallPrivateRepos installs packages from private git repositories
// with pip, as Modal's pip_install_private_repos. Each repository is
// "host/owner/name" with an optional "@ref" and "#subdirectory=dir"; the
// token comes from a secret given with WithSecrets: GITHUB_TOKEN for
// github.com, GITLAB_TOKEN for gitlab.com and GIT_TOKEN for any other host.
// The token is read from the environment when the command runs, so it never
// enters the cache key or the logs. Loopback hosts (127.0.0.1, localhost)
// are reached over plain HTTP, every other host over HTTPS.
func (i Image) PipInstallPrivateRepos(repos []string, gitUser string, opts ...PackageOption) Image {
	o, err := collectPkg("PipInstallPrivateRepos", pipIndexOptions, opts)
	if err == nil && len(repos) == 0 {
		err = errors.New("no repositories given")
	}
	if err == nil && (gitUser == "" || strings.ContainsAny(gitUser, ":@/\x00")) {
		err = fmt.Errorf("git user %q must be a plain user name", gitUser)
	}
	var words []string
	for _, r := range sortedUnique(repos) {
		host, rest, ok := strings.Cut(r, "/")
		if err == nil && (!ok || host == "" || strings.Count(rest, "/") < 1 || strings.ContainsAny(r, " \x00'\"$`\\")) {
			err = fmt.Errorf("repository %q must look like host/owner/name[@ref][#subdirectory=dir]", r)
		}
		tokenVar := "GIT_TOKEN"
		switch host {
		case "github.com":
			tokenVar = "GITHUB_TOKEN"
		case "gitlab.com":
			tokenVar = "GITLAB_TOKEN"
		}
		if err == nil && !secretHas(o.secrets, tokenVar) {
			err = fmt.Errorf("repository %s needs a secret holding %s (give it with WithSecrets)", r, tokenVar)
		}
		scheme := "https"
		if h, _, _ := strings.Cut(host, ":"); h == "127.0.0.1" || h == "localhost" || h == "[::1]" {
			scheme = "http"
		}
		// Quoted so that only ${TOKEN} is expanded, when the command runs.
		words = append(words, shellQuote("git+"+scheme+"://"+gitUser+":")+`"${`+tokenVar+`}"`+shellQuote("@"+r))
	}
	if err == nil {
		err = checkWords("option", o.extra)
	}
	cmd := pipInstall + " " + strings.Join(words, " ")
	if f := pipFlags(o, false); len(f) > 0 {
		cmd += " " + shellJoin(f)
	}
	return i.pkgStep("PipInstallPrivateRepos", []string{cmd}, o, nil, nil, err)
}

func secretHas(secrets []Secret, name string) bool {
	for _, s := range secrets {
		if _, ok := s.env[name]; ok {
			return true
		}
	}
	return false
}

// uvInstall returns the command that installs uv with pip when a version
// was asked for.
func uvInstall(o pkgOptions) []string {
	if o.uvVersion == "" {
		return nil
	}
	return []string{pipInstall + " " + shellQuote("uv=="+o.uvVersion)}
}

// UvPipInstall installs Python packages with "uv pip install" into the
// image's first python on PATH, as Modal's uv_pip_install. uv must be on
// the image's PATH, or give UvVersion to install it with pip first.
func (i Image) UvPipInstall(pkgs []string, opts ...PackageOption) Image {
	o, err := collectPkg("UvPipInstall", append([]string{"Requirements", "UvVersion"}, pipIndexOptions...), opts)
	list := sortedUnique(pkgs)
	if err == nil {
		err = checkPipArgs(list, len(o.requirements) > 0)
	}
	if err == nil {
		err = checkWords("option", o.extra)
	}
	if err == nil && strings.ContainsAny(o.uvVersion, " \x00") {
		err = fmt.Errorf("bad uv version %q", o.uvVersion)
	}
	words := append([]string{}, list...)
	var inputs []hostInput
	for k, r := range o.requirements {
		dest := path.Join(inputDir, fmt.Sprintf("requirements-%d", k), filepath.Base(r))
		inputs = append(inputs, hostInput{src: r, dest: dest})
		words = append(words, "--requirements", dest)
	}
	words = append(words, pipFlags(o, true)...)
	cmd := `uv pip install --python "$(command -v python)" --compile-bytecode --no-cache ` + shellJoin(words)
	return i.pkgStep("UvPipInstall", append(uvInstall(o), cmd), o, inputs, nil, err)
}

// uvEnvironment is where UvSync puts the project's virtual environment; its
// bin directory is put first on the image's PATH.
const uvEnvironment = "/.uv/.venv"

// UvSync installs the dependencies of a local uv project (its
// pyproject.toml and, when present, uv.lock) into a virtual environment at
// /.uv/.venv whose bin directory goes first on the image's PATH, as Modal's
// uv_sync. The project itself is not installed (--no-install-project): add
// its source with AddLocalPythonSource. Both files enter the cache key by
// content and are mounted, not copied. uv must be on the image's PATH, or
// give UvVersion.
func (i Image) UvSync(projectDir string, opts ...PackageOption) Image {
	o, err := collectPkg("UvSync", []string{"Groups", "Extras", "Frozen", "ExtraOptions", "UvVersion"}, opts)
	if projectDir == "" {
		projectDir = "."
	}
	if err == nil {
		err = checkWords("option", append(append(append([]string{}, o.groups...), o.extras...), o.extra...))
	}
	src := path.Join(inputDir, "uv-project")
	inputs := []hostInput{
		{src: filepath.Join(projectDir, "pyproject.toml"), dest: src + "/pyproject.toml"},
		{src: filepath.Join(projectDir, "uv.lock"), dest: src + "/uv.lock", optional: true},
	}
	resolve := func() ([]string, error) {
		words := []string{"--project", "/tmp/.strata-uv-project", "--no-install-project", "--compile-bytecode", "--no-cache"}
		if _, err := os.Stat(filepath.Join(projectDir, "uv.lock")); err == nil && o.frozen {
			words = append(words, "--frozen")
		}
		for _, g := range o.groups {
			words = append(words, "--group", g)
		}
		for _, e := range o.extras {
			words = append(words, "--extra", e)
		}
		words = append(words, o.extra...)
		// uv writes beside the project (uv.lock when not frozen), so it
		// works on a copy that is removed afterwards.
		cmd := "cp -R " + src + " /tmp/.strata-uv-project && UV_PROJECT_ENVIRONMENT=" + uvEnvironment +
			" uv sync " + shellJoin(words) + "; rc=$?; rm -rf /tmp/.strata-uv-project; exit $rc"
		return append(uvInstall(o), cmd), nil
	}
	img := i.pkgStep("UvSync", nil, o, inputs, resolve, err)
	img.n.step.pathPrepend = uvEnvironment + "/bin"
	return img
}

// PoetryInstallFromFile installs the dependencies of a local poetry project
// (pyproject.toml and poetry.lock) into the image's python, as Modal's
// poetry_install_from_file; the project itself is not installed. Poetry is
// installed with pip first unless PoetryVersion("") is given. Both files
// enter the cache key by content and are mounted, not copied.
func (i Image) PoetryInstallFromFile(pyprojectToml string, opts ...PackageOption) Image {
	o, err := collectPkg("PoetryInstallFromFile", []string{"Lockfile", "IgnoreLockfile", "PoetryWith", "PoetryWithout", "PoetryOnly", "PoetryVersion", "OldInstaller"}, opts)
	if err == nil && pyprojectToml == "" {
		err = errors.New("pyproject path is empty")
	}
	if err == nil {
		err = checkWords("group", append(append(append([]string{}, o.poetryWith...), o.poetryWithout...), o.only...))
	}
	src := path.Join(inputDir, "poetry-project")
	inputs := []hostInput{{src: pyprojectToml, dest: src + "/pyproject.toml"}}
	if !o.ignoreLockfile {
		lock := o.lockfile
		if lock == "" {
			lock = filepath.Join(filepath.Dir(pyprojectToml), "poetry.lock")
		}
		inputs = append(inputs, hostInput{src: lock, dest: src + "/poetry.lock"})
	}
	var cmds []string
	switch o.poetryVersion {
	case "":
	case "latest":
		cmds = append(cmds, pipInstall+" poetry")
	default:
		cmds = append(cmds, pipInstall+" "+shellQuote("poetry=="+o.poetryVersion))
	}
	words := []string{"install", "--no-root", "--no-interaction"}
	for _, g := range o.poetryWith {
		words = append(words, "--with", g)
	}
	for _, g := range o.poetryWithout {
		words = append(words, "--without", g)
	}
	for _, g := range o.only {
		words = append(words, "--only", g)
	}
	env := "POETRY_VIRTUALENVS_CREATE=false POETRY_CACHE_DIR=/tmp/.strata-poetry-cache"
	if o.oldInstaller {
		env += " POETRY_EXPERIMENTAL_NEW_INSTALLER=false"
	}
	cmds = append(cmds, "cp -R "+src+" /tmp/.strata-poetry-project && cd /tmp/.strata-poetry-project && "+env+" poetry "+shellJoin(words)+
		"; rc=$?; cd / && rm -rf /tmp/.strata-poetry-project /tmp/.strata-poetry-cache; exit $rc")
	return i.pkgStep("PoetryInstallFromFile", cmds, o, inputs, nil, err)
}

// MicromambaInstall installs conda packages into the base environment with
// micromamba, as Modal's micromamba_install, then cleans micromamba's
// package cache so it stays out of the layer. Use it on a Micromamba base.
func (i Image) MicromambaInstall(pkgs []string, opts ...PackageOption) Image {
	o, err := collectPkg("MicromambaInstall", []string{"Channels", "SpecFile"}, opts)
	list := sortedUnique(pkgs)
	if err == nil {
		err = checkPipArgs(list, o.specFile != "")
	}
	if err == nil {
		err = checkWords("channel", o.channels)
	}
	words := []string{"install", "-y", "-n", "base"}
	for _, c := range o.channels {
		words = append(words, "-c", c)
	}
	var inputs []hostInput
	if o.specFile != "" {
		dest := path.Join(inputDir, "spec", filepath.Base(o.specFile))
		inputs = append(inputs, hostInput{src: o.specFile, dest: dest})
		words = append(words, "-f", dest)
	}
	words = append(words, list...)
	cmd := "micromamba " + shellJoin(words) + " && micromamba clean --all --yes"
	return i.pkgStep("MicromambaInstall", []string{cmd}, o, inputs, nil, err)
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
