package spec

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/stratabuild/strata/builder"
)

var baseKinds = []string{"from_registry", "debian_slim", "micromamba", "from_dockerfile", "from_archive",
	"from_oci_layout", "from_id", "debian_mirror", "scratch"}

// registryAuth is the secret WithRegistryAuth reads with registry_auth_from_env.
func registryAuth() builder.BaseOption {
	return builder.WithRegistryAuth(builder.SecretFromEnv("REGISTRY_USERNAME", "REGISTRY_PASSWORD"))
}

const registryAuthText = `builder.WithRegistryAuth(builder.SecretFromEnv("REGISTRY_USERNAME", "REGISTRY_PASSWORD"))`

func (p *parser) base(n *yaml.Node) (call, error) {
	p.where = "base"
	m, err := p.fields(n, baseKinds...)
	if err != nil {
		return call{}, err
	}
	if len(m) != 1 {
		d, _ := p.deref(n)
		return call{}, p.errAt(d, "base needs exactly one of %v", baseKinds)
	}
	var kind string
	var v *yaml.Node
	for k, val := range m {
		kind, v = k, val
	}
	p.where = "base (" + kind + ")"
	c := call{where: p.where, line: v.Line}
	d, err := p.deref(v)
	if err != nil {
		return c, err
	}
	scalar := d.Kind == yaml.ScalarNode
	switch kind {
	case "scratch":
		b, err := p.boolean(d, "scratch")
		if err != nil || !b {
			return c, p.errAt(d, "scratch must be true")
		}
		c.text = "builder.Scratch()"
		c.apply = func(builder.Image) builder.Image { return builder.Scratch() }
	case "from_archive", "from_oci_layout", "from_id":
		s, err := p.str(d, kind)
		if err != nil {
			return c, err
		}
		switch kind {
		case "from_archive":
			s = p.path(s)
			c.text = "builder.FromArchive(" + goStr(s) + ")"
			c.apply = func(builder.Image) builder.Image { return builder.FromArchive(s) }
		case "from_oci_layout":
			s = p.path(s)
			c.text = "builder.FromOCILayout(" + goStr(s) + ")"
			c.apply = func(builder.Image) builder.Image { return builder.FromOCILayout(s) }
		default:
			c.text = "builder.FromID(" + goStr(s) + ")"
			c.apply = func(builder.Image) builder.Image { return builder.FromID(s) }
		}
	case "from_registry":
		ref := ""
		var opts []builder.BaseOption
		var texts []string
		if scalar {
			if ref, err = p.str(d, "from_registry"); err != nil {
				return c, err
			}
		} else {
			f, err := p.fields(d, "ref", "add_python", "registry_auth_from_env")
			if err != nil {
				return c, err
			}
			if f["ref"] == nil {
				return c, p.errAt(d, "from_registry needs ref")
			}
			if ref, err = p.str(f["ref"], "ref"); err != nil {
				return c, err
			}
			if f["registry_auth_from_env"] != nil {
				b, err := p.boolean(f["registry_auth_from_env"], "registry_auth_from_env")
				if err != nil {
					return c, err
				}
				if b {
					opts = append(opts, registryAuth())
					texts = append(texts, registryAuthText)
				}
			}
			if f["add_python"] != nil {
				v, err := p.str(f["add_python"], "add_python")
				if err != nil {
					return c, err
				}
				opts = append(opts, builder.AddPython(v))
				texts = append(texts, "builder.AddPython("+goStr(v)+")")
			}
		}
		c.text = withOpts("builder.FromRegistry("+goStr(ref), texts)
		c.apply = func(builder.Image) builder.Image { return builder.FromRegistry(ref, opts...) }
	case "debian_slim", "micromamba":
		version := ""
		var opts []builder.BaseOption
		var texts []string
		if scalar {
			if version, err = p.str(d, kind); err != nil {
				return c, err
			}
		} else {
			allowed := []string{"python", "registry_auth_from_env"}
			if kind == "debian_slim" {
				allowed = append(allowed, "use_debian_mirror")
			}
			f, err := p.fields(d, allowed...)
			if err != nil {
				return c, err
			}
			if f["python"] != nil {
				if version, err = p.str(f["python"], "python"); err != nil {
					return c, err
				}
			}
			if f["registry_auth_from_env"] != nil {
				b, err := p.boolean(f["registry_auth_from_env"], "registry_auth_from_env")
				if err != nil {
					return c, err
				}
				if b {
					opts = append(opts, registryAuth())
					texts = append(texts, registryAuthText)
				}
			}
			if f["use_debian_mirror"] != nil {
				suite, mopts, mtexts, err := p.debianMirror(f["use_debian_mirror"])
				if err != nil {
					return c, err
				}
				opts = append(opts, builder.UseDebianMirror(suite, mopts...))
				texts = append(texts, withOpts("builder.UseDebianMirror("+goStr(suite), mtexts))
			}
		}
		if kind == "debian_slim" {
			c.text = withOpts("builder.DebianSlim("+goStr(version), texts)
			c.apply = func(builder.Image) builder.Image { return builder.DebianSlim(version, opts...) }
		} else {
			c.text = withOpts("builder.Micromamba("+goStr(version), texts)
			c.apply = func(builder.Image) builder.Image { return builder.Micromamba(version, opts...) }
		}
	case "debian_mirror":
		suite, opts, texts, err := p.debianMirror(d)
		if err != nil {
			return c, err
		}
		c.text = withOpts("builder.DebianMirror("+goStr(suite), texts)
		c.apply = func(builder.Image) builder.Image { return builder.DebianMirror(suite, opts...) }
	case "from_dockerfile":
		return p.fromDockerfile(c, d)
	}
	return c, nil
}

