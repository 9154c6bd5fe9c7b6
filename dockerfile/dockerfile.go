package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Pos is a place in a Dockerfile.
type Pos struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Column int // 1-based; 0 when unknown
}

func (p Pos) String() string {
	s := p.File
	if s == "" {
		s = "Dockerfile"
	}
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
		if p.Column > 0 {
			s += ":" + strconv.Itoa(p.Column)
		}
	}
	return s
}

// Error is a Dockerfile that cannot be built, with the place of the fault.
type Error struct {
	Pos Pos
	Err error
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrUnsupported is wrapped by errors for Dockerfile features strata does
// not implement.
var ErrUnsupported = errors.New("not supported by strata")

// DefaultPath is the PATH a stage gets when its base image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BaseConfig is what a stage inherits from its base image.
type BaseConfig struct {
	Env        []string // KEY=value
	WorkingDir string
	User       string
	Shell      []string
	OnBuild    []string
}

// Options changes how a Dockerfile is read.
type Options struct {
	// Name is the file name used in errors (default "Dockerfile").
	Name string
	// BuildArgs are the --build-arg values.
	BuildArgs map[string]string
	// Target names the stage to build; default the last one.
	Target string
	// BaseConfig returns the config of a base image named in a FROM line
	// (never a stage name or "scratch"). Nil means every base has an
	// empty config.
	BaseConfig func(ref string) (*BaseConfig, error)
	// Contexts are names that FROM and COPY --from resolve to a caller's
	// image rather than a registry (BuildKit's named contexts).
	Contexts map[string]bool
	// Platform is "os/arch[/variant]"; default the host's.
	Platform string
}

// File is a parsed Dockerfile: the stages the target needs, in build order.
type File struct {
	// Stages holds every stage of the file, in order; only those with
	// Needed set are translated.
	Stages []*Stage
	// Target is the stage to build.
	Target *Stage
	// Notes are things a user should know that are not errors (an ignored
	// syntax line, unused build arguments).
	Notes []string
}

// Stage is one FROM section.
type Stage struct {
	Index int
	Name  string // lower case; "" when unnamed
	Pos   Pos
	// Exactly one of BaseStage, BaseContext and BaseImage is set;
	// BaseImage "scratch" is the empty image.
	BaseStage   *Stage
	BaseContext string
	BaseImage   string
	Needed      bool
	Ops         []Op

	// state after the last instruction, inherited by stages built on it
	onbuild []string // ONBUILD triggers the stage declares
	env     kvList
	workdir string
	user    string
	shell   []string
	args    map[string]*string // ARGs declared in the stage
}

// Ref names the stage as errors and descriptions show it.
func (s *Stage) Ref() string {
	if s.Name != "" {
		return s.Name
	}
	return "stage " + strconv.Itoa(s.Index)
}

// KV is one name and value, in the order written.
type KV struct{ Key, Value string }

// Op is one instruction that changes the image.
type Op struct {
	Pos Pos
	// Instruction is the upper-case instruction name ("RUN", "COPY", ...).
	Instruction string
	// Source is the instruction as written, for progress lines.
	Source string
	// Args: RUN (shell form: one script, run with Shell; exec form: argv),
	// CMD and ENTRYPOINT (argv, shell form already wrapped in the shell),
	// SHELL (argv), WORKDIR, USER and STOPSIGNAL (one value, WORKDIR
	// absolute), EXPOSE ("port/proto"), VOLUME, ONBUILD (the trigger).
	Args []string
	// KV: ENV and LABEL pairs.
	KV []KV
	// RUN only.
	Exec     bool     // exec (JSON) form: no shell
	Shell    []string // the shell in force (shell form)
	Env      []KV     // ARG values in scope: the step's own environment
	ProxyEnv []KV     // predefined proxy args given as build args: not keyed
	Mounts   []Mount
	Network  string // "" (default), "none" or "host"
	Devices  []string
	// COPY and ADD.
	Copy *Copy
	// HEALTHCHECK.
	Health *Healthcheck
	// ResetCmd is set on an ENTRYPOINT when no CMD came before it in the
	// stage: the base's CMD is cleared, as Docker does.
	ResetCmd bool
}

// Copy is a COPY or ADD.
type Copy struct {
	Add bool
	// Sources are paths relative to the source root (the context, or the
	// stage or image of From), slash-separated, cleaned, possibly globs;
	// for ADD also URLs.
	Sources []string
	// Inline are heredoc files (COPY <<EOF /dest).
	Inline []Inline
	// Dest is absolute; a trailing "/" means a directory.
	Dest string
	// FromStage or FromContext or FromImage names where Sources are read:
	// none set means the build context.
	FromStage   *Stage
	FromContext string
	FromImage   string
	Chown       string
	Chmod       string
	Link        bool
	Excludes    []string
	Parents     bool
	Checksum    string
	Unpack      *bool
	KeepGitDir  bool
}

// Inline is a heredoc source.
type Inline struct{ Name, Data string }

// Mount is one RUN --mount.
type Mount struct {
	Type     string // bind, cache, tmpfs, secret, ssh
	Target   string
	Source   string
	ReadOnly bool
	// cache
	ID      string
	Sharing string // shared, private, locked
	// bind or cache from a stage or image
	FromStage   *Stage
	FromContext string
	FromImage   string
	// secret
	Required bool
	Env      string
	Mode     *uint64
	UID, GID *uint64
}

// Healthcheck is a HEALTHCHECK instruction; Test nil-free: ["NONE"] disables.
type Healthcheck struct {
	Test        []string
	Interval    int64 // nanoseconds, 0 = inherit
	Timeout     int64
	StartPeriod int64
	StartInt    int64
	Retries     int
}

// ProxyArgs are the build arguments every Dockerfile may use without ARG.
var ProxyArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
	"FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// Parse reads a whole Dockerfile: the stages its target needs, expanded.
func Parse(data []byte, opts Options) (*File, error) {
	p, err := newParser(data, opts)
	if err != nil {
		return nil, err
	}
	return p.file()
}

// Check parses a Dockerfile for syntax only (no substitution, no base
// image): the errors a definition can report before a build starts.
func Check(data []byte, name string) error {
	_, err := newParser(data, Options{Name: name})
	return err
}

// ParseCommands reads instructions without FROM (Modal's
// dockerfile_commands) as one stage on top of a base whose config is base;
// COPY --from may name contexts only.
func ParseCommands(cmds []string, base *BaseConfig, opts Options) (*Stage, []string, error) {
	for _, c := range cmds {
		if fields := strings.Fields(c); len(fields) > 0 && strings.EqualFold(fields[0], "FROM") {
			return nil, nil, &Error{Pos: Pos{File: opts.Name}, Err: errors.New("FROM cannot be used here: the commands continue the image they are added to")}
		}
	}
	data := "FROM " + parentContext + "\n" + strings.Join(cmds, "\n") + "\n"
	if opts.Contexts == nil {
		opts.Contexts = map[string]bool{}
	}
	opts.Contexts = mapsClone(opts.Contexts)
	opts.Contexts[parentContext] = true
	bc := opts.BaseConfig
	opts.BaseConfig = func(ref string) (*BaseConfig, error) {
		if ref == parentContext {
			return base, nil
		}
		if bc == nil {
			return nil, nil
		}
		return bc(ref)
	}
	opts.Target = ""
	p, err := newParser([]byte(data), opts)
	if err != nil {
		return nil, nil, shiftLines(err, -1)
	}
	f, err := p.file()
	if err != nil {
		return nil, nil, shiftLines(err, -1)
	}
	if len(f.Stages) != 1 {
		return nil, nil, &Error{Pos: Pos{File: opts.Name}, Err: errors.New("FROM cannot be used here")}
	}
	st := f.Stages[0]
	for i := range st.Ops {
		st.Ops[i].Pos.Line--
	}
	return st, f.Notes, nil
}

// parentContext names the image ParseCommands continues.
const parentContext = "strata-parent"

func shiftLines(err error, d int) error {
	var e *Error
	if errors.As(err, &e) && e.Pos.Line > 0 {
		e.Pos.Line += d
	}
	return err
}

func mapsClone(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type dfParser struct {
	opts     Options
	lines    []string
	escape   rune
	lex      *shell.Lex
	stages   []instructions.Stage
	meta     []instructions.ArgCommand
	metaVals map[string]*string
	out      []*Stage
	usedArgs map[string]bool
	notes    []string
	platform map[string]string
}

func newParser(data []byte, opts Options) (*dfParser, error) {
	p := &dfParser{opts: opts, lines: strings.Split(string(data), "\n"), usedArgs: map[string]bool{}}
	if s, _, _, ok := parser.DetectSyntax(data); ok {
		p.notes = append(p.notes, fmt.Sprintf("the syntax directive (%s) is ignored: strata reads Dockerfiles with its own front end", s))
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, p.wrap(err, 0)
	}
	p.escape = res.EscapeToken
	p.lex = shell.NewLex(res.EscapeToken)
	p.stages, p.meta, err = instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, p.wrap(err, 0)
	}
	if len(p.stages) == 0 {
		return nil, &Error{Pos: Pos{File: opts.Name, Line: 1, Column: 1}, Err: errors.New("no FROM instruction: a Dockerfile starts with FROM (after ARGs)")}
	}
	return p, nil
}

// wrap turns a parser error into an *Error with its position.
func (p *dfParser) wrap(err error, line int) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	msg := parseErrPrefix.ReplaceAllString(err.Error(), "")
	var ui *instructions.UnknownInstructionError
	if errors.As(err, &ui) {
		msg = fmt.Sprintf("unknown instruction %s", strings.ToUpper(ui.Instruction))
	}
	return &Error{Pos: p.pos(line, ""), Err: errors.New(msg)}
}

