package builder

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/mount"
	"github.com/stratabuild/strata/runners"
)

// Image is an image definition: a base and a chain of steps. The zero Image
// is an empty image (scratch). Images are values; methods never change the
// receiver.
type Image struct{ n *node }

// node is one link of the persistent list that an Image points at.
type node struct {
	parent *node
	base   *baseDef // set on the root only
	step   *stepDef // nil on the root
	shell  []string // shell for RunCommands from here on
	index  int      // 0 for the base, 1.. for steps
	err    error    // first error recorded on this chain
	df     *dfDef   // FromDockerfile: translated when the build starts
}

type baseDef struct {
	method string
	src    runners.Base
	err    error
	// platformSet: the chain is built for platform ("" the host's)
	// whatever the build's platform is (a Dockerfile's FROM --platform)
	platformSet bool
	platform    string
}

type stepDef struct {
	method string
	kind   layers.Kind
	args   []string
	env    map[string]string // WithEnv for runs, variables for Env
	// local input
	src    string
	copy   bool
	ignore []string
	// ignoreFunc is IgnoreFunc (AddLocalDir)
	ignoreFunc func(string) bool
	dir        bool
	shell      []string // RunCommands: the shell in force when it was added
	opts       stepOptions
	// host files mounted for a run step, keyed by content
	inputs []hostInput
	// resolve, when set, computes a run step's commands when the build
	// starts (from files it reads)
	resolve func() ([]string, error)
	// pathPrepend is put first on the image's PATH after a run step
	pathPrepend string
	fn          Function // RunFunction

	// Dockerfile steps
	df         *dfDef // DockerfileCommands, translated when the build starts
	desc       string // the instruction as written
	pos        string // its place in the Dockerfile, for errors
	exec       bool   // RUN in exec form: args is argv
	unkeyedEnv map[string]string
	noNetwork  bool
	mounts     []runMount
	mkdir      bool // WORKDIR creates the directory
	resetCmd   bool // ENTRYPOINT clears the base's CMD
	copyDef    *copyDef
}

func (i Image) root() *node {
	if i.n == nil {
		return &node{base: &baseDef{method: "Scratch", src: runners.Base{Kind: runners.BaseScratch}}}
	}
	return i.n
}

func (i Image) push(s *stepDef, err error) Image {
	p := i.root()
	n := &node{parent: p, step: s, shell: p.shell, index: p.index + 1, err: p.err}
	if n.err == nil && err != nil {
		n.err = fmt.Errorf("step %d (%s): %w", n.index, s.method, err)
	}
	if n.err == nil && s.opts.err != nil {
		n.err = fmt.Errorf("step %d (%s): %w", n.index, s.method, s.opts.err)
	}
	return Image{n: n}
}

func newBase(method string, src runners.Base, err error) Image {
	n := &node{base: &baseDef{method: method, src: src}}
	if err != nil {
		n.err = fmt.Errorf("step 0 (%s): %w", method, err)
	}
	return Image{n: n}
}

// Err returns the first invalid argument recorded on the chain, or nil.
// Build and Plan return the same error.
func (i Image) Err() error { return i.root().err }

// Scratch returns an empty image, like Dockerfile's FROM scratch.
func Scratch() Image { return Image{} }

// FromRegistry starts from an image in a registry. ref is a reference such as
// "debian:bookworm", "registry.example.com/team/base:1.2" or one pinned by
// digest; short names resolve on docker.io. Tags are pinned to the digest
// they point at when the build starts, and that digest is the base's cache
// key. Credentials come from WithRegistryAuth, or else from auth.json as
// podman and buildah use it.
func FromRegistry(ref string, opts ...BaseOption) Image {
	b := runners.Base{Kind: runners.BaseRegistry, Ref: ref}
	var bo baseOptions
	for _, o := range opts {
		o.applyBase(&bo)
	}
	b.Auth = bo.auth
	_, err := runners.ParseRegistryRef(ref)
	if err == nil {
		err = bo.check("FromRegistry", "WithRegistryAuth", "AddPython", "Platform")
	}
	return bo.withPlatform(newBase("FromRegistry", b, err)).addPython(bo.addPython)
}

