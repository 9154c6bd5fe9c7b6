package dockerfile

import (
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// The instructions that change the stage's variables or the image's
// config and run nothing: ARG, ENV, LABEL, MAINTAINER, WORKDIR, USER,
// STOPSIGNAL, EXPOSE, VOLUME, SHELL, ONBUILD, CMD, ENTRYPOINT and
// HEALTHCHECK.

// arg declares the build arguments of an ARG instruction in the stage.
func (cv *converter) arg(c *instructions.ArgCommand, loc []parser.Range) error {
	for _, kv := range c.Args {
		v, err := cv.p.argValue(kv, cv.st.args, loc)
		if err != nil {
			return err
		}
		cv.st.args[kv.Key] = v
		if v != nil && cv.st.env.has(kv.Key) {
			cv.st.argOver[kv.Key] = true
		}
	}
	return nil
}

// config fills op for a config instruction; it returns false for an
// instruction of another family.
func (cv *converter) config(c instructions.Command, op *Op, loc []parser.Range) (bool, error) {
	st := cv.st
	expand := cv.expander(loc)
	var err error
	switch c := c.(type) {
	case *instructions.EnvCommand:
		if op.KV, err = expandPairs(c.Env, expand); err == nil {
			for _, kv := range op.KV {
				st.env.set(kv.Key, kv.Value)
				delete(st.argOver, kv.Key)
			}
		}
	case *instructions.LabelCommand:
		op.KV, err = expandPairs(c.Labels, expand)
	case *instructions.MaintainerCommand:
		// The image's Author field, as Docker and BuildKit set it.
		op.Args = []string{c.Maintainer}
	case *instructions.WorkdirCommand:
		var w string
		if w, err = expand(c.Path); err == nil {
			if !path.IsAbs(w) {
				w = path.Join(st.workdir, w)
			}
			st.workdir = path.Clean(w)
			op.Args = []string{st.workdir}
		}
	case *instructions.UserCommand:
		var u string
		if u, err = expand(c.User); err == nil {
			st.user = u
			op.Args = []string{u}
		}
	case *instructions.StopSignalCommand:
		var s string
		if s, err = expand(c.Signal); err == nil {
			op.Args = []string{s}
		}
	case *instructions.ExposeCommand:
		op.Args, err = cv.ports(c.Ports, loc)
	case *instructions.VolumeCommand:
		op.Args, err = cv.volumes(c.Volumes, loc)
	case *instructions.ShellCommand:
		st.shell = slices.Clone(c.Shell)
		op.Args = slices.Clone(c.Shell)
	case *instructions.OnbuildCommand:
		op.Args = []string{c.Expression}
		st.onbuild = append(st.onbuild, c.Expression)
	case *instructions.CmdCommand:
		op.Args = cv.p.cmdline(c.ShellDependantCmdLine, st)
		cv.sawCmd = true
	case *instructions.EntrypointCommand:
		op.Args = cv.p.cmdline(c.ShellDependantCmdLine, st)
		op.ResetCmd = !cv.sawCmd
	case *instructions.HealthCheckCommand:
		h := c.Health
		op.Health = &Healthcheck{Test: slices.Clone(h.Test), Interval: int64(h.Interval), Timeout: int64(h.Timeout),
			StartPeriod: int64(h.StartPeriod), StartInt: int64(h.StartInterval), Retries: h.Retries}
	default:
		return false, nil
	}
	return true, err
}

// ports expands EXPOSE's ports (one word may name several) and gives
// each a protocol, tcp by default.
func (cv *converter) ports(words []string, loc []parser.Range) ([]string, error) {
	var out []string
	lookup := cv.p.stageLookup(cv.st)
	for _, port := range words {
		ports, err := cv.p.lex.ProcessWords(port, lookup)
		if err != nil {
			return nil, cv.p.errAt(loc, port, "%v", err)
		}
		for _, pt := range ports {
			if !strings.Contains(pt, "/") {
				pt += "/tcp"
			}
			out = append(out, strings.ToLower(pt))
		}
	}
	return out, nil
}

// volumes expands VOLUME's paths; an empty one is an error.
func (cv *converter) volumes(words []string, loc []parser.Range) ([]string, error) {
	var out []string
	expand := cv.expander(loc)
	for _, v := range words {
		v, err := expand(v)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(v) == "" {
			return nil, cv.p.errAt(loc, "", "VOLUME names an empty path")
		}
		out = append(out, v)
	}
	return out, nil
}
