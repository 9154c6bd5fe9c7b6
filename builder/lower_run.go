package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/mount"
	"github.com/stratabuild/strata/runners"
)

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

// lowerExecRun lowers a RUN in exec form: argv, no shell.
func (pe *planEnv) lowerExecRun(s *stepDef, spec *layers.Spec, ps *PlannedStep) error {
	spec.Args = s.args
	spec.Options = map[string]string{"exec": "true"}
	ps.run.Argv = [][]string{s.args}
	j, _ := json.Marshal(s.args)
	ps.Description = string(j)
	lowerRunEnv(s, spec, &ps.run)
	return pe.lowerRunExtras(s, spec, ps)
}

// lowerRunExtras lowers what a run step may have besides its commands:
// mounts (cache, tmpfs, bind, secret), network and environment that is not
// keyed.
func (pe *planEnv) lowerRunExtras(s *stepDef, spec *layers.Spec, ps *PlannedStep) error {
	for _, m := range s.opts.secretFiles {
		spec.Secrets = append(spec.Secrets, "file:"+m.secret.name+"/"+m.id+"@"+m.target)
		ps.secretMounts = append(ps.secretMounts, m)
	}
	sort.Strings(spec.Secrets)
	if len(s.mounts) == 0 && !s.noNetwork && len(s.unkeyedEnv) == 0 {
		return nil
	}
	if spec.Options == nil {
		spec.Options = map[string]string{}
	}
	for _, k := range slices.Sorted(maps.Keys(s.unkeyedEnv)) {
		ps.unkeyedEnv = append(ps.unkeyedEnv, k+"="+s.unkeyedEnv[k])
	}
	if s.noNetwork {
		spec.Options["network"] = "none"
		ps.run.NoNetwork = true
	}
	for i, m := range s.mounts {
		desc := "type=" + m.typ + ",target=" + m.target
		switch m.typ {
		case "cache":
			desc += ",id=" + m.id + ",sharing=" + m.sharing
			if m.readOnly {
				desc += ",ro"
			}
			if m.uid != nil || m.gid != nil || m.mode != nil {
				desc += fmt.Sprintf(",uid=%s,gid=%s,mode=%s", optUint(m.uid), optUint(m.gid), optUint(m.mode))
			}
			dir := pe.cacheMountPath(m.id)
			ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Src: dir, Dest: m.target, Writable: !m.readOnly})
			cm := cacheMountDir{id: m.id, dir: dir, mode: m.mode, uid: m.uid, gid: m.gid}
			if m.from != nil {
				// A new cache starts with the stage's files (BuildKit's
				// from= for cache mounts); the step depends on the stage.
				sub, err := pe.plan(context.Background(), *m.from)
				if err != nil {
					return fmt.Errorf("RUN --mount=type=cache,from=...: %w", err)
				}
				desc += ",source=" + m.source
				spec.Inputs = append(spec.Inputs, layers.Input{Name: "cache-from:" + m.target, Digest: string(sub.Steps[len(sub.Steps)-1].Key)})
				cm.seed, cm.seedDep, cm.seedSrc = true, len(ps.deps), m.source
				ps.deps = append(ps.deps, sub)
			}
			ps.cacheMounts = append(ps.cacheMounts, cm)
			if m.sharing == "locked" || m.sharing == "private" {
				ps.run.Locks = append(ps.run.Locks, dir+".lock")
			}
		case "tmpfs":
			ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Tmpfs: true, Dest: m.target})
		case "volume":
			desc += ",name=" + m.id
			dir := filepath.Join(pe.mountRoot, "volumes", m.id)
			ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Src: dir, Dest: m.target, Writable: true})
			ps.volumes = append(ps.volumes, dir)
		case "bind":
			if m.from != nil {
				sub, err := pe.plan(context.Background(), *m.from)
				if err != nil {
					return fmt.Errorf("RUN --mount=type=bind,from=...: %w", err)
				}
				desc += ",source=" + m.source
				if !m.readOnly {
					desc += ",rw"
				}
				spec.Inputs = append(spec.Inputs, layers.Input{Name: "bind-from:" + m.target, Digest: string(sub.Steps[len(sub.Steps)-1].Key)})
				if ps.mountDep == nil {
					ps.mountDep = map[int]int{}
				}
				ps.mountDep[len(ps.run.Mounts)] = len(ps.deps)
				ps.deps = append(ps.deps, sub)
				// rw: writable, the writes discarded (as in BuildKit).
				ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Src: m.source, Dest: m.target, Discard: !m.readOnly})
				break
			}
			src, err := contextPath(m.ctxDir, m.source, m.ignore, m.ignoreFrom, false)
			if err != nil {
				return fmt.Errorf("RUN --mount=type=bind,source=%s: %w", m.source, err)
			}
			tree, err := mount.WalkIn(m.ctxDir, relOrDot(m.source), m.ignore, mount.WithDigestCache(pe.digests))
			if err != nil {
				return err
			}
			desc += ",source=" + m.source
			if !m.readOnly {
				// Writable over a private copy: the context is never written.
				desc += ",rw"
			}
			spec.Inputs = append(spec.Inputs, layers.Input{Name: "bind:" + m.target, Digest: tree.Digest})
			ps.trees = append(ps.trees, treeOf("bind:"+m.target, tree))
			ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Src: src, Dest: m.target, Discard: !m.readOnly})
		case "ssh":
			// Keyed by id and target only: the socket's path and the
			// agent's keys change nothing the step writes (as in
			// BuildKit).
			desc += ",id=" + m.id
			if m.sshSocket == "" {
				if m.required {
					return fmt.Errorf("RUN --mount=type=ssh,id=%s,required: no ssh agent is forwarded for %s: give --ssh %s[=SOCKET] (builder.SSH)", m.id, m.id, m.id)
				}
				break
			}
			st, err := os.Stat(m.sshSocket)
			if err != nil || st.Mode()&fs.ModeSocket == 0 {
				return fmt.Errorf("RUN --mount=type=ssh,id=%s: %s is not a socket: give an ssh agent's socket ($SSH_AUTH_SOCK after eval $(ssh-agent) and ssh-add KEY)", m.id, m.sshSocket)
			}
			ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Src: m.sshSocket, Dest: m.target, Writable: true})
			if !slices.ContainsFunc(ps.run.RunEnv, func(e string) bool { return strings.HasPrefix(e, "SSH_AUTH_SOCK=") }) {
				ps.run.RunEnv = append(ps.run.RunEnv, "SSH_AUTH_SOCK="+m.target)
			}
		case "secret":
			desc += ",id=" + m.id + ",env=" + m.env
			spec.Secrets = append(spec.Secrets, "mount:"+m.id)
			ps.secretMounts = append(ps.secretMounts, m)
		default:
			return fmt.Errorf("RUN --mount=type=%s is not supported", m.typ)
		}
		spec.Options["mount."+strconv.Itoa(i)] = desc
	}
	sort.Strings(spec.Secrets)
	return nil
}

