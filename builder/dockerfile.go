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
	"github.com/stratabuild/strata/gpu"
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
	err          error
}

type dfOption func(*dfOptions)

func (f dfOption) applyDockerfile(o *dfOptions) { f(o) }

func (f runOption) applyDockerfile(o *dfOptions)  { f(&o.run) }
func (f stepOption) applyDockerfile(o *dfOptions) { f(&o.run) }
func (f addOption) applyDockerfile(o *dfOptions) {
	var ao addOptions
	f(&ao)
	if ao.copy || ao.pythonPath != nil || !ao.stepOptions.gpu.IsZero() {
		o.err = errors.New("only Ignore of the AddLocalDir options applies to a Dockerfile")
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
	pe      *planEnv
	ctx     context.Context
	d       *dfDef
	ctxDir  string
	ignore  []string
	stages  map[*dockerfile.Stage]Image
	secrets []Secret
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
		t.ignore = mount.NormalizePatterns(d.opts.ignore)
	} else if t.ignore, err = readDockerignore(d.name, ctxDir, d.method == "FromDockerfile"); err != nil {
		return nil, err
	}
	if _, err := mount.NewMatcher(t.ignore); err != nil {
		return nil, fmt.Errorf("ignore patterns: %w", err)
	}
	return t, nil
}

// readDockerignore reads the first ignore file of: <Dockerfile>.dockerignore
// (BuildKit's), <Dockerfile>.containerignore, <context>/.containerignore
// (Buildah's and Podman's name, which they prefer), <context>/.dockerignore.
func readDockerignore(dfPath, ctxDir string, beside bool) ([]string, error) {
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
			return nil, err
		}
		defer f.Close()
		pats, err := ignorefile.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		return mount.NormalizePatterns(pats), nil
	}
	return nil, nil
}

