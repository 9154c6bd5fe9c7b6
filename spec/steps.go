package spec

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stratabuild/strata/builder"
)

type family int

const (
	famRun family = iota
	famPkg
	famConfig
	famAdd
	famShell
	famDockerfile
)

// methods maps each step key onto the kind of builder method it calls.
var methods = map[string]family{
	"run_commands":                  famRun,
	"apt_install":                   famPkg,
	"pip_install":                   famPkg,
	"pip_install_from_requirements": famPkg,
	"pip_install_from_pyproject":    famPkg,
	"pip_install_private_repos":     famPkg,
	"uv_pip_install":                famPkg,
	"uv_sync":                       famPkg,
	"poetry_install_from_file":      famPkg,
	"micromamba_install":            famPkg,
	"env":                           famConfig,
	"workdir":                       famConfig,
	"entrypoint":                    famConfig,
	"cmd":                           famConfig,
	"shell":                         famShell,
	"add_local_dir":                 famAdd,
	"add_local_file":                famAdd,
	"add_local_python_source":       famAdd,
	"dockerfile_commands":           famDockerfile,
}

var (
	runKeys = []string{"force_build", "env", "gpu", "secrets"}
	pkgKeys = []string{"find_links", "index_url", "extra_index_url", "pre", "extra_options", "requirements",
		"uv_version", "groups", "extras", "frozen", "poetry_with", "poetry_without", "poetry_only",
		"poetry_version", "lockfile", "ignore_lockfile", "old_installer", "channels", "spec_file",
		"optional_dependencies"}
	dockerfileKeys = []string{"context_dir", "build_args", "context_files", "ignore"}
)