func optUint(p *uint64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatUint(*p, 8)
}

// cacheMountPath returns the persistent host directory of the cache
// mount id, under the session's mount root (WithCacheMountDir).
func (pe *planEnv) cacheMountPath(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(pe.mountRoot, "cache-mounts", hex.EncodeToString(sum[:16]))
}

// lowerShellRun lowers a run step in shell form (RunCommands, a package
// installer, a Dockerfile RUN): its commands, run by its shell, with the
// host files it mounts.
func (pe *planEnv) lowerShellRun(s *stepDef, spec *layers.Spec, ps *PlannedStep) error {
	shell := s.shell
	if len(shell) == 0 {
		shell = defaultShell
	}
	args := s.args
	if s.resolve != nil {
		var err error
		if args, err = s.resolve(); err != nil {
			return err
		}
	}
	spec.Args = args
	spec.Shell = shell
	if err := lowerInputs(s.inputs, spec, ps); err != nil {
		return err
	}
	if s.pathPrepend != "" {
		spec.Options = map[string]string{"path_prepend": s.pathPrepend}
		ps.run.Config.PathPrepend = s.pathPrepend
	}
	ps.run.Commands = args
	ps.run.Shell = shell
	ps.Description = strings.Join(args, " && ")
	lowerRunEnv(s, spec, &ps.run)
	return pe.lowerRunExtras(s, spec, ps)
}

// lowerFunction lowers RunFunction: this program, mounted into the build
// container and started there with the function's name and arguments.
func (pe *planEnv) lowerFunction(s *stepDef, spec *layers.Spec, ps *PlannedStep) error {
	self, err := runners.SelfExec()
	if err != nil {
		return fmt.Errorf("running a function in the build container: %w", err)
	}
	spec.Args = s.args
	version := s.fn.version
	if version == "" {
		version = self.BuildID
	}
	spec.Options = map[string]string{"version": version}
	ps.run.Mounts = append(ps.run.Mounts, self.Mounts...)
	ps.run.Argv = [][]string{append(append([]string{}, self.Argv...), s.args[1:]...)}
	lowerRunEnv(s, spec, &ps.run)
	ps.run.RunEnv = append(ps.run.RunEnv, runners.EnvFunction+"="+s.fn.name)
	if err := pe.lowerRunExtras(s, spec, ps); err != nil {
		return err
	}
	ps.Description = s.fn.name
	if len(s.args) > 1 {
		ps.Description += " " + shellJoin(s.args[1:])
	}
	return nil
}
