package builder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/patternmatcher/ignorefile"

	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/mount"
	"github.com/stratabuild/strata/runners"
)

// DockerfileOption changes FromDockerfile or DockerfileCommands. Besides
// the options below, GPU and WithSecrets apply to every RUN of the
// Dockerfile, ForceBuild to every step, Ignore replaces the
// .dockerignore file, and AddPython installs Python on the result.
type DockerfileOption interface{ applyDockerfile(*dfOptions) }

type dfOptions struct {
	contextDir   string
	buildArgs    map[string]string
	target       string
	ignore       []string
	ignoreSet    bool
	contexts     map[string]Image
	run          stepOptions
	addPython    string
	contextFiles map[string]string
	noNetwork    bool
	ssh          map[string]string // SSH: agent sockets by id
	err          error
}

type dfOption func(*dfOptions)

func (f dfOption) applyDockerfile(o *dfOptions) { f(o) }

// applyDockerfile takes GPU and WithSecrets for every RUN; WithEnv and
// CacheMount have Dockerfile spellings of their own, and are refused.
func (f runOption) applyDockerfile(o *dfOptions) {
	var probe stepOptions
	f(&probe)
	switch {
	case probe.env != nil:
		o.err = errors.New("WithEnv does not apply to a Dockerfile: use BuildArgs with ARG, or ENV")
	case len(probe.secretFiles) > 0:
		o.err = errors.New("SecretFile does not apply to a Dockerfile: use RUN --mount=type=secret,id=KEY,target=PATH with WithSecrets")
	case len(probe.mounts) > 0 && probe.mounts[0].typ == "volume":
		o.err = errors.New("Volumes does not apply to a Dockerfile: use RUN --mount=type=cache,id=NAME,target=DIR")
	case len(probe.mounts) > 0:
		name := "CacheMount"
		if probe.mounts[0].sharing == "locked" {
			name = "LockedCacheMount"
		}
		o.err = fmt.Errorf("%s does not apply to a Dockerfile: use RUN --mount=type=cache,target=DIR", name)
	default:
		f(&o.run)
	}
}

func (f stepOption) applyDockerfile(o *dfOptions) { f(&o.run) }

func (f addOption) applyDockerfile(o *dfOptions) {
	var ao addOptions
	f(&ao)
	switch {
	case ao.copy:
		o.err = errors.New("Copy does not apply to a Dockerfile (COPY and ADD always copy): of the AddLocalDir options only Ignore does")
		return
	case ao.pythonPath != nil:
		o.err = errors.New("PythonPath does not apply to a Dockerfile: of the AddLocalDir options only Ignore does")
		return
	}
	o.ignore = append(o.ignore, ao.ignore...)
	o.ignoreSet = true
}

func (f baseOption) applyDockerfile(o *dfOptions) {
	var bo baseOptions
	f(&bo)
	if bo.err != nil {
		o.err = bo.err
		return
	}
	if bo.addPython == "" {
		o.err = errors.New("only AddPython of the base options applies to a Dockerfile")
		return
	}
	o.addPython = bo.addPython
}

// ContextDir sets the build context that COPY and ADD read from. Default:
// the Dockerfile's directory (FromDockerfile), or the working directory
// (DockerfileCommands).
func ContextDir(dir string) DockerfileOption {
	return dfOption(func(o *dfOptions) { o.contextDir = dir })
}

// BuildArgs sets ARG values, as docker build --build-arg does. Values enter
// the cache keys of the steps that use them, except the predefined proxy
// arguments (HTTP_PROXY, NO_PROXY, ...), which reach RUN steps without
// being keyed.
func BuildArgs(args map[string]string) DockerfileOption {
	return dfOption(func(o *dfOptions) {
		if o.buildArgs == nil {
			o.buildArgs = map[string]string{}
		}
		maps.Copy(o.buildArgs, args)
	})
}

// Target builds the named stage instead of the last one (docker build
// --target). Only the stages it needs are built.
func Target(stage string) DockerfileOption {
	return dfOption(func(o *dfOptions) { o.target = stage })
}

