package builder

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/gpu"
	"github.com/stratabuild/strata/layers"
)

// op adds one instruction's step.
func (t *dfTranslator) op(img Image, st *dockerfile.Stage, op dockerfile.Op) (Image, error) {
	s := &stepDef{method: op.Instruction, df: nil, desc: op.Source, pos: op.Pos.String()}
	s.opts.force = t.d.opts.run.force
	if st.Name != "" && t.d.method == "FromDockerfile" {
		s.desc = "[" + st.Name + "] " + op.Source
	}
	var err error
	switch op.Instruction {
	case "RUN":
		err = t.opRun(s, op)
	case "COPY", "ADD":
		err = t.opCopy(s, op)
	case "SHELL":
		// Later RUNs carry the shell in their own keys; OCI configs have
		// no shell field, Docker's do.
		if t.pe.format != "docker" {
			t.pe.notes = append(t.pe.notes, fmt.Sprintf("%s: SHELL applies to this Dockerfile's later RUN, CMD and ENTRYPOINT lines; OCI images have no shell field, so it is not recorded in the image (a Dockerfile FROM it starts with /bin/sh -c again; Format(\"docker\") records it)", op.Pos))
			return img.Shell(op.Args), nil
		}
		img = img.Shell(op.Args)
		s.kind = layers.KindConfig
		s.args = append([]string{"SHELL"}, op.Args...)
	case "HEALTHCHECK":
		if t.pe.format != "docker" {
			t.pe.notes = append(t.pe.notes, fmt.Sprintf("%s: HEALTHCHECK is kept only in Docker-format images; this build writes OCI images (as buildah bud does by default), so it is not recorded (Format(\"docker\"), --format docker, records it)", op.Pos))
			return img, nil
		}
		j, err := json.Marshal(op.Health)
		if err != nil {
			return Image{}, err
		}
		s.kind = layers.KindConfig
		s.args = []string{"HEALTHCHECK", string(j)}
	default:
		err = opConfig(s, op)
	}
	if err != nil {
		return Image{}, err
	}
	out := img.push(s, nil)
	if err := out.Err(); err != nil {
		return Image{}, err
	}
	return out, nil
}

// opConfig fills s from an instruction that changes only the config.
func opConfig(s *stepDef, op dockerfile.Op) error {
	switch op.Instruction {
	case "ENV", "LABEL":
		s.kind = layers.KindEnv
		if op.Instruction == "LABEL" {
			s.kind = layers.KindLabel
		}
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
	case "EXPOSE", "VOLUME", "STOPSIGNAL", "MAINTAINER", "ONBUILD", "ONBUILD-TRIGGERED":
		// ONBUILD triggers are kept in the label runners.OnBuildLabel
		// (OCI configs have no ONBUILD field) and run when the image is
		// a base.
		s.kind = layers.KindConfig
		s.args = append([]string{op.Instruction}, op.Args...)
	default:
		return &dockerfile.Error{Pos: op.Pos, Err: fmt.Errorf("instruction %s: %w", op.Instruction, dockerfile.ErrUnsupported)}
	}
	return nil
}

// opRun fills s from a RUN: its command, the environment from build
// arguments (the proxy ones unkeyed), network, devices and mounts.
func (t *dfTranslator) opRun(s *stepDef, op dockerfile.Op) error {
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
	if op.Network == "none" || (op.Network == "" && t.d.opts.noNetwork) {
		s.noNetwork = true
	}
	for _, d := range op.Devices {
		switch d {
		case "nvidia.com/gpu=all", "nvidia.com/gpu":
			req, err := gpu.ParseRequest("all")
			if err != nil {
				return err
			}
			s.opts.gpu = req
		default:
			return &dockerfile.Error{Pos: op.Pos, Err: fmt.Errorf("RUN --device=%s: only nvidia.com/gpu=all is offered (strata makes the GPUs' CDI spec itself): %w", d, dockerfile.ErrUnsupported)}
		}
	}
	for _, m := range op.Mounts {
		rm, err := t.runMount(op, m)
		if err != nil {
			return err
		}
		s.mounts = append(s.mounts, rm)
	}
	return nil
}

// runMount translates one RUN --mount; a bind mount reads the build
// context (after its ignore rules) or a stage, build context or image.
func (t *dfTranslator) runMount(op dockerfile.Op, m dockerfile.Mount) (runMount, error) {
	rm := runMount{typ: m.Type, target: m.Target, source: m.Source, id: m.ID, sharing: m.Sharing,
		readOnly: m.ReadOnly, required: m.Required, env: m.Env, mode: m.Mode, uid: m.UID, gid: m.GID}
	if m.Type == "ssh" {
		rm.sshSocket = t.d.opts.ssh[m.ID]
	}
	if m.FromStage == nil && m.FromContext == "" && m.FromImage == "" {
		if m.Type == "bind" {
			rm.source = filepathClean(m.Source)
			rm.ctxDir = t.ctxDir
			rm.ignore, rm.ignoreFrom = t.ignore, t.ignoreFrom
		}
		return rm, nil
	}
	if m.Type != "bind" && m.Type != "cache" {
		return rm, &dockerfile.Error{Pos: op.Pos, Err: fmt.Errorf("RUN --mount=type=%s,from=...: only bind and cache mounts can come from a stage or image: %w", m.Type, dockerfile.ErrUnsupported)}
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
		return rm, err
	}
	rm.from = &from
	rm.source = filepathClean(m.Source)
	return rm, nil
}

// opCopy fills s from a COPY or ADD, from the build context or from a
// stage, build context or image.
func (t *dfTranslator) opCopy(s *stepDef, op dockerfile.Op) error {
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
			return err
		}
		cd.from, cd.fromDesc = &from, c.FromStage.Ref()
	case c.FromContext != "":
		from, err := t.pe.expand(t.ctx, t.d.opts.contexts[c.FromContext])
		if err != nil {
			return err
		}
		cd.from, cd.fromDesc = &from, c.FromContext
	case c.FromImage != "":
		from := FromRegistry(c.FromImage)
		if err := from.Err(); err != nil {
			return &dockerfile.Error{Pos: op.Pos, Err: err}
		}
		cd.from, cd.fromDesc = &from, c.FromImage
	default:
		cd.ctxDir = t.ctxDir
		cd.ignore, cd.ignoreFrom = t.ignore, t.ignoreFrom
		cd.contextFiles = t.d.opts.contextFiles
	}
	s.copyDef = cd
	return nil
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
	ctxDir     string
	ignore     []string
	ignoreFrom string // the ignore file's name, for errors
	// bind mounts from another image
	from *Image
	// ssh mounts: the agent's socket (SSH), "" when none was given
	sshSocket string
	// secret mounts of SecretFile: the secret holding the value
	secret *Secret
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
	ignoreFrom   string // the ignore file's name, for errors
	contextFiles map[string]string
	// another image
	from     *Image
	fromDesc string
}