func (t *dfTranslator) options() dockerfile.Options {
	names := map[string]bool{}
	for k := range t.d.opts.contexts {
		names[k] = true
	}
	return dockerfile.Options{
		Name:       t.d.name,
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
	return &dockerfile.BaseConfig{Env: cfg.Env, WorkingDir: cfg.WorkingDir, User: cfg.User, OnBuild: runners.OnBuildOf(cfg.Labels)}, nil
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
		out.Env, out.WorkingDir, out.User = slices.Clone(cfg.Env), cfg.WorkingDir, cfg.User
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
	for _, op := range st.Ops {
		var err error
		if img, err = t.op(img, st, op); err != nil {
			return Image{}, err
		}
	}
	t.stages[st] = img
	return img, nil
}

// op adds one instruction's step.
func (t *dfTranslator) op(img Image, st *dockerfile.Stage, op dockerfile.Op) (Image, error) {
	s := &stepDef{method: op.Instruction, df: nil, desc: op.Source, pos: op.Pos.String()}
	s.opts.force = t.d.opts.run.force
	if st.Name != "" && t.d.method == "FromDockerfile" {
		s.desc = "[" + st.Name + "] " + op.Source
	}
	switch op.Instruction {
	case "RUN":
		s.kind = layers.KindRun
		s.opts = t.d.opts.run
		s.args = op.Args
		s.shell = op.Shell
		s.exec = op.Exec
		if s.exec {
			s.shell = nil
		}
		if len(op.Env) > 0 {
			s.env = map[string]string{}
			for _, kv := range op.Env {
				s.env[kv.Key] = kv.Value
			}
		}
		if len(op.ProxyEnv) > 0 {
			s.unkeyedEnv = map[string]string{}
			for _, kv := range op.ProxyEnv {
				s.unkeyedEnv[kv.Key] = kv.Value
			}
		}
		if op.Network == "none" {
			s.noNetwork = true
		}
		for _, d := range op.Devices {
			switch d {
			case "nvidia.com/gpu=all", "nvidia.com/gpu":
				req, err := gpu.ParseRequest("all")
				if err != nil {
					return Image{}, err
				}
				s.opts.gpu = req
			default:
				return Image{}, &dockerfile.Error{Pos: op.Pos, Err: fmt.Errorf("RUN --device=%s: only nvidia.com/gpu=all is offered (strata makes the GPUs' CDI spec itself): %w", d, dockerfile.ErrUnsupported)}
			}
		}
		for _, m := range op.Mounts {
			rm := runMount{typ: m.Type, target: m.Target, source: m.Source, id: m.ID, sharing: m.Sharing,
				readOnly: m.ReadOnly, required: m.Required, env: m.Env, mode: m.Mode, uid: m.UID, gid: m.GID}
			if m.FromStage != nil || m.FromContext != "" || m.FromImage != "" {
				if m.Type != "bind" {
					return Image{}, &dockerfile.Error{Pos: op.Pos, Err: fmt.Errorf("RUN --mount=type=%s,from=...: only bind mounts can come from a stage or image: %w", m.Type, dockerfile.ErrUnsupported)}
				}
				var from Image
				var err error
				switch {
				case m.FromStage != nil:
					from, err = t.stage(m.FromStage)
				case m.FromContext != "":
					from, err = t.pe.expand(t.ctx, t.d.opts.contexts[m.FromContext])
				default:
					from = FromRegistry(m.FromImage)
					err = from.Err()
				}
				if err != nil {
					return Image{}, err
				}
				rm.from = &from
				rm.source = filepathClean(m.Source)
				s.mounts = append(s.mounts, rm)
				continue
			}
			if m.Type == "bind" {
				rm.source = filepathClean(m.Source)
				rm.ctxDir = t.ctxDir
				rm.ignore = t.ignore
			}
			s.mounts = append(s.mounts, rm)
		}
	case "ENV":
		s.kind = layers.KindEnv
		s.env = map[string]string{}
		for _, kv := range op.KV {
			s.env[kv.Key] = kv.Value
		}
	case "LABEL":
		s.kind = layers.KindLabel
		s.env = map[string]string{}
		for _, kv := range op.KV {
			s.env[kv.Key] = kv.Value
		}
	case "WORKDIR":
		s.kind = layers.KindWorkdir
		s.args = op.Args
		s.mkdir = true
	case "USER":
		s.kind = layers.KindUser
		s.args = op.Args
	case "CMD":
		s.kind = layers.KindCmd
		s.args = op.Args
	case "ENTRYPOINT":
		s.kind = layers.KindEntrypoint
		s.args = op.Args
		s.resetCmd = op.ResetCmd
	case "EXPOSE", "VOLUME", "STOPSIGNAL", "MAINTAINER":
		s.kind = layers.KindConfig
		s.args = append([]string{op.Instruction}, op.Args...)
	case "SHELL":
		// Later RUNs carry the shell in their own keys; OCI configs have
		// no shell field.
		return img.Shell(op.Args), nil
	case "HEALTHCHECK":
		t.pe.notes = append(t.pe.notes, fmt.Sprintf("%s: HEALTHCHECK is kept only in Docker-format images; strata writes OCI images (as buildah bud does by default), so it is not recorded", op.Pos))
		return img, nil
	case "ONBUILD", "ONBUILD-TRIGGERED":
		// Triggers are kept in the label runners.OnBuildLabel (OCI configs
		// have no ONBUILD field) and run when the image is a base.
		s.kind = layers.KindConfig
		s.args = append([]string{op.Instruction}, op.Args...)
	case "COPY", "ADD":
		c := op.Copy
		s.kind = layers.KindCopy
		cd := &copyDef{sources: c.Sources, dest: c.Dest, chown: c.Chown, chmod: c.Chmod, checksum: c.Checksum,
			add: c.Add, inline: c.Inline, excludes: c.Excludes}
		cd.extract = c.Add && (c.Unpack == nil || *c.Unpack)
		cd.parents = c.Parents
		switch {
		case c.FromStage != nil:
			from, err := t.stage(c.FromStage)
			if err != nil {
				return Image{}, err
			}
			cd.from, cd.fromDesc = &from, c.FromStage.Ref()
		case c.FromContext != "":
			from, err := t.pe.expand(t.ctx, t.d.opts.contexts[c.FromContext])
			if err != nil {
				return Image{}, err
			}
			cd.from, cd.fromDesc = &from, c.FromContext
		case c.FromImage != "":
			from := FromRegistry(c.FromImage)
			if err := from.Err(); err != nil {
				return Image{}, &dockerfile.Error{Pos: op.Pos, Err: err}
			}
			cd.from, cd.fromDesc = &from, c.FromImage
		default:
			cd.ctxDir = t.ctxDir
			cd.ignore = t.ignore
			cd.contextFiles = t.d.opts.contextFiles
		}
		s.copyDef = cd
	default:
		return Image{}, &dockerfile.Error{Pos: op.Pos, Err: fmt.Errorf("instruction %s: %w", op.Instruction, dockerfile.ErrUnsupported)}
	}
	out := img.push(s, nil)
	if err := out.Err(); err != nil {
		return Image{}, err
	}
	return out, nil
}

func filepathClean(p string) string {
	c := filepath.ToSlash(filepath.Clean("/" + p))
	return strings.TrimPrefix(c, "/")
}

// runMount is one RUN --mount of a Dockerfile step.
type runMount struct {
	typ, target, source, id, sharing string
	readOnly, required               bool
	env                              string
	mode                             *uint64
	uid, gid                         *uint64
	// bind mounts from the context
	ctxDir string
	ignore []string
	// bind mounts from another image
	from *Image
}

// copyDef is a Dockerfile COPY or ADD.
type copyDef struct {
	sources      []string
	inline       []dockerfile.Inline
	dest         string
	chown, chmod string
	checksum     string
	add, extract bool
	parents      bool     // --parents: keep the sources' directories
	excludes     []string // --exclude
	// the build context (when from is nil)
	ctxDir       string
	ignore       []string
	contextFiles map[string]string
	// another image
	from     *Image
	fromDesc string
}