// BuildContext makes FROM name and COPY --from=name use img instead of a
// registry image or stage of that name (BuildKit's named contexts, docker
// buildx build --build-context name=...).
func BuildContext(name string, img Image) DockerfileOption {
	return dfOption(func(o *dfOptions) {
		if o.contexts == nil {
			o.contexts = map[string]Image{}
		}
		o.contexts[name] = img
	})
}

// RunNetwork sets the network of the Dockerfile's RUN instructions that
// do not say (docker build --network): "default" or "host" (the host's
// network, strata's default) or "none" (only a loopback interface, as
// RUN --network=none; keyed as that).
func RunNetwork(mode string) DockerfileOption {
	return dfOption(func(o *dfOptions) {
		switch mode {
		case "default", "host":
			o.noNetwork = false
		case "none":
			o.noNetwork = true
		default:
			o.err = fmt.Errorf("RunNetwork(%q): use default, host or none", mode)
		}
	})
}

// SSH forwards the ssh agent listening on socket to the Dockerfile's RUN
// --mount=type=ssh mounts with this id ("default" when they name none), as
// docker build --ssh id=socket does: the socket is mounted at the mount's
// target (default /run/buildkit/ssh_agent.N) for that step only, and
// SSH_AUTH_SOCK names it. Neither the socket's path nor the agent's keys
// enter a key or a layer. An ssh mount whose id has no agent is skipped,
// or fails the step before it runs when it says required=true.
func SSH(id, socket string) DockerfileOption {
	return dfOption(func(o *dfOptions) {
		if id == "" {
			id = "default"
		}
		if socket == "" {
			o.err = fmt.Errorf("SSH(%q): no socket given (an ssh agent's, e.g. $SSH_AUTH_SOCK)", id)
			return
		}
		if o.ssh == nil {
			o.ssh = map[string]string{}
		}
		o.ssh[id] = socket
	})
}

// ContextFiles adds single files to the build context of
// DockerfileCommands: each key is the path COPY names (relative), each
// value the local file (Modal's context_files).
func ContextFiles(files map[string]string) DockerfileOption {
	return dfOption(func(o *dfOptions) {
		if o.contextFiles == nil {
			o.contextFiles = map[string]string{}
		}
		maps.Copy(o.contextFiles, files)
	})
}

// dfDef is a Dockerfile whose translation waits for the build: it needs
// the base images' configs (their ENV and WORKDIR) to substitute variables.
type dfDef struct {
	method string
	name   string // file name, for errors
	data   []byte
	cmds   []string
	ctxDir string // as given; made absolute at plan time
	opts   dfOptions
}

// FromDockerfile starts from a Dockerfile (Modal's from_dockerfile): each
// instruction becomes a step of the chain, keyed and cached like the Go
// steps (a RUN is the same step as an equal RunCommands). Multi-stage
// files build only the stages the target needs. The ignore file beside
// the Dockerfile (Dockerfile.dockerignore) or at the context root
// (.containerignore, else .dockerignore) is read unless Ignore is given; only the files an instruction uses enter its
// key. Syntax errors are reported by Err and Build with file, line and
// column; the rest (unknown stages, sources outside the context,
// ${X:?} with X unset) by Plan and Build, before any step runs.
func FromDockerfile(path string, opts ...DockerfileOption) Image {
	d := &dfDef{method: "FromDockerfile", name: path}
	for _, o := range opts {
		o.applyDockerfile(&d.opts)
	}
	d.ctxDir = d.opts.contextDir
	if d.ctxDir == "" {
		d.ctxDir = filepath.Dir(path)
	}
	n := &node{base: &baseDef{method: "FromDockerfile", src: runners.Base{Kind: runners.BaseScratch}}, df: d}
	var err error
	switch {
	case d.opts.err != nil:
		err = d.opts.err
	case path == "":
		err = errors.New("Dockerfile path is empty")
	case len(d.opts.contextFiles) > 0:
		err = errors.New("ContextFiles applies to DockerfileCommands; put the files in the context directory")
	default:
		d.data, err = os.ReadFile(path)
		if err == nil {
			err = dockerfile.Check(d.data, path)
		}
	}
	if err != nil {
		n.err = fmt.Errorf("step 0 (FromDockerfile): %w", err)
	}
	return Image{n: n}
}

