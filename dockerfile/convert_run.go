package dockerfile

import (
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// run fills op from a RUN instruction: its flags, its mounts, the
// environment it gets from build arguments, and its command.
func (cv *converter) run(c *instructions.RunCommand, op *Op) error {
	p, loc := cv.p, c.Location()
	if err := c.Expand(cv.expander(loc)); err != nil { // parses the --mount flags with substitution
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
	ssh := 0
	for _, m := range instructions.GetMounts(c) {
		mt, err := cv.mount(m, loc, ssh)
		if err != nil {
			return err
		}
		if mt.Type == "ssh" {
			ssh++
		}
		op.Mounts = append(op.Mounts, mt)
	}
	op.Env, op.ProxyEnv = cv.runEnv()
	if !c.PrependShell {
		op.Exec = true
		op.Args = slices.Clone(c.CmdLine)
		if len(op.Args) == 0 {
			return p.errAt(loc, "", "RUN has no command")
		}
		return nil
	}
	op.Shell = slices.Clone(cv.st.shell)
	script := runScript(c)
	if strings.TrimSpace(script) == "" {
		return p.errAt(loc, "", "RUN has no command")
	}
	op.Args = []string{script}
	return nil
}

// mount translates one --mount flag, with BuildKit's defaults: a relative
// target is under the working directory, a cache is shared and named by
// its target, a secret is named by its target's base name and mounted
// under /run/secrets when it names neither a target nor an env, an ssh
// agent is id default at /run/buildkit/ssh_agent.N (the RUN's Nth ssh
// mount, from 0).
func (cv *converter) mount(m *instructions.Mount, loc []parser.Range, sshIndex int) (Mount, error) {
	mt := Mount{Type: string(m.Type), Target: m.Target, Source: m.Source, ReadOnly: m.ReadOnly,
		ID: m.CacheID, Sharing: string(m.CacheSharing), Required: m.Required, Mode: m.Mode, UID: m.UID, GID: m.GID}
	if m.Env != nil {
		mt.Env = *m.Env
	}
	if mt.Target != "" && !path.IsAbs(mt.Target) {
		mt.Target = path.Join(cv.st.workdir, mt.Target)
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
		if mt.ID == "" {
			mt.ID = "default"
		}
		if mt.Target == "" {
			mt.Target = "/run/buildkit/ssh_agent." + strconv.Itoa(sshIndex)
		}
		if m.Mode != nil || m.UID != nil || m.GID != nil {
			// The agent's socket is mounted as it is, not proxied.
			return mt, cv.p.errAt(loc, "type=ssh", "RUN --mount=type=ssh: mode, uid and gid are not offered: %w (strata mounts the agent's own socket, which the step's root user can use)", ErrUnsupported)
		}
	}
	if m.From != "" {
		fc := &Copy{}
		if err := cv.p.copyFrom(m.From, fc, cv.byName, cv.chain, loc); err != nil {
			return mt, err
		}
		mt.FromStage, mt.FromContext, mt.FromImage = fc.FromStage, fc.FromContext, fc.FromImage
	}
	return mt, nil
}

// runEnv returns what a RUN gets from build arguments: the ARGs in scope
// that have a value and no ENV of the same name (ENV wins), sorted by
// name, and the proxy arguments given to the build and not declared.
func (cv *converter) runEnv() (env, proxy []KV) {
	st := cv.st
	var names []string
	for k, v := range st.args {
		if v != nil && (!st.env.has(k) || st.argOver[k]) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		env = append(env, KV{k, *st.args[k]})
	}
	for _, k := range ProxyArgs {
		if v, ok := cv.p.opts.BuildArgs[k]; ok {
			if _, declared := st.args[k]; !declared {
				proxy = append(proxy, KV{k, v})
			}
		}
	}
	return env, proxy
}

// runScript returns the shell script of a shell-form RUN, heredocs
// included.
func runScript(c *instructions.RunCommand) string {
	script := strings.Join(c.CmdLine, " ")
	if len(c.Files) == 0 {
		return script
	}
	if h := parser.MustParseHeredoc(script); h != nil && len(c.Files) == 1 {
		// RUN <<EOF alone: the heredoc is the script (<<-EOF: without
		// its lines' leading tabs, as the shell would strip them).
		data := c.Files[0].Data
		if c.Files[0].Chomp {
			data = parser.ChompHeredocContent(data)
		}
		if strings.HasPrefix(data, "#!") {
			// A script with its own interpreter: write it and run it.
			return "set -e; f=$(mktemp); trap 'rm -f \"$f\"' EXIT; cat > \"$f\" <<'STRATA_HEREDOC_EOF'\n" +
				data + "STRATA_HEREDOC_EOF\nchmod +x \"$f\"; \"$f\""
		}
		return data
	}
	// Heredocs fed to a command: the shell reads them itself.
	for _, f := range c.Files {
		script += "\n" + f.Data + f.Name
	}
	return script
}