// debianMirror reads {suite, mirror, snapshot, include, apt_options}, or a
// suite name alone.
func (p *parser) debianMirror(n *yaml.Node) (string, []builder.BaseOption, []string, error) {
	d, err := p.deref(n)
	if err != nil {
		return "", nil, nil, err
	}
	if d.Kind == yaml.ScalarNode {
		s, err := p.str(d, "suite")
		return s, nil, nil, err
	}
	f, err := p.fields(d, "suite", "mirror", "snapshot", "include", "apt_options")
	if err != nil {
		return "", nil, nil, err
	}
	if f["suite"] == nil {
		return "", nil, nil, p.errAt(d, "suite is required (e.g. bookworm)")
	}
	suite, err := p.str(f["suite"], "suite")
	if err != nil {
		return "", nil, nil, err
	}
	var opts []builder.BaseOption
	var texts []string
	if f["mirror"] != nil {
		m, err := p.str(f["mirror"], "mirror")
		if err != nil {
			return "", nil, nil, err
		}
		opts = append(opts, builder.Mirror(m))
		texts = append(texts, "builder.Mirror("+goStr(m)+")")
	}
	if f["snapshot"] != nil {
		t, err := p.timeOf(f["snapshot"], "snapshot")
		if err != nil {
			return "", nil, nil, err
		}
		opts = append(opts, builder.Snapshot(t))
		texts = append(texts, fmt.Sprintf("builder.Snapshot(time.Date(%d, %d, %d, %d, %d, %d, 0, time.UTC))",
			t.UTC().Year(), t.UTC().Month(), t.UTC().Day(), t.UTC().Hour(), t.UTC().Minute(), t.UTC().Second()))
	}
	if f["include"] != nil {
		l, err := p.strList(f["include"], "include")
		if err != nil {
			return "", nil, nil, err
		}
		opts = append(opts, builder.Include(l...))
		texts = append(texts, "builder.Include("+goArgs(l)+")")
	}
	if f["apt_options"] != nil {
		l, err := p.strList(f["apt_options"], "apt_options")
		if err != nil {
			return "", nil, nil, err
		}
		opts = append(opts, builder.AptOptions(l...))
		texts = append(texts, "builder.AptOptions("+goArgs(l)+")")
	}
	return suite, opts, texts, nil
}

// fromDockerfile reads a path, or {path, context, build_args, target,
// ignore, add_python}.
func (p *parser) fromDockerfile(c call, d *yaml.Node) (call, error) {
	var path string
	var opts []builder.DockerfileOption
	var texts []string
	var err error
	if d.Kind == yaml.ScalarNode {
		if path, err = p.pathOf(d, "from_dockerfile"); err != nil {
			return c, err
		}
	} else {
		f, err := p.fields(d, "path", "context", "build_args", "target", "ignore", "add_python")
		if err != nil {
			return c, err
		}
		path = "Dockerfile"
		if f["path"] != nil {
			if path, err = p.str(f["path"], "path"); err != nil {
				return c, err
			}
		}
		path = p.path(path)
		if f["context"] != nil {
			ctxDir, err := p.pathOf(f["context"], "context")
			if err != nil {
				return c, err
			}
			opts = append(opts, builder.ContextDir(ctxDir))
			texts = append(texts, "builder.ContextDir("+goStr(ctxDir)+")")
		}
		if f["build_args"] != nil {
			m, err := p.strMap(f["build_args"], "build_args")
			if err != nil {
				return c, err
			}
			opts = append(opts, builder.BuildArgs(m))
			texts = append(texts, "builder.BuildArgs("+goMap(m)+")")
		}
		if f["target"] != nil {
			t, err := p.str(f["target"], "target")
			if err != nil {
				return c, err
			}
			opts = append(opts, builder.Target(t))
			texts = append(texts, "builder.Target("+goStr(t)+")")
		}
		if f["ignore"] != nil {
			l, err := p.strList(f["ignore"], "ignore")
			if err != nil {
				return c, err
			}
			opts = append(opts, builder.Ignore(l...))
			texts = append(texts, "builder.Ignore("+goArgs(l)+")")
		}
		if f["add_python"] != nil {
			v, err := p.str(f["add_python"], "add_python")
			if err != nil {
				return c, err
			}
			opts = append(opts, builder.AddPython(v))
			texts = append(texts, "builder.AddPython("+goStr(v)+")")
		}
	}
	c.text = withOpts("builder.FromDockerfile("+goStr(path), texts)
	c.apply = func(builder.Image) builder.Image { return builder.FromDockerfile(path, opts...) }
	return c, nil
}