// DockerfileCommands adds Dockerfile instructions (without FROM) on top of
// the image (Modal's dockerfile_commands), one step each. COPY reads from
// ContextDir (default: the working directory) and ContextFiles.
func (i Image) DockerfileCommands(cmds []string, opts ...DockerfileOption) Image {
	d := &dfDef{method: "DockerfileCommands", name: "DockerfileCommands", cmds: slices.Clone(cmds)}
	for _, o := range opts {
		o.applyDockerfile(&d.opts)
	}
	d.ctxDir = d.opts.contextDir
	if d.ctxDir == "" {
		d.ctxDir = "."
	}
	s := &stepDef{method: "DockerfileCommands", kind: "dockerfile", df: d}
	var err error
	switch {
	case d.opts.err != nil:
		err = d.opts.err
	case len(cmds) == 0:
		err = errors.New("no commands given")
	case d.opts.target != "":
		err = errors.New("Target applies to FromDockerfile only")
	case d.opts.addPython != "":
		err = errors.New("AddPython applies to FromDockerfile and registry bases: DockerfileCommands adds to an image that has its base already")
	default:
		err = dockerfile.Check([]byte("FROM scratch\n"+strings.Join(cmds, "\n")+"\n"), "DockerfileCommands")
	}
	return i.push(s, err)
}

// hasDeferred reports whether the chain holds a Dockerfile still to be
// translated.
func (i Image) hasDeferred() bool {
	for n := i.root(); n != nil; n = n.parent {
		if n.df != nil || (n.step != nil && n.step.df != nil) {
			return true
		}
	}
	return false
}

// expand translates the chain's Dockerfiles into plain steps.
func (pe *planEnv) expand(ctx context.Context, img Image) (Image, error) {
	if !img.hasDeferred() {
		return img, nil
	}
	if e, ok := pe.expanded[img.n]; ok {
		return e, nil
	}
	var nodes []*node
	for n := img.root(); n != nil; n = n.parent {
		nodes = append(nodes, n)
	}
	root := nodes[len(nodes)-1]
	cur := Image{n: root}
	if root.df != nil {
		var err error
		if cur, err = pe.fromDockerfile(ctx, root.df); err != nil {
			return Image{}, fmt.Errorf("step 0 (FromDockerfile): %w", err)
		}
	}
	for k := len(nodes) - 2; k >= 0; k-- {
		n := nodes[k]
		if n.step.df != nil {
			var err error
			idx := cur.root().index + 1
			if cur, err = pe.dockerfileCommands(ctx, cur, n.step.df); err != nil {
				return Image{}, fmt.Errorf("step %d (DockerfileCommands): %w", idx, err)
			}
			continue
		}
		p := cur.root()
		nn := &node{parent: p, step: n.step, shell: n.shell, index: p.index + 1}
		cur = Image{n: nn}
	}
	pe.expanded[img.n] = cur
	return cur, nil
}

// dfTranslator turns one parsed Dockerfile into images.
type dfTranslator struct {
	pe     *planEnv
	ctx    context.Context
	d      *dfDef
	ctxDir string
	ignore []string
	// ignoreFrom names where ignore came from, for errors: the ignore
	// file read, or "the Ignore patterns"
	ignoreFrom string
	stages     map[*dockerfile.Stage]Image
	secrets    []Secret
}

func (pe *planEnv) newTranslator(ctx context.Context, d *dfDef) (*dfTranslator, error) {
	ctxDir, err := filepath.Abs(d.ctxDir)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(ctxDir)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", d.ctxDir)
	}
	t := &dfTranslator{pe: pe, ctx: ctx, d: d, ctxDir: ctxDir, stages: map[*dockerfile.Stage]Image{}}
	if d.opts.ignoreSet {
		t.ignore, t.ignoreFrom = mount.NormalizePatterns(d.opts.ignore), "the Ignore patterns"
	} else if t.ignore, t.ignoreFrom, err = readDockerignore(d.name, ctxDir, d.method == "FromDockerfile"); err != nil {
		return nil, err
	}
	if _, err := mount.NewMatcher(t.ignore); err != nil {
		return nil, fmt.Errorf("ignore patterns: %w", err)
	}
	return t, nil
}

