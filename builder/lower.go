package builder

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/mount"
)

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

// lower lowers the step of node n to its planned step: the key spec and
// the runner step, in one function per step family (lower_run.go,
// lower_copy.go, lower_config.go). The session-wide settings that change
// every step's result (SourceDateEpoch, ReproducibleCleanup) are applied
// here too (and ForceBuildAll); nothing changes the planned step
// afterwards.
func (pe *planEnv) lower(ctx context.Context, n *node) (PlannedStep, error) {
	s := n.step
	ps := PlannedStep{Index: n.index, Method: s.method, Force: s.opts.force, secrets: s.opts.secrets}
	ps.run.Name = ps.Name()
	spec := layers.Spec{Kind: s.kind}
	var err error
	switch s.kind {
	case layers.KindRun:
		if s.exec {
			err = pe.lowerExecRun(s, &spec, &ps)
		} else {
			err = pe.lowerShellRun(s, &spec, &ps)
		}
	case layers.KindFunction:
		err = pe.lowerFunction(s, &spec, &ps)
	case layers.KindEnv, layers.KindWorkdir, layers.KindUser, layers.KindLabel,
		layers.KindConfig, layers.KindEntrypoint, layers.KindCmd, layers.KindAnnotation:
		err = lowerConfig(s, &spec, &ps)
	case layers.KindCopy:
		err = pe.lowerCopy(ctx, s, &spec, &ps)
	case layers.KindAdd:
		err = pe.lowerAddLocal(s, &spec, &ps)
	default:
		err = fmt.Errorf("unknown step kind %q", s.kind)
	}
	if err != nil {
		return ps, err
	}
	if s.desc != "" {
		ps.Description = s.desc
	}
	ps.Force = ps.Force || pe.forceAll
	if !ps.run.GPU.IsZero() && pe.platform != "" && archOf(pe.platform) != archOf(hostPlatform()) {
		return ps, fmt.Errorf("a GPU step cannot run on %s: that platform is emulated here (no emulated GPU); build GPU steps for %s", pe.platform, hostPlatform())
	}
	pe.lowerSessionWide(&spec, &ps)
	ps.Spec = spec
	ps.run.History = historyOf(s, spec, &ps)
	return ps, nil
}

// lowerSessionWide applies the session's settings that change the result
// of every step, and so enter its key: SourceDateEpoch (timestamps in the
// layer, config and history are clamped to it, and commands see it as
// SOURCE_DATE_EPOCH, the reproducible-builds.org convention that Python's
// byte-compiler, gzip and dpkg follow) and ReproducibleCleanup.
func (pe *planEnv) lowerSessionWide(spec *layers.Spec, ps *PlannedStep) {
	runs := len(ps.run.Commands)+len(ps.run.Argv) > 0
	if spec.Options == nil {
		spec.Options = map[string]string{}
	}
	spec.Options["platform"] = pe.targetPlatform()
	ps.run.Platform = pe.platform
	if pe.format != "" {
		spec.Options["format"] = pe.format
		ps.run.Format = pe.format
	}
	if pe.sde != nil {
		if spec.Options == nil {
			spec.Options = map[string]string{}
		}
		epoch := strconv.FormatInt(pe.sde.Unix(), 10)
		spec.Options["source_date_epoch"] = epoch
		ps.run.SourceDateEpoch = pe.sde
		if runs {
			ps.run.RunEnv = append(slices.Clone(ps.run.RunEnv), EnvSourceDateEpoch+"="+epoch)
		}
	}
	if pe.cleanup && runs {
		if spec.Options == nil {
			spec.Options = map[string]string{}
		}
		spec.Options["cleanup"] = volatileFilesVersion
		ps.run.RemoveAfter = VolatileFiles()
	}
}
