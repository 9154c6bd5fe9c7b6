package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

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
	host := runtime.GOOS + "/" + runtime.GOARCH
	if runtime.GOARCH == "arm" {
		host += "/v7"
	}
	target := p.opts.Platform
	if target == "" {
		target = host
	}
	m := map[string]string{}
	for pre, plat := range map[string]string{"TARGET": target, "BUILD": host} {
		parts := strings.SplitN(plat, "/", 3)
		for len(parts) < 3 {
			parts = append(parts, "")
		}
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
			// A stage for another platform than the target's: the build
			// stage of a cross build (--platform=$BUILDPLATFORM) runs
			// natively, any other through its emulator.
			if plat != p.platformArgs()["TARGETPLATFORM"] {
				st.Platform = plat
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
			if first, dup := byName[st.Name]; dup {
				// BuildKit builds it and warns (DuplicateStageName): a FROM
				// names the latest stage of that name defined before it;
				// --from, mounts and --target name the last one.
				p.notes = append(p.notes, fmt.Sprintf("%s: stage name %q is used again (first at line %d); stage names should be unique: --from and --target name the later stage", st.Pos, is.Name, first.Pos.Line))
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