// FromArchive starts from an archive file: a rootfs tarball (plain, gzip,
// bzip2, xz or zstd), an oci-archive or a docker-archive. Its cache key is the
// SHA-256 of the file. Platform(p) says which platform a rootfs tarball is
// for (the chain is then built for it).
func FromArchive(path string, opts ...BaseOption) Image {
	var bo baseOptions
	for _, o := range opts {
		o.applyBase(&bo)
	}
	err := bo.check("FromArchive", "Platform")
	if path == "" {
		err = errors.New("archive path is empty")
	}
	return bo.withPlatform(newBase("FromArchive", runners.Base{Kind: runners.BaseArchive, Ref: path}, err))
}

// FromOCILayout starts from an image in an OCI image layout directory. Name
// one image of several as "dir:tag". Platform(p) takes that platform's
// image of an index.
func FromOCILayout(dir string, opts ...BaseOption) Image {
	var bo baseOptions
	for _, o := range opts {
		o.applyBase(&bo)
	}
	err := bo.check("FromOCILayout", "Platform")
	if dir == "" {
		err = errors.New("layout directory is empty")
	}
	return bo.withPlatform(newBase("FromOCILayout", runners.Base{Kind: runners.BaseOCILayout, Ref: dir}, err))
}

// FromID starts from an image already in the store, by ID or name.
func FromID(id string) Image {
	var err error
	if id == "" {
		err = errors.New("image ID is empty")
	}
	return newBase("FromID", runners.Base{Kind: runners.BaseID, Ref: id}, err)
}

// With applies f to the image, so reusable fragments keep the chain readable:
//
//	img.With(addTools).With(addApp)
func (i Image) With(f func(Image) Image) Image { return f(i) }

// RunCommands runs each command in turn with the current shell (default
// "/bin/sh -c"), in one step that commits one layer. A command that exits
// non-zero fails the build with a *StepError.
func (i Image) RunCommands(cmds []string, opts ...RunOption) Image {
	s := &stepDef{method: "RunCommands", kind: layers.KindRun, args: append([]string(nil), cmds...)}
	for _, o := range opts {
		o.applyRun(&s.opts)
	}
	s.env = s.opts.env
	s.mounts = s.opts.mounts
	s.shell = i.root().shell
	var err error
	if len(cmds) == 0 {
		err = errors.New("no commands given")
	}
	for j, c := range cmds {
		if strings.TrimSpace(c) == "" {
			err = fmt.Errorf("command %d is empty", j+1)
		}
		if strings.ContainsRune(c, 0) {
			err = fmt.Errorf("command %d contains a NUL byte", j+1)
		}
	}
	return i.push(s, err)
}

// Env sets environment variables in the image config (and so for every later
// RunCommands). It commits no filesystem layer.
func (i Image) Env(vars map[string]string, opts ...StepOption) Image {
	s := &stepDef{method: "Env", kind: layers.KindEnv, env: copyMap(vars)}
	applyStep(&s.opts, opts)
	var err error
	if len(vars) == 0 {
		err = errors.New("no variables given")
	}
	for k := range vars {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			err = fmt.Errorf("bad variable name %q", k)
		}
	}
	return i.push(s, err)
}

// Label sets labels in the image config (Dockerfile's LABEL, docker build
// --label). It commits no filesystem layer.
func (i Image) Label(labels map[string]string, opts ...StepOption) Image {
	s := &stepDef{method: "Label", kind: layers.KindLabel, env: copyMap(labels)}
	applyStep(&s.opts, opts)
	var err error
	if len(labels) == 0 {
		err = errors.New("no labels given")
	}
	for k := range labels {
		if k == "" || strings.ContainsRune(k, 0) {
			err = fmt.Errorf("bad label name %q", k)
		}
	}
	return i.push(s, err)
}