var parseErrPrefix = regexp.MustCompile(`^dockerfile parse error on line \d+: `)

// pos returns the position of line, with the column of word in it when
// word is found there.
func (p *dfParser) pos(line int, word string) Pos {
	ps := Pos{File: p.opts.Name, Line: line}
	if line > 0 {
		ps.Column = 1
		if line-1 < len(p.lines) {
			l := p.lines[line-1]
			ps.Column = len(l) - len(strings.TrimLeft(l, " \t")) + 1
			if word != "" {
				if i := strings.Index(l, word); i >= 0 {
					ps.Column = i + 1
				}
			}
		}
	}
	return ps
}

func (p *dfParser) errAt(loc []parser.Range, word string, format string, args ...any) error {
	line := 0
	if len(loc) > 0 {
		line = loc[0].Start.Line
	}
	return &Error{Pos: p.pos(line, word), Err: fmt.Errorf(format, args...)}
}

func (p *dfParser) platformArgs() map[string]string {
	if p.platform != nil {
		return p.platform
	}
	plat := p.opts.Platform
	if plat == "" {
		plat = runtime.GOOS + "/" + runtime.GOARCH
		if runtime.GOARCH == "arm" {
			plat += "/v7"
		}
	}
	parts := strings.SplitN(plat, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	m := map[string]string{}
	for _, pre := range []string{"TARGET", "BUILD"} {
		m[pre+"PLATFORM"] = plat
		m[pre+"OS"] = parts[0]
		m[pre+"ARCH"] = parts[1]
		m[pre+"VARIANT"] = parts[2]
	}
	m["TARGETSTAGE"] = ""
	p.platform = m
	return m
}

func (p *dfParser) file() (*File, error) {
	// Global ARGs: visible to FROM lines.
	p.metaVals = map[string]*string{}
	for k, v := range p.platformArgs() {
		v := v
		p.metaVals[k] = &v
	}
	for _, a := range p.meta {
		for _, kv := range a.Args {
			v, err := p.argValue(kv, p.metaVals, a.Location())
			if err != nil {
				return nil, err
			}
			p.metaVals[kv.Key] = v
		}
	}
	byName := map[string]*Stage{}
	for i, is := range p.stages {
		st := &Stage{Index: i, Name: strings.ToLower(is.Name), Pos: p.pos(lineOf(is.Location), "")}
		p.out = append(p.out, st)
		base, err := p.expandWord(is.BaseName, lookupMap(p.metaVals), is.Location)
		if err != nil {
			return nil, err
		}
		if base == "" {
			return nil, p.errAt(is.Location, "", "FROM names no image (after substituting ARGs in %q)", is.BaseName)
		}
		if is.Platform != "" {
			plat, err := p.expandWord(is.Platform, lookupMap(p.metaVals), is.Location)
			if err != nil {
				return nil, err
			}
			if plat != p.platformArgs()["TARGETPLATFORM"] && plat != p.platformArgs()["BUILDPLATFORM"] {
				return nil, p.errAt(is.Location, "--platform", "FROM --platform=%s: strata builds for this host's platform (%s) only: %w", plat, p.platformArgs()["TARGETPLATFORM"], ErrUnsupported)
			}
		}
		lb := strings.ToLower(base)
		switch {
		case byName[lb] != nil:
			st.BaseStage = byName[lb]
		case p.opts.Contexts[base]:
			st.BaseContext = base
		default:
			st.BaseImage = base
		}
		if st.Name != "" {
			if _, dup := byName[st.Name]; dup {
				return nil, p.errAt(is.Location, is.Name, "stage name %q is used twice", is.Name)
			}
			byName[st.Name] = st
		}
	}
	target := p.out[len(p.out)-1]
	if p.opts.Target != "" {
		target = byName[strings.ToLower(p.opts.Target)]
		if target == nil {
			var names []string
			for _, s := range p.out {
				if s.Name != "" {
					names = append(names, s.Name)
				}
			}
			return nil, &Error{Pos: Pos{File: p.opts.Name}, Err: fmt.Errorf("target stage %q not found (stages: %s)", p.opts.Target, strings.Join(names, ", "))}
		}
	}
	if err := p.translate(target, byName, nil); err != nil {
		return nil, err
	}
	var unused []string
	for k := range p.opts.BuildArgs {
		if !p.usedArgs[k] && !slices.Contains(ProxyArgs, k) {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		p.notes = append(p.notes, "build arguments not used by any ARG: "+strings.Join(unused, ", "))
	}
	return &File{Stages: p.out, Target: target, Notes: p.notes}, nil
}

func lineOf(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// argValue computes an ARG's value: build arg, else default, else global.
func (p *dfParser) argValue(kv instructions.KeyValuePairOptional, scope map[string]*string, loc []parser.Range) (*string, error) {
	if v, ok := p.opts.BuildArgs[kv.Key]; ok {
		p.usedArgs[kv.Key] = true
		return &v, nil
	}
	if kv.Value != nil {
		v, err := p.expandWord(*kv.Value, lookupMap(scope), loc)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}
	if v, ok := p.metaVals[kv.Key]; ok && v != nil {
		c := *v
		return &c, nil
	}
	return nil, nil
}

// translate fills st.Ops, translating the stages it depends on first.
func (p *dfParser) translate(st *Stage, byName map[string]*Stage, chain []*Stage) error {
	if st.Needed {
		return nil
	}
	if slices.Contains(chain, st) {
		return &Error{Pos: st.Pos, Err: fmt.Errorf("stage %s depends on itself", st.Ref())}
	}
	chain = append(chain, st)
	is := p.stages[st.Index]
	// Inherited state.
	st.shell = []string{"/bin/sh", "-c"}
	st.workdir = "/"
	var triggers []string // the base's ONBUILD triggers, run first
	switch {
	case st.BaseStage != nil:
		if err := p.translate(st.BaseStage, byName, slices.Clip(chain)); err != nil {
			return err
		}
		b := st.BaseStage
		st.env, st.workdir, st.user, st.shell = slices.Clone(b.env), b.workdir, b.user, slices.Clone(b.shell)
		triggers = b.onbuild
	case st.BaseImage == "scratch":
	default:
		ref := st.BaseImage
		if st.BaseContext != "" {
			ref = st.BaseContext
		}
		if p.opts.BaseConfig != nil {
			cfg, err := p.opts.BaseConfig(ref)
			if err != nil {
				return &Error{Pos: st.Pos, Err: fmt.Errorf("base image %s: %w", ref, err)}
			}
			if cfg != nil {
				for _, e := range cfg.Env {
					k, v, _ := strings.Cut(e, "=")
					st.env.set(k, v)
				}
				if cfg.WorkingDir != "" {
					st.workdir = cfg.WorkingDir
				}
				st.user = cfg.User
				if len(cfg.Shell) > 0 {
					st.shell = slices.Clone(cfg.Shell)
				}
				triggers = cfg.OnBuild
			}
		}
	}
	// As Docker and BuildKit do, a stage on an image without PATH (scratch,
	// a bare rootfs) gets the default one, in its config and for $PATH.
	// Commands added to an image (ParseCommands) leave its config alone.
	if st.BaseStage == nil && st.BaseContext != parentContext && !st.env.has("PATH") {
		st.env.set("PATH", DefaultPath)
		st.Ops = append(st.Ops, Op{Pos: st.Pos, Instruction: "ENV", Source: "ENV PATH=" + DefaultPath + " (the base sets no PATH)",
			KV: []KV{{"PATH", DefaultPath}}})
	}
	st.args = map[string]*string{}
	sawCmd := false
	cmds := is.Commands
	if len(triggers) > 0 {
		tc, err := p.parseTriggers(triggers, is.Location)
		if err != nil {
			return err
		}
		// The base's triggers run first and are then spent: the image
		// built here does not pass them on.
		st.Ops = append(st.Ops, Op{Pos: st.Pos, Instruction: "ONBUILD-TRIGGERED", Source: "run the base's ONBUILD triggers", Args: slices.Clone(triggers)})
		cmds = append(tc, cmds...)
	}
	for ci, c := range cmds {
		loc := c.Location()
		source := ""
		if ci < len(cmds)-len(is.Commands) {
			// A trigger: place it at the FROM line.
			loc, source = is.Location, "ONBUILD "+triggers[ci]
		}
		line := lineOf(loc)
		if source == "" {
			source = p.source(loc)
		}
		op := Op{Pos: p.pos(line, ""), Instruction: strings.ToUpper(c.Name()), Source: source}
		lookup := p.stageLookup(st)
		expand := func(w string) (string, error) { return p.expandWord(w, lookup, loc) }
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				v, err := p.argValue(kv, st.args, loc)
				if err != nil {
					return err
				}
				st.args[kv.Key] = v
			}
			continue
		case *instructions.EnvCommand:
			var err error
			if op.KV, err = expandPairs(c.Env, expand); err != nil {
				return err
			}
			for _, kv := range op.KV {
				st.env.set(kv.Key, kv.Value)
			}
		case *instructions.LabelCommand:
			var err error
			if op.KV, err = expandPairs(c.Labels, expand); err != nil {
				return err
			}
		case *instructions.MaintainerCommand:
			// The image's Author field, as Docker and BuildKit set it.
			op.Args = []string{c.Maintainer}
		case *instructions.WorkdirCommand:
			w, err := expand(c.Path)
			if err != nil {
				return err
			}
			if !path.IsAbs(w) {
				w = path.Join(st.workdir, w)
			}
			st.workdir = path.Clean(w)
			op.Args = []string{st.workdir}
		case *instructions.UserCommand:
			u, err := expand(c.User)
			if err != nil {
				return err
			}
			st.user = u
			op.Args = []string{u}
		case *instructions.StopSignalCommand:
			s, err := expand(c.Signal)
			if err != nil {
				return err
			}
			op.Args = []string{s}
		case *instructions.ExposeCommand:
			for _, port := range c.Ports {
				ports, err := p.lex.ProcessWords(port, lookup)
				if err != nil {
					return p.errAt(loc, port, "%v", err)
				}
				for _, pt := range ports {
					if !strings.Contains(pt, "/") {
						pt += "/tcp"
					}
					op.Args = append(op.Args, strings.ToLower(pt))
				}
			}
		case *instructions.VolumeCommand:
			for _, v := range c.Volumes {
				v, err := expand(v)
				if err != nil {
					return err
				}
				if strings.TrimSpace(v) == "" {
					return p.errAt(loc, "", "VOLUME names an empty path")
				}
				op.Args = append(op.Args, v)
			}
		case *instructions.ShellCommand:
			st.shell = slices.Clone(c.Shell)
			op.Args = slices.Clone(c.Shell)
		case *instructions.OnbuildCommand:
			op.Args = []string{c.Expression}
			st.onbuild = append(st.onbuild, c.Expression)
		case *instructions.CmdCommand:
			op.Args = p.cmdline(c.ShellDependantCmdLine, st)
			sawCmd = true
		case *instructions.EntrypointCommand:
			op.Args = p.cmdline(c.ShellDependantCmdLine, st)
			op.ResetCmd = !sawCmd
		case *instructions.HealthCheckCommand:
			h := c.Health
			op.Health = &Healthcheck{Test: slices.Clone(h.Test), Interval: int64(h.Interval), Timeout: int64(h.Timeout),
				StartPeriod: int64(h.StartPeriod), StartInt: int64(h.StartInterval), Retries: h.Retries}
		case *instructions.RunCommand:
			if err := p.run(c, &op, st, byName, chain); err != nil {
				return err
			}
		case *instructions.CopyCommand:
			if err := c.Expand(expand); err != nil {
				return p.exprErr(err, loc)
			}
			if err := c.ExpandRaw(expand); err != nil {
				return p.exprErr(err, loc)
			}
			cp := &Copy{Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, Excludes: c.ExcludePatterns, Parents: c.Parents}
			if err := p.copyFrom(c.From, cp, byName, chain, loc); err != nil {
				return err
			}
			if err := p.sources(c.SourcesAndDest, cp, st, loc, false); err != nil {
				return err
			}
			op.Copy = cp
		case *instructions.AddCommand:
			if err := c.Expand(expand); err != nil {
				return p.exprErr(err, loc)
			}
			if err := c.ExpandRaw(expand); err != nil {
				return p.exprErr(err, loc)
			}
			cp := &Copy{Add: true, Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, Excludes: c.ExcludePatterns,
				Checksum: c.Checksum, Unpack: c.Unpack}
			if c.KeepGitDir != nil {
				cp.KeepGitDir = *c.KeepGitDir
			}
			if err := p.sources(c.SourcesAndDest, cp, st, loc, true); err != nil {
				return err
			}
			op.Copy = cp
		default:
			return p.errAt(loc, "", "instruction %s: %w", op.Instruction, ErrUnsupported)
		}
		st.Ops = append(st.Ops, op)
	}
	st.Needed = true
	return nil
}

// expandPairs substitutes variables in the names and values of ENV or
// LABEL pairs, all against the environment before the instruction.
func expandPairs(pairs instructions.KeyValuePairs, expand func(string) (string, error)) ([]KV, error) {
	var out []KV
	for _, kv := range pairs {
		k, err := expand(kv.Key)
		if err != nil {
			return nil, err
		}
		v, err := expand(kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, KV{k, v})
	}
	return out, nil
}

// parseTriggers parses ONBUILD trigger expressions as instructions.
func (p *dfParser) parseTriggers(triggers []string, loc []parser.Range) ([]instructions.Command, error) {
	for _, t := range triggers {
		switch strings.ToUpper(strings.Fields(t + " x")[0]) {
		case "ONBUILD", "FROM", "MAINTAINER":
			return nil, p.errAt(loc, "", "the base's ONBUILD trigger %q is not allowed (ONBUILD, FROM and MAINTAINER cannot be triggers)", t)
		}
	}
	res, err := parser.Parse(strings.NewReader("FROM scratch\n" + strings.Join(triggers, "\n") + "\n"))
	if err != nil {
		return nil, p.errAt(loc, "", "the base's ONBUILD triggers: %v", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil || len(stages) != 1 {
		return nil, p.errAt(loc, "", "the base's ONBUILD triggers: %v", err)
	}
	if len(stages[0].Commands) != len(triggers) {
		return nil, p.errAt(loc, "", "the base's ONBUILD triggers %q do not parse one instruction each", triggers)
	}
	return stages[0].Commands, nil
}

// source returns the instruction's text as written (first line only).
func (p *dfParser) source(loc []parser.Range) string {
	line := lineOf(loc)
	if line <= 0 || line > len(p.lines) {
		return ""
	}
	s := strings.TrimSpace(p.lines[line-1])
	if len(loc) > 0 && loc[len(loc)-1].End.Line > line {
		s = strings.TrimSuffix(strings.TrimSpace(strings.TrimSuffix(s, string(p.escape))), " ") + " ..."
	}
	return s
}

// cmdline returns CMD/ENTRYPOINT/RUN argv: the shell form wrapped in the
// stage's shell.
func (p *dfParser) cmdline(c instructions.ShellDependantCmdLine, st *Stage) []string {
	if c.PrependShell && len(c.CmdLine) > 0 {
		return append(slices.Clone(st.shell), strings.Join(c.CmdLine, " "))
	}
	return slices.Clone(c.CmdLine)
}

func (p *dfParser) run(c *instructions.RunCommand, op *Op, st *Stage, byName map[string]*Stage, chain []*Stage) error {
	loc := c.Location()
	lookup := p.stageLookup(st)
	expand := func(w string) (string, error) { return p.expandWord(w, lookup, loc) }
	if err := c.Expand(expand); err != nil { // parses the --mount flags with substitution
		return p.exprErr(err, loc)
	}
	if sec := instructions.GetSecurity(c); sec != "" && sec != "sandbox" {
		return p.errAt(loc, "--security", "RUN --security=%s: %w", sec, ErrUnsupported)
	}
	switch n := instructions.GetNetwork(c); n {
	case "", instructions.NetworkDefault:
	case instructions.NetworkNone, instructions.NetworkHost:
		op.Network = n
	default:
		return p.errAt(loc, "--network", "RUN --network=%s: use default, none or host", n)
	}
	for _, d := range instructions.GetDevices(c) {
		op.Devices = append(op.Devices, d.Name)
	}
	for _, m := range instructions.GetMounts(c) {
		mt := Mount{Type: string(m.Type), Target: m.Target, Source: m.Source, ReadOnly: m.ReadOnly,
			ID: m.CacheID, Sharing: string(m.CacheSharing), Required: m.Required, Mode: m.Mode, UID: m.UID, GID: m.GID}
		if m.Env != nil {
			mt.Env = *m.Env
		}
		if mt.Target != "" && !path.IsAbs(mt.Target) {
			mt.Target = path.Join(st.workdir, mt.Target)
		}
		switch mt.Type {
		case "cache":
			if mt.Sharing == "" {
				mt.Sharing = "shared"
			}
			if mt.ID == "" {
				mt.ID = mt.Target
			}
		case "secret":
			if mt.ID == "" && mt.Target != "" {
				mt.ID = path.Base(mt.Target)
			}
			if mt.Target == "" && mt.Env == "" {
				mt.Target = "/run/secrets/" + mt.ID
			}
		case "ssh":
			return p.errAt(loc, "type=ssh", "RUN --mount=type=ssh: %w (pass keys with a secret mount)", ErrUnsupported)
		}
		if m.From != "" {
			fc := &Copy{}
			if err := p.copyFrom(m.From, fc, byName, chain, loc); err != nil {
				return err
			}
			mt.FromStage, mt.FromContext, mt.FromImage = fc.FromStage, fc.FromContext, fc.FromImage
		}
		op.Mounts = append(op.Mounts, mt)
	}
	// ARGs in scope reach the command as environment variables, unless an
	// ENV of the same name is set (ENV wins).
	var names []string
	for k, v := range st.args {
		if v != nil && !st.env.has(k) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		op.Env = append(op.Env, KV{k, *st.args[k]})
	}
	for _, k := range ProxyArgs {
		if v, ok := p.opts.BuildArgs[k]; ok {
			if _, declared := st.args[k]; !declared {
				op.ProxyEnv = append(op.ProxyEnv, KV{k, v})
			}
		}
	}
	if !c.PrependShell {
		op.Exec = true
		op.Args = slices.Clone(c.CmdLine)
		if len(op.Args) == 0 {
			return p.errAt(loc, "", "RUN has no command")
		}
		return nil
	}
	op.Shell = slices.Clone(st.shell)
	script := strings.Join(c.CmdLine, " ")
	if len(c.Files) > 0 {
		if h := parser.MustParseHeredoc(script); h != nil && len(c.Files) == 1 {
			// RUN <<EOF alone: the heredoc is the script.
			data := c.Files[0].Data
			if strings.HasPrefix(data, "#!") {
				// A script with its own interpreter: write it and run it.
				script = "set -e; f=$(mktemp); trap 'rm -f \"$f\"' EXIT; cat > \"$f\" <<'STRATA_HEREDOC_EOF'\n" +
					data + "STRATA_HEREDOC_EOF\nchmod +x \"$f\"; \"$f\""
			} else {
				script = data
			}
		} else {
			// Heredocs fed to a command: the shell reads them itself.
			for _, f := range c.Files {
				script += "\n" + f.Data + f.Name
			}
		}
	}
	if strings.TrimSpace(script) == "" {
		return p.errAt(loc, "", "RUN has no command")
	}
	op.Args = []string{script}
	return nil
}

// copyFrom resolves --from: a stage (by name or index), a named context, or
// an image.
func (p *dfParser) copyFrom(from string, cp *Copy, byName map[string]*Stage, chain []*Stage, loc []parser.Range) error {
	if from == "" {
		return nil
	}
	cur := chain[len(chain)-1]
	if s := byName[strings.ToLower(from)]; s != nil {
		cp.FromStage = s
	} else if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= cur.Index {
			return p.errAt(loc, "--from", "--from=%d: there is no earlier stage %d", n, n)
		}
		cp.FromStage = p.out[n]
	} else if p.opts.Contexts[from] {
		cp.FromContext = from
		return nil
	} else {
		if strings.ContainsAny(from, " \t") || from != strings.ToLower(from) && !strings.Contains(from, "/") {
			return p.errAt(loc, "--from", "--from=%s: no stage of that name, and not an image reference", from)
		}
		cp.FromImage = from
		return nil
	}
	if cp.FromStage == cur || cp.FromStage.Index > cur.Index {
		return p.errAt(loc, "--from", "--from=%s: a stage can only use stages defined before it", from)
	}
	return p.translate(cp.FromStage, byName, slices.Clip(chain[:len(chain)-1]))
}

// sources checks and cleans COPY/ADD sources and the destination.
func (p *dfParser) sources(sd instructions.SourcesAndDest, cp *Copy, st *Stage, loc []parser.Range, add bool) error {
	dest := sd.DestPath
	if dest == "" {
		return p.errAt(loc, "", "no destination")
	}
	dir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		dest = path.Join(st.workdir, dest)
	}
	dest = path.Clean(dest)
	if dir && dest != "/" {
		dest += "/"
	}
	cp.Dest = dest
	for _, s := range sd.SourcePaths {
		if add && (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")) {
			cp.Sources = append(cp.Sources, s)
			continue
		}
		if add && (strings.HasPrefix(s, "git@") || strings.HasSuffix(s, ".git") && strings.Contains(s, "://")) {
			return p.errAt(loc, s, "ADD %s: git sources are %w", s, ErrUnsupported)
		}
		local := cp.FromStage == nil && cp.FromContext == "" && cp.FromImage == ""
		if local {
			if path.IsAbs(s) {
				return p.errAt(loc, s, "source %q is an absolute path: COPY and ADD read from the build context; write it relative to the context", s)
			}
			c := path.Clean(s)
			if c == ".." || strings.HasPrefix(c, "../") {
				return p.errAt(loc, s, "source %q is outside the build context", s)
			}
			if cp.Parents && strings.Contains(s, "/./") {
				// The pivot of --parents: keep it, cleaning each side.
				l, r, _ := strings.Cut(s, "/./")
				c = path.Clean(l) + "/./" + path.Clean(r)
			}
			cp.Sources = append(cp.Sources, c)
			continue
		}
		c := path.Clean("/" + s)
		cp.Sources = append(cp.Sources, strings.TrimPrefix(c, "/"))
	}
	for _, sc := range sd.SourceContents {
		cp.Inline = append(cp.Inline, Inline{Name: sc.Path, Data: sc.Data})
	}
	if len(cp.Sources)+len(cp.Inline) == 0 {
		return p.errAt(loc, "", "no source")
	}
	if len(cp.Sources)+len(cp.Inline) > 1 && !strings.HasSuffix(cp.Dest, "/") {
		return p.errAt(loc, "", "with more than one source, the destination %q must be a directory ending in /", sd.DestPath)
	}
	return nil
}

// exprErr places a substitution error at its instruction, with the column
// of the variable it names when it can be found.
func (p *dfParser) exprErr(err error, loc []parser.Range) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return p.errAt(loc, "", "%v", err)
}

