package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
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
	// unkeyedEnv reaches the step's commands without entering its key.
	unkeyedEnv []string
	// trees are the files of the step's local inputs, kept with its cache
	// entry so that a later miss can name the files that changed.
	trees []layers.Tree
	// why says why the step runs (set by Build on a miss).
	why string
	// cacheDirs are the step's cache mounts: id -> host directory.
	cacheDirs map[string]string
}

// treeOf summarizes a walked input for a recipe.
func treeOf(input string, t *mount.Tree) layers.Tree {
	out := layers.Tree{Input: input}
	for i, e := range t.Entries {
		if i == layers.MaxTreeEntries {
			out.Truncated = true
			break
		}
		p := e.Path
		if p == "" {
			p = string(e.RawPath)
		}
		d := e.Digest
		if e.Type == "symlink" {
			d = "-> " + e.Target
		}
		out.Files = append(out.Files, layers.TreeEntry{Path: p, Mode: e.Mode, Digest: d})
	}
	return out
}

// Name returns "step N (Method)", the form used in errors and progress.
func (s PlannedStep) Name() string { return fmt.Sprintf("step %d (%s)", s.Index, s.Method) }

// Plan lowers the image to a Plan without building. FromID bases need an
// open session: use Session.Plan for them.
func (i Image) Plan(ctx context.Context) (*Plan, error) {
	sde, err := envSourceDateEpoch()
	if err != nil {
		return nil, err
	}
	return plan(ctx, i, newPlanEnv(&runners.Resolver{}, sde, ""))
}