// methodNames returns the step keys, sorted.
func methodNames() []string {
	out := make([]string, 0, len(methods))
	for k := range methods {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// stepOpts are the options any run-like step takes.
type stepOpts struct {
	force   bool
	env     map[string]string
	gpu     []string
	secrets []string
}

func (o stepOpts) run() ([]builder.RunOption, []string) {
	var opts []builder.RunOption
	var texts []string
	if o.force {
		opts = append(opts, builder.ForceBuild())
		texts = append(texts, "builder.ForceBuild()")
	}
	if o.env != nil {
		opts = append(opts, builder.WithEnv(o.env))
		texts = append(texts, "builder.WithEnv("+goMap(o.env)+")")
	}
	if o.gpu != nil {
		opts = append(opts, builder.GPU(o.gpu...))
		texts = append(texts, "builder.GPU("+goArgs(o.gpu)+")")
	}
	if o.secrets != nil {
		opts = append(opts, builder.WithSecrets(builder.SecretFromEnv(o.secrets...)))
		texts = append(texts, "builder.WithSecrets(builder.SecretFromEnv("+goArgs(o.secrets)+"))")
	}
	return opts, texts
}

func (o stepOpts) step() ([]builder.StepOption, []string) {
	if o.force {
		return []builder.StepOption{builder.ForceBuild()}, []string{"builder.ForceBuild()"}
	}
	return nil, nil
}

func (p *parser) step(i int, n *yaml.Node) (call, error) {
	p.where = fmt.Sprintf("step %d", i)
	d, err := p.deref(n)
	if err != nil {
		return call{}, err
	}
	if d.Kind != yaml.MappingNode {
		return call{}, p.errAt(d, "a step must be a mapping with one of the keys %s", strings.Join(methodNames(), ", "))
	}
	var found []string
	hasEnv := false
	for j := 0; j+1 < len(d.Content); j += 2 {
		k, err := p.deref(d.Content[j])
		if err != nil {
			return call{}, err
		}
		if _, ok := methods[k.Value]; ok && k.Kind == yaml.ScalarNode {
			if k.Value == "env" {
				hasEnv = true
				continue
			}
			found = append(found, k.Value)
		}
	}
	if len(found) == 0 && hasEnv {
		found = []string{"env"}
	}
	switch len(found) {
	case 0:
		return call{}, p.errAt(d, "no step method: give one of %s", strings.Join(methodNames(), ", "))
	case 1:
	default:
		return call{}, p.errAt(d, "one method per step, found %s", strings.Join(found, " and "))
	}
	method := found[0]
	fam := methods[method]
	p.where = fmt.Sprintf("step %d (%s)", i, method)
	allowed := []string{method}
	switch fam {
	case famRun:
		allowed = append(allowed, runKeys...)
	case famPkg:
		allowed = append(append(allowed, runKeys...), pkgKeys...)
	case famDockerfile:
		// No env: a Dockerfile sets its variables with ENV and ARG
		// (build_args).
		allowed = append(append(allowed, "force_build", "gpu", "secrets"), dockerfileKeys...)
	case famConfig, famAdd:
		allowed = append(allowed, "force_build")
	}
	f, err := p.fields(d, allowed...)
	if err != nil {
		return call{}, err
	}
	var o stepOpts
	if f["force_build"] != nil {
		if o.force, err = p.boolean(f["force_build"], "force_build"); err != nil {
			return call{}, err
		}
	}
	if fam != famConfig {
		if f["env"] != nil {
			if o.env, err = p.strMap(f["env"], "env"); err != nil {
				return call{}, err
			}
		}
	}
	if f["gpu"] != nil {
		if o.gpu, err = p.strOrList(f["gpu"], "gpu"); err != nil {
			return call{}, err
		}
	}
	if f["secrets"] != nil {
		if o.secrets, err = p.strList(f["secrets"], "secrets"); err != nil {
			return call{}, err
		}
	}
	v := f[method]
	c := call{where: p.where, line: v.Line}
	switch fam {
	case famRun:
		cmds, err := p.strList(v, method)
		if err != nil {
			return c, err
		}
		opts, texts := o.run()
		c.text = withOpts("RunCommands("+goList(cmds), texts)
		c.apply = func(img builder.Image) builder.Image { return img.RunCommands(cmds, opts...) }
	case famPkg:
		return p.pkgStep(c, method, v, f, o)
	case famConfig:
		opts, texts := o.step()
		switch method {
		case "env":
			m, err := p.strMap(v, "env")
			if err != nil {
				return c, err
			}
			c.text = withOpts("Env("+goMap(m), texts)
			c.apply = func(img builder.Image) builder.Image { return img.Env(m, opts...) }
		case "workdir":
			s, err := p.str(v, "workdir")
			if err != nil {
				return c, err
			}
			c.text = withOpts("Workdir("+goStr(s), texts)
			c.apply = func(img builder.Image) builder.Image { return img.Workdir(s, opts...) }
		case "entrypoint", "cmd":
			l, err := p.strList(v, method)
			if err != nil {
				return c, err
			}
			if method == "cmd" {
				c.text = withOpts("Cmd("+goList(l), texts)
				c.apply = func(img builder.Image) builder.Image { return img.Cmd(l, opts...) }
			} else {
				c.text = withOpts("Entrypoint("+goList(l), texts)
				c.apply = func(img builder.Image) builder.Image { return img.Entrypoint(l, opts...) }
			}
		}
	case famShell:
		l, err := p.strList(v, "shell")
		if err != nil {
			return c, err
		}
		c.text = "Shell(" + goList(l) + ")"
		c.apply = func(img builder.Image) builder.Image { return img.Shell(l) }
	case famAdd:
		return p.addStep(c, method, v, o)
	case famDockerfile:
		return p.dockerfileStep(c, v, f, o)
	}
	return c, nil
}

func (p *parser) pkgStep(c call, method string, v *yaml.Node, f map[string]*yaml.Node, o stepOpts) (call, error) {
	ropts, texts := o.run()
	var opts []builder.PackageOption
	for _, r := range ropts {
		opts = append(opts, r)
	}
	add := func(opt builder.PackageOption, text string) {
		opts = append(opts, opt)
		texts = append(texts, text)
	}
	for _, k := range pkgKeys {
		n := f[k]
		if n == nil {
			continue
		}
		switch k {
		case "find_links", "index_url", "extra_index_url", "uv_version", "poetry_version":
			s, err := p.str(n, k)
			if err != nil {
				return c, err
			}
			switch k {
			case "find_links":
				add(builder.FindLinks(s), "builder.FindLinks("+goStr(s)+")")
			case "index_url":
				add(builder.IndexURL(s), "builder.IndexURL("+goStr(s)+")")
			case "extra_index_url":
				add(builder.ExtraIndexURL(s), "builder.ExtraIndexURL("+goStr(s)+")")
			case "uv_version":
				add(builder.UvVersion(s), "builder.UvVersion("+goStr(s)+")")
			case "poetry_version":
				add(builder.PoetryVersion(s), "builder.PoetryVersion("+goStr(s)+")")
			}
		case "lockfile", "spec_file":
			s, err := p.pathOf(n, k)
			if err != nil {
				return c, err
			}
			if k == "lockfile" {
				add(builder.Lockfile(s), "builder.Lockfile("+goStr(s)+")")
			} else {
				add(builder.SpecFile(s), "builder.SpecFile("+goStr(s)+")")
			}
		case "pre", "ignore_lockfile", "old_installer", "frozen":
			b, err := p.boolean(n, k)
			if err != nil {
				return c, err
			}
			switch {
			case k == "frozen":
				add(builder.Frozen(b), fmt.Sprintf("builder.Frozen(%t)", b))
			case !b:
				// false is the default
			case k == "pre":
				add(builder.Pre(), "builder.Pre()")
			case k == "ignore_lockfile":
				add(builder.IgnoreLockfile(), "builder.IgnoreLockfile()")
			case k == "old_installer":
				add(builder.OldInstaller(), "builder.OldInstaller()")
			}
		case "requirements":
			l, err := p.paths(n, k)
			if err != nil {
				return c, err
			}
			add(builder.Requirements(l...), "builder.Requirements("+goArgs(l)+")")
		default:
			l, err := p.strList(n, k)
			if err != nil {
				return c, err
			}
			switch k {
			case "extra_options":
				add(builder.ExtraOptions(l...), "builder.ExtraOptions("+goArgs(l)+")")
			case "groups":
				add(builder.Groups(l...), "builder.Groups("+goArgs(l)+")")
			case "extras":
				add(builder.Extras(l...), "builder.Extras("+goArgs(l)+")")
			case "poetry_with":
				add(builder.PoetryWith(l...), "builder.PoetryWith("+goArgs(l)+")")
			case "poetry_without":
				add(builder.PoetryWithout(l...), "builder.PoetryWithout("+goArgs(l)+")")
			case "poetry_only":
				add(builder.PoetryOnly(l...), "builder.PoetryOnly("+goArgs(l)+")")
			case "channels":
				add(builder.Channels(l...), "builder.Channels("+goArgs(l)+")")
			case "optional_dependencies":
				add(builder.OptionalDependencies(l...), "builder.OptionalDependencies("+goArgs(l)+")")
			}
		}
	}
	switch method {
	case "apt_install", "pip_install", "uv_pip_install", "micromamba_install":
		l, err := p.strList(v, method)
		if err != nil {
			return c, err
		}
		var fn func(builder.Image, []string, ...builder.PackageOption) builder.Image
		var name string
		switch method {
		case "apt_install":
			fn, name = builder.Image.AptInstall, "AptInstall"
		case "pip_install":
			fn, name = builder.Image.PipInstall, "PipInstall"
		case "uv_pip_install":
			fn, name = builder.Image.UvPipInstall, "UvPipInstall"
		default:
			fn, name = builder.Image.MicromambaInstall, "MicromambaInstall"
		}
		c.text = withOpts(name+"("+goList(l), texts)
		c.apply = func(img builder.Image) builder.Image { return fn(img, l, opts...) }
	case "pip_install_from_requirements", "pip_install_from_pyproject", "poetry_install_from_file", "uv_sync":
		s, err := p.pathOf(v, method)
		if err != nil {
			return c, err
		}
		var fn func(builder.Image, string, ...builder.PackageOption) builder.Image
		var name string
		switch method {
		case "pip_install_from_requirements":
			fn, name = builder.Image.PipInstallFromRequirements, "PipInstallFromRequirements"
		case "pip_install_from_pyproject":
			fn, name = builder.Image.PipInstallFromPyproject, "PipInstallFromPyproject"
		case "poetry_install_from_file":
			fn, name = builder.Image.PoetryInstallFromFile, "PoetryInstallFromFile"
		default:
			fn, name = builder.Image.UvSync, "UvSync"
		}
		c.text = withOpts(name+"("+goStr(s), texts)
		c.apply = func(img builder.Image) builder.Image { return fn(img, s, opts...) }
	case "pip_install_private_repos":
		rf, err := p.fields(v, "repos", "git_user")
		if err != nil {
			return c, err
		}
		if rf["repos"] == nil || rf["git_user"] == nil {
			return c, p.errAt(v, "pip_install_private_repos needs repos and git_user")
		}
		repos, err := p.strList(rf["repos"], "repos")
		if err != nil {
			return c, err
		}
		user, err := p.str(rf["git_user"], "git_user")
		if err != nil {
			return c, err
		}
		c.text = withOpts("PipInstallPrivateRepos("+goList(repos)+", "+goStr(user), texts)
		c.apply = func(img builder.Image) builder.Image { return img.PipInstallPrivateRepos(repos, user, opts...) }
	}
	return c, nil
}

func (p *parser) addStep(c call, method string, v *yaml.Node, o stepOpts) (call, error) {
	var opts []builder.AddOption
	var texts []string
	if o.force {
		opts = append(opts, builder.ForceBuild())
		texts = append(texts, "builder.ForceBuild()")
	}
	readCopyIgnore := func(f map[string]*yaml.Node) error {
		if f["copy"] != nil {
			b, err := p.boolean(f["copy"], "copy")
			if err != nil {
				return err
			}
			if b {
				opts = append(opts, builder.Copy())
				texts = append(texts, "builder.Copy()")
			}
		}
		if f["ignore"] != nil {
			l, err := p.strList(f["ignore"], "ignore")
			if err != nil {
				return err
			}
			opts = append(opts, builder.Ignore(l...))
			texts = append(texts, "builder.Ignore("+goArgs(l)+")")
		}
		return nil
	}
	if method == "add_local_python_source" {
		var modules []string
		d, err := p.deref(v)
		if err != nil {
			return c, err
		}
		if d.Kind == yaml.SequenceNode {
			if modules, err = p.strList(d, "modules"); err != nil {
				return c, err
			}
		} else {
			f, err := p.fields(d, "modules", "python_path", "copy", "ignore")
			if err != nil {
				return c, err
			}
			if f["modules"] == nil {
				return c, p.errAt(d, "add_local_python_source needs modules")
			}
			if modules, err = p.strList(f["modules"], "modules"); err != nil {
				return c, err
			}
			if err := readCopyIgnore(f); err != nil {
				return c, err
			}
			if f["python_path"] != nil {
				l, err := p.paths(f["python_path"], "python_path")
				if err != nil {
					return c, err
				}
				opts = append(opts, builder.PythonPath(l...))
				texts = append(texts, "builder.PythonPath("+goArgs(l)+")")
			}
		}
		c.text = withOpts("AddLocalPythonSource("+goList(modules), texts)
		c.apply = func(img builder.Image) builder.Image { return img.AddLocalPythonSource(modules, opts...) }
		return c, nil
	}
	keys := []string{"local", "remote", "copy"}
	if method == "add_local_dir" {
		keys = append(keys, "ignore")
	}
	f, err := p.fields(v, keys...)
	if err != nil {
		return c, err
	}
	if f["local"] == nil || f["remote"] == nil {
		return c, p.errAt(v, "%s needs local and remote", method)
	}
	local, err := p.pathOf(f["local"], "local")
	if err != nil {
		return c, err
	}
	remote, err := p.str(f["remote"], "remote")
	if err != nil {
		return c, err
	}
	if err := readCopyIgnore(f); err != nil {
		return c, err
	}
	if method == "add_local_dir" {
		c.text = withOpts("AddLocalDir("+goStr(local)+", "+goStr(remote), texts)
		c.apply = func(img builder.Image) builder.Image { return img.AddLocalDir(local, remote, opts...) }
	} else {
		c.text = withOpts("AddLocalFile("+goStr(local)+", "+goStr(remote), texts)
		c.apply = func(img builder.Image) builder.Image { return img.AddLocalFile(local, remote, opts...) }
	}
	return c, nil
}

func (p *parser) dockerfileStep(c call, v *yaml.Node, f map[string]*yaml.Node, o stepOpts) (call, error) {
	cmds, err := p.strList(v, "dockerfile_commands")
	if err != nil {
		return c, err
	}
	ropts, texts := o.run()
	var opts []builder.DockerfileOption
	for _, r := range ropts {
		opts = append(opts, r)
	}
	if f["context_dir"] != nil {
		s, err := p.pathOf(f["context_dir"], "context_dir")
		if err != nil {
			return c, err
		}
		opts = append(opts, builder.ContextDir(s))
		texts = append(texts, "builder.ContextDir("+goStr(s)+")")
	}
	if f["build_args"] != nil {
		m, err := p.strMap(f["build_args"], "build_args")
		if err != nil {
			return c, err
		}
		opts = append(opts, builder.BuildArgs(m))
		texts = append(texts, "builder.BuildArgs("+goMap(m)+")")
	}
	if f["context_files"] != nil {
		m, err := p.strMap(f["context_files"], "context_files")
		if err != nil {
			return c, err
		}
		for k := range m {
			m[k] = p.path(m[k])
		}
		opts = append(opts, builder.ContextFiles(m))
		texts = append(texts, "builder.ContextFiles("+goMap(m)+")")
	}
	if f["ignore"] != nil {
		l, err := p.strList(f["ignore"], "ignore")
		if err != nil {
			return c, err
		}
		opts = append(opts, builder.Ignore(l...))
		texts = append(texts, "builder.Ignore("+goArgs(l)+")")
	}
	c.text = withOpts("DockerfileCommands("+goList(cmds), texts)
	c.apply = func(img builder.Image) builder.Image { return img.DockerfileCommands(cmds, opts...) }
	return c, nil
}