// expandWord substitutes variables in one word.
func (p *dfParser) expandWord(w string, env shell.EnvGetter, loc []parser.Range) (string, error) {
	res, err := p.lex.ProcessWordWithMatches(w, env)
	if err != nil {
		word := ""
		if i := strings.Index(w, "${"); i >= 0 {
			word = w[i:]
			if j := strings.IndexByte(word, '}'); j >= 0 {
				word = word[:j+1]
			}
		}
		return "", p.errAt(loc, word, "%v", err)
	}
	return res.Result, nil
}

func (p *dfParser) stageLookup(st *Stage) shell.EnvGetter {
	return envGetter(func(k string) (string, bool) {
		if v, ok := st.env.get(k); ok {
			return v, true
		}
		if v, ok := st.args[k]; ok && v != nil {
			return *v, true
		}
		return "", false
	})
}

type envGetter func(string) (string, bool)

func (f envGetter) Get(k string) (string, bool) { return f(k) }
func (f envGetter) Keys() []string              { return nil }

func lookupMap(m map[string]*string) shell.EnvGetter {
	return envGetter(func(k string) (string, bool) {
		if v, ok := m[k]; ok && v != nil {
			return *v, true
		}
		return "", false
	})
}

// kvList is an ordered environment.
type kvList []KV

func (l *kvList) set(k, v string) {
	for i := range *l {
		if (*l)[i].Key == k {
			(*l)[i].Value = v
			return
		}
	}
	*l = append(*l, KV{k, v})
}

func (l kvList) get(k string) (string, bool) {
	for _, kv := range l {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return "", false
}

func (l kvList) has(k string) bool { _, ok := l.get(k); return ok }

// Env returns the stage's environment after its last instruction.
func (s *Stage) Env() []KV { return slices.Clone(s.env) }