// Workdir sets the working directory in the image config and for later
// RunCommands, and creates it (with its parents, owned by the image's
// USER) as Dockerfile's WORKDIR does: the layer holds the directories it
// made, and none when they exist.
func (i Image) Workdir(dir string, opts ...StepOption) Image {
	s := &stepDef{method: "Workdir", kind: layers.KindWorkdir, args: []string{dir}, mkdir: true}
	applyStep(&s.opts, opts)
	var err error
	if !path.IsAbs(dir) {
		err = fmt.Errorf("working directory %q must be an absolute path", dir)
	}
	return i.push(s, err)
}

// Entrypoint sets the image's entrypoint (exec form).
func (i Image) Entrypoint(args []string, opts ...StepOption) Image {
	s := &stepDef{method: "Entrypoint", kind: layers.KindEntrypoint, args: append([]string{}, args...)}
	applyStep(&s.opts, opts)
	return i.push(s, nil)
}

// Cmd sets the image's default command (exec form).
func (i Image) Cmd(args []string, opts ...StepOption) Image {
	s := &stepDef{method: "Cmd", kind: layers.KindCmd, args: append([]string{}, args...)}
	applyStep(&s.opts, opts)
	return i.push(s, nil)
}

// Shell sets the shell that later RunCommands pass their commands to, as
// argv with the command appended (default ["/bin/sh", "-c"]). It is not a
// step: it adds no layer, and it changes the cache keys of the RunCommands
// steps after it.
func (i Image) Shell(shell []string) Image {
	p := i.root()
	n := *p
	n.shell = append([]string(nil), shell...)
	if n.err == nil && len(shell) == 0 {
		n.err = fmt.Errorf("step %d (Shell): empty shell", p.index)
	}
	return Image{n: &n}
}

// AddLocalFile adds the local file at local to the image at remote (a
// directory when remote ends in "/"). Without Copy() the file is added in a
// layer after every build step, so editing it never invalidates a build step
// (Modal adds such files when the container starts); with Copy() it is a
// normal step and later steps can use it.
func (i Image) AddLocalFile(local, remote string, opts ...AddOption) Image {
	return i.addLocal("AddLocalFile", local, remote, false, opts)
}

// AddLocalDir adds the contents of the local directory at local to remote.
// Ignore(...) excludes files with dockerignore patterns. Copy() works as for
// AddLocalFile.
func (i Image) AddLocalDir(local, remote string, opts ...AddOption) Image {
	return i.addLocal("AddLocalDir", local, remote, true, opts)
}

func (i Image) addLocal(method, local, remote string, dir bool, opts []AddOption) Image {
	s := &stepDef{method: method, kind: layers.KindAdd, args: []string{remote}, src: local, dir: dir}
	var ao addOptions
	for _, o := range opts {
		o.applyAdd(&ao)
	}
	s.opts = ao.stepOptions
	s.copy = ao.copy
	s.ignore = mount.NormalizePatterns(ao.ignore)
	s.ignoreFunc = ao.ignoreFunc
	var err error
	switch {
	case ao.ignoreFunc != nil && !dir:
		err = fmt.Errorf("IgnoreFunc does not apply to %s: it filters a directory (AddLocalDir)", method)
	case ao.pythonPath != nil && method != "AddLocalPythonSource":
		err = fmt.Errorf("PythonPath does not apply to %s: it is where AddLocalPythonSource looks for modules", method)
	case local == "":
		err = errors.New("local path is empty")
	case !path.IsAbs(remote):
		err = fmt.Errorf("remote path %q must be absolute", remote)
	}
	if err == nil {
		if _, perr := mount.NewMatcher(ao.ignore); perr != nil {
			err = perr
		}
	}
	return i.push(s, err)
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