// readDockerignore reads the first ignore file of: <Dockerfile>.dockerignore
// (BuildKit's), <Dockerfile>.containerignore, <context>/.containerignore
// (Buildah's and Podman's name, which they prefer), <context>/.dockerignore,
// and returns its patterns and its name.
func readDockerignore(dfPath, ctxDir string, beside bool) ([]string, string, error) {
	var cands []string
	if beside {
		cands = append(cands, dfPath+".dockerignore", dfPath+".containerignore")
	}
	cands = append(cands, filepath.Join(ctxDir, ".containerignore"), filepath.Join(ctxDir, ".dockerignore"))
	for _, c := range cands {
		f, err := os.Open(c)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		pats, err := ignorefile.ReadAll(f)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", c, err)
		}
		return mount.NormalizePatterns(pats), c, nil
	}
	return nil, "", nil
}

func (t *dfTranslator) options() dockerfile.Options {
	names := map[string]bool{}
	for k := range t.d.opts.contexts {
		names[k] = true
	}
	return dockerfile.Options{
		Name:       t.d.name,
		Platform:   t.pe.platform,
		BuildArgs:  t.d.opts.buildArgs,
		Target:     t.d.opts.target,
		Contexts:   names,
		BaseConfig: t.baseConfig,
	}
}

func (t *dfTranslator) baseConfig(ref string) (*dockerfile.BaseConfig, error) {
	if img, ok := t.d.opts.contexts[ref]; ok {
		return t.pe.imageConfig(t.ctx, img)
	}
	if ref == "strata-parent" {
		return nil, nil
	}
	cfg, err := t.pe.res.BaseConfig(t.ctx, runners.Base{Kind: runners.BaseRegistry, Ref: ref})
	if err != nil || cfg == nil {
		return nil, err
	}
	return &dockerfile.BaseConfig{Env: cfg.Env, WorkingDir: cfg.WorkingDir, User: cfg.User, Shell: cfg.Shell, OnBuild: runners.OnBuildOf(cfg.Labels)}, nil
}

// imageConfig works out the config an image will have: its base's, then
// the chain's config steps.
func (pe *planEnv) imageConfig(ctx context.Context, img Image) (*dockerfile.BaseConfig, error) {
	img, err := pe.expand(ctx, img)
	if err != nil {
		return nil, err
	}
	var nodes []*node
	for n := img.root(); n != nil; n = n.parent {
		nodes = append(nodes, n)
	}
	root := nodes[len(nodes)-1]
	out := &dockerfile.BaseConfig{}
	cfg, err := pe.res.BaseConfig(ctx, root.base.src)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		out.Env, out.WorkingDir, out.User, out.Shell = slices.Clone(cfg.Env), cfg.WorkingDir, cfg.User, cfg.Shell
		out.OnBuild = runners.OnBuildOf(cfg.Labels)
	}
	setEnv := func(k, v string) {
		for i, e := range out.Env {
			if strings.HasPrefix(e, k+"=") {
				out.Env[i] = k + "=" + v
				return
			}
		}
		out.Env = append(out.Env, k+"="+v)
	}
	for k := len(nodes) - 2; k >= 0; k-- {
		s := nodes[k].step
		switch s.kind {
		case layers.KindEnv:
			for _, key := range slices.Sorted(maps.Keys(s.env)) {
				setEnv(key, s.env[key])
			}
		case layers.KindWorkdir:
			out.WorkingDir = s.args[0]
		case layers.KindUser:
			out.User = s.args[0]
		case layers.KindConfig:
			switch s.args[0] {
			case "ONBUILD":
				out.OnBuild = append(out.OnBuild, s.args[1:]...)
			case "ONBUILD-TRIGGERED":
				out.OnBuild = nil
			case "SHELL":
				out.Shell = slices.Clone(s.args[1:])
			}
		case layers.KindRun:
			if s.pathPrepend != "" {
				old := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
				for _, e := range out.Env {
					if v, ok := strings.CutPrefix(e, "PATH="); ok {
						old = v
					}
				}
				setEnv("PATH", s.pathPrepend+":"+old)
			}
		}
	}
	return out, nil
}