// planEnv is what planning needs besides the image: how to resolve bases,
// the reproducibility setting, where cache mounts live, and what was
// translated already (a stage copied from twice is planned once).
type planEnv struct {
	res       *runners.Resolver
	sde       *time.Time
	cleanup   bool // ReproducibleCleanup
	mountRoot string
	expanded  map[*node]Image
	plans     map[*node]*Plan
	notes     []string
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
	res, sde := pe.res, pe.sde
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
	forceAll := envForce()
	root := nodes[len(nodes)-1]

	p := &Plan{}
	d, err := res.Resolve(ctx, root.base.src)
	if err != nil {
		return nil, fmt.Errorf("step 0 (%s): %w", root.base.method, err)
	}
	bs := PlannedStep{
		Index:       0,
		Method:      root.base.method,
		Description: baseDescription(root.base.src, d),
		Spec:        layers.Spec{Kind: layers.KindBase, Args: []string{d}},
		Force:       forceAll && root.base.src.Kind != runners.BaseScratch,
	}
	b := root.base.src
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
		ps.Force = ps.Force || forceAll
		if sde != nil {
			// Timestamps in the layer, config and history are clamped to
			// it, so it changes the result and enters the key.
			if ps.Spec.Options == nil {
				ps.Spec.Options = map[string]string{}
			}
			ps.Spec.Options["source_date_epoch"] = strconv.FormatInt(sde.Unix(), 10)
			ps.run.SourceDateEpoch = sde
			if len(ps.run.Commands)+len(ps.run.Argv) > 0 {
				// The reproducible-builds.org convention: tools that
				// write dates (Python's byte-compiler, gzip, dpkg) use it.
				ps.run.RunEnv = append(slices.Clone(ps.run.RunEnv), EnvSourceDateEpoch+"="+strconv.FormatInt(sde.Unix(), 10))
			}
		}
		if pe.cleanup && len(ps.run.Commands)+len(ps.run.Argv) > 0 {
			if ps.Spec.Options == nil {
				ps.Spec.Options = map[string]string{}
			}
			ps.Spec.Options["cleanup"] = volatileFilesVersion
			ps.run.RemoveAfter = VolatileFiles
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

// lower turns one chain step into its spec and runner step.
func (pe *planEnv) lower(ctx context.Context, n *node) (PlannedStep, error) {
	s := n.step
	ps := PlannedStep{Index: n.index, Method: s.method, Force: s.opts.force, secrets: s.opts.secrets}
	ps.run.Name = ps.Name()
	spec := layers.Spec{Kind: s.kind}
	switch s.kind {
	case layers.KindRun:
		if s.exec {
			if err := pe.lowerExecRun(s, &spec, &ps); err != nil {
				return ps, err
			}
			break
		}
		shell := s.shell
		if len(shell) == 0 {
			shell = defaultShell
		}
		args := s.args
		if s.resolve != nil {
			var err error
			if args, err = s.resolve(); err != nil {
				return ps, err
			}
		}
		spec.Args = args
		spec.Shell = shell
		if err := lowerInputs(s.inputs, &spec, &ps); err != nil {
			return ps, err
		}
		if s.pathPrepend != "" {
			spec.Options = map[string]string{"path_prepend": s.pathPrepend}
			ps.run.Config.PathPrepend = s.pathPrepend
		}
		ps.run.Commands = args
		ps.run.Shell = shell
		ps.Description = strings.Join(args, " && ")
		lowerRunEnv(s, &spec, &ps.run)
		if err := pe.lowerRunExtras(s, &spec, &ps); err != nil {
			return ps, err
		}
	case layers.KindFunction:
		self, err := runners.SelfExec()
		if err != nil {
			return ps, fmt.Errorf("running a function in the build container: %w", err)
		}
		spec.Args = s.args
		version := s.fn.version
		if version == "" {
			version = self.BuildID
		}
		spec.Options = map[string]string{"version": version}
		ps.run.Mounts = append(ps.run.Mounts, self.Mounts...)
		ps.run.Argv = [][]string{append(append([]string{}, self.Argv...), s.args[1:]...)}
		lowerRunEnv(s, &spec, &ps.run)
		ps.run.RunEnv = append(ps.run.RunEnv, runners.EnvFunction+"="+s.fn.name)
		if err := pe.lowerRunExtras(s, &spec, &ps); err != nil {
			return ps, err
		}
		ps.Description = s.fn.name
		if len(s.args) > 1 {
			ps.Description += " " + shellJoin(s.args[1:])
		}
	case layers.KindEnv:
		spec.Env = s.env
		ps.run.Config.Env = s.env
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(s.env)) {
			kv = append(kv, k+"="+s.env[k])
		}
		ps.Description = strings.Join(kv, " ")
	case layers.KindWorkdir:
		spec.Args = s.args
		ps.run.Config.Workdir = &s.args[0]
		ps.Description = s.args[0]
		if s.mkdir {
			spec.Options = map[string]string{"mkdir": "true"}
			ps.run.Mkdirs = []string{s.args[0]}
		}
	case layers.KindUser:
		spec.Args = s.args
		ps.run.Config.User = &s.args[0]
		ps.Description = s.args[0]
	case layers.KindLabel:
		spec.Env = s.env
		ps.run.Config.Labels = s.env
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(s.env)) {
			kv = append(kv, k+"="+s.env[k])
		}
		ps.Description = strings.Join(kv, " ")
	case layers.KindConfig:
		spec.Args = s.args
		vals := s.args[1:]
		switch s.args[0] {
		case "EXPOSE":
			ps.run.Config.Ports = vals
		case "VOLUME":
			ps.run.Config.Volumes = vals
		case "STOPSIGNAL":
			ps.run.Config.StopSignal = &vals[0]
		case "MAINTAINER":
			ps.run.Config.Author = &vals[0]
		case "ONBUILD":
			ps.run.Config.OnBuildAdd = vals
		case "ONBUILD-TRIGGERED":
			ps.run.Config.OnBuildClear = true
		default:
			return ps, fmt.Errorf("unknown config change %s", s.args[0])
		}
		ps.Description = strings.Join(s.args, " ")
	case layers.KindCopy:
		if err := pe.lowerCopy(ctx, s, &spec, &ps); err != nil {
			return ps, err
		}
	case layers.KindEntrypoint:
		spec.Args = s.args
		ps.run.Config.Entrypoint = &s.args
		ps.Description = fmt.Sprintf("%q", s.args)
		if s.resetCmd {
			spec.Options = map[string]string{"reset_cmd": "true"}
			ps.run.Config.Cmd = &[]string{}
		}
	case layers.KindCmd:
		spec.Args = s.args
		ps.run.Config.Cmd = &s.args
		ps.Description = fmt.Sprintf("%q", s.args)
	case layers.KindAdd:
		src, err := filepath.Abs(s.src)
		if err != nil {
			return ps, fmt.Errorf("local path %s: %w", s.src, err)
		}
		st, err := os.Stat(src)
		if err != nil {
			return ps, fmt.Errorf("local path %s: %w", s.src, err)
		}
		if s.dir && !st.IsDir() {
			return ps, fmt.Errorf("local path %s is not a directory (use AddLocalFile)", s.src)
		}
		if !s.dir && st.IsDir() {
			return ps, fmt.Errorf("local path %s is a directory (use AddLocalDir)", s.src)
		}
		tree, err := mount.Walk(src, s.ignore)
		if err != nil {
			return ps, err
		}
		kind := "file"
		if s.dir {
			kind = "dir"
		}
		spec.Args = s.args
		spec.Ignore = s.ignore
		spec.Inputs = []layers.Input{{Name: "src", Digest: tree.Digest}}
		ps.trees = []layers.Tree{treeOf("src", tree)}
		spec.Options = map[string]string{"source": kind}
		ps.run.Copies = []runners.Copy{{Src: src, Dest: s.args[0], Excludes: s.ignore}}
		ps.Description = s.src + " -> " + s.args[0]
	default:
		return ps, fmt.Errorf("unknown step kind %q", s.kind)
	}
	if s.desc != "" {
		ps.Description = s.desc
	}
	ps.Spec = spec
	return ps, nil
}

