package dockerfile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

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
	triggers, err := p.inherit(st, byName, chain)
	if err != nil {
		return err
	}
	st.args = map[string]*string{}
	st.argOver = map[string]bool{}
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
	cv := &converter{p: p, st: st, byName: byName, chain: chain}
	for ci, c := range cmds {
		loc := c.Location()
		source := ""
		if ci < len(cmds)-len(is.Commands) {
			// A trigger: place it at the FROM line.
			loc, source = is.Location, "ONBUILD "+triggers[ci]
		}
		if source == "" {
			source = p.source(loc)
		}
		op := Op{Pos: p.pos(lineOf(loc), ""), Instruction: strings.ToUpper(c.Name()), Source: source}
		keep, err := cv.convert(c, &op, loc)
		if err != nil {
			return err
		}
		if keep {
			st.Ops = append(st.Ops, op)
		}
	}
	st.Needed = true
	return nil
}

// inherit gives st the state its base passes on (environment, working
// directory, user, shell) and returns the base's ONBUILD triggers. A
// stage on an image without PATH (scratch, a bare rootfs) gets the
// default one, in its config and for $PATH, as Docker and BuildKit do;
// commands added to an image (ParseCommands) leave its config alone.
func (p *dfParser) inherit(st *Stage, byName map[string]*Stage, chain []*Stage) ([]string, error) {
	st.shell = []string{"/bin/sh", "-c"}
	st.workdir = "/"
	var triggers []string
	switch {
	case st.BaseStage != nil:
		if err := p.translate(st.BaseStage, byName, slices.Clip(chain)); err != nil {
			return nil, err
		}
		b := st.BaseStage
		st.env, st.workdir, st.user, st.shell = slices.Clone(b.env), b.workdir, b.user, slices.Clone(b.shell)
		triggers = b.onbuild
	case st.BaseImage == "scratch":
	case p.opts.BaseConfig != nil:
		ref := st.BaseImage
		if st.BaseContext != "" {
			ref = st.BaseContext
		}
		cfg, err := p.opts.BaseConfig(ref)
		if err != nil {
			return nil, &Error{Pos: st.Pos, Err: fmt.Errorf("base image %s: %w", ref, err)}
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
	if st.BaseStage == nil && st.BaseContext != parentContext && !st.env.has("PATH") {
		st.env.set("PATH", DefaultPath)
		st.Ops = append(st.Ops, Op{Pos: st.Pos, Instruction: "ENV", Source: "ENV PATH=" + DefaultPath + " (the base sets no PATH)",
			KV: []KV{{"PATH", DefaultPath}}})
	}
	return triggers, nil
}

// converter translates the instructions of one stage, in order.
type converter struct {
	p      *dfParser
	st     *Stage
	byName map[string]*Stage
	chain  []*Stage
	sawCmd bool // a CMD came before (an ENTRYPOINT then keeps it)
}

// convert fills op from c, by instruction family (convert_config.go,
// convert_run.go, convert_copy.go). It returns false for an instruction
// that only changes the parser's state (ARG).
func (cv *converter) convert(c instructions.Command, op *Op, loc []parser.Range) (bool, error) {
	p := cv.p
	switch c := c.(type) {
	case *instructions.ArgCommand:
		return false, cv.arg(c, loc)
	case *instructions.RunCommand:
		return true, cv.run(c, op)
	case *instructions.CopyCommand:
		return true, cv.copy(c, op, loc)
	case *instructions.AddCommand:
		return true, cv.add(c, op, loc)
	}
	handled, err := cv.config(c, op, loc)
	if err == nil && !handled {
		err = p.errAt(loc, "", "instruction %s: %w", op.Instruction, ErrUnsupported)
	}
	return true, err
}

// rawExpander substitutes the stage's variables in the body of an
// unquoted heredoc: as BuildKit does, without quote processing, so quotes
// stay as written and variables inside them are expanded too.
func (cv *converter) rawExpander(loc []parser.Range) func(string) (string, error) {
	lookup := cv.p.stageLookup(cv.st)
	lex := shell.NewLex('\\')
	lex.SkipProcessQuotes = true
	return func(w string) (string, error) {
		res, err := lex.ProcessWordWithMatches(w, lookup)
		if err != nil {
			return "", cv.p.errAt(loc, "", "heredoc: %v", err)
		}
		return res.Result, nil
	}
}

// expander substitutes the stage's variables in a word of the
// instruction at loc.
func (cv *converter) expander(loc []parser.Range) func(string) (string, error) {
	lookup := cv.p.stageLookup(cv.st)
	return func(w string) (string, error) { return cv.p.expandWord(w, lookup, loc) }
}

// cmdline returns CMD/ENTRYPOINT/RUN argv: the shell form wrapped in the
// stage's shell.
func (p *dfParser) cmdline(c instructions.ShellDependantCmdLine, st *Stage) []string {
	if c.PrependShell && len(c.CmdLine) > 0 {
		return append(slices.Clone(st.shell), strings.Join(c.CmdLine, " "))
	}
	return slices.Clone(c.CmdLine)
}