func (pe *planEnv) fromDockerfile(ctx context.Context, d *dfDef) (Image, error) {
	t, err := pe.newTranslator(ctx, d)
	if err != nil {
		return Image{}, err
	}
	f, err := dockerfile.Parse(d.data, t.options())
	if err != nil {
		return Image{}, err
	}
	pe.notes = append(pe.notes, f.Notes...)
	img, err := t.stage(f.Target)
	if err != nil {
		return Image{}, err
	}
	return img.addPython(d.opts.addPython), nil
}

func (pe *planEnv) dockerfileCommands(ctx context.Context, parent Image, d *dfDef) (Image, error) {
	t, err := pe.newTranslator(ctx, d)
	if err != nil {
		return Image{}, err
	}
	cfg, err := pe.imageConfig(ctx, parent)
	if err != nil {
		return Image{}, err
	}
	cfg.Shell = parent.root().shell
	st, notes, err := dockerfile.ParseCommands(d.cmds, cfg, t.options())
	if err != nil {
		return Image{}, err
	}
	pe.notes = append(pe.notes, notes...)
	img := parent
	for _, op := range st.Ops {
		if img, err = t.op(img, st, op); err != nil {
			return Image{}, err
		}
	}
	return img, img.Err()
}

// withBasePlatform returns img, a chain of only its base, with the base
// built for platform p ("" the host's); img itself is left as it was (it
// may be a named context other stages use too).
func withBasePlatform(img Image, p string) Image {
	n := *img.root()
	b := *n.base
	b.platformSet, b.platform = true, p
	n.base = &b
	return Image{n: &n}
}

// stage returns the image of one stage, translating its base first.
func (t *dfTranslator) stage(st *dockerfile.Stage) (Image, error) {
	if img, ok := t.stages[st]; ok {
		return img, nil
	}
	var img Image
	switch {
	case st.BaseStage != nil:
		var err error
		if img, err = t.stage(st.BaseStage); err != nil {
			return Image{}, err
		}
	case st.BaseContext != "":
		var err error
		if img, err = t.pe.expand(t.ctx, t.d.opts.contexts[st.BaseContext]); err != nil {
			return Image{}, err
		}
	case st.BaseImage == "scratch":
		img = Scratch()
	default:
		img = FromRegistry(st.BaseImage)
		if err := img.Err(); err != nil {
			return Image{}, &dockerfile.Error{Pos: st.Pos, Err: err}
		}
	}
	// FROM --platform=P (the build stage of a cross build): the stage's
	// chain is built for P. On a stage, as BuildKit does, the flag is
	// checked but the stage keeps the platform of the stage it starts from.
	if st.Platform != "" {
		p, err := normalizePlatform(st.Platform)
		if err != nil {
			return Image{}, &dockerfile.Error{Pos: st.Pos, Err: err}
		}
		if p == hostPlatform() {
			p = ""
		}
		if st.BaseStage == nil {
			// A named context that is an image is taken for P; one with
			// steps of its own is built for its own platform.
			if st.BaseContext != "" && img.n != nil && img.n.parent != nil {
				return Image{}, &dockerfile.Error{Pos: st.Pos, Err: fmt.Errorf("FROM --platform=%s on the named context %q, which has steps of its own: %w (give the platform to the context's base)", st.Platform, st.BaseContext, dockerfile.ErrUnsupported)}
			}
			img = withBasePlatform(img, p)
		}
	}
	for _, op := range st.Ops {
		var err error
		if img, err = t.op(img, st, op); err != nil {
			return Image{}, err
		}
	}
	t.stages[st] = img
	return img, nil
}