// lowerRunEnv puts a run step's own environment and its secrets' names into
// the spec, and its environment into the runner step (secret values are
// added only when the step runs).
func lowerRunEnv(s *stepDef, spec *layers.Spec, run *runners.Step) {
	spec.Env = s.env
	if !s.opts.gpu.IsZero() {
		if spec.Options == nil {
			spec.Options = map[string]string{}
		}
		spec.Options["gpu"] = s.opts.gpu.String()
		run.GPU = s.opts.gpu
	}
	for _, sec := range s.opts.secrets {
		for _, k := range sec.keys() {
			spec.Secrets = append(spec.Secrets, sec.name+"/"+k)
		}
	}
	sort.Strings(spec.Secrets)
	for _, k := range slices.Sorted(maps.Keys(s.env)) {
		run.RunEnv = append(run.RunEnv, k+"="+s.env[k])
	}
}

// lowerInputs digests a run step's host files into the spec, under their
// container paths, and mounts them for the runner step.
func lowerInputs(inputs []hostInput, spec *layers.Spec, ps *PlannedStep) error {
	run := &ps.run
	for _, in := range inputs {
		src, err := filepath.Abs(in.src)
		if err != nil {
			return fmt.Errorf("input %s: %w", in.src, err)
		}
		st, err := os.Stat(src)
		if err != nil {
			if in.optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("input file %s: %w", in.src, err)
		}
		if st.IsDir() {
			return fmt.Errorf("input %s is a directory, not a file", in.src)
		}
		d, err := mount.FileDigest(src)
		if err != nil {
			return fmt.Errorf("input file %s: %w", in.src, err)
		}
		spec.Inputs = append(spec.Inputs, layers.Input{Name: in.dest, Digest: d})
		ps.trees = append(ps.trees, layers.Tree{Input: in.dest, Files: []layers.TreeEntry{{Path: filepath.Base(in.src), Mode: uint32(st.Mode().Perm()), Digest: d}}})
		run.Mounts = append(run.Mounts, runners.Mount{Src: src, Dest: in.dest})
	}
	return nil
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
