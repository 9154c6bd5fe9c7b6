package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/mount"
	"github.com/stratabuild/strata/runners"
)

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
			dir, err := pe.cacheMountDir(m)
			if err != nil {
				return err
			}
			ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Src: dir, Dest: m.target, Writable: !m.readOnly})
			if ps.cacheDirs == nil {
				ps.cacheDirs = map[string]string{}
			}
			ps.cacheDirs[m.id] = dir
			if m.sharing == "locked" || m.sharing == "private" {
				ps.run.Locks = append(ps.run.Locks, dir+".lock")
			}
		case "tmpfs":
			ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Tmpfs: true, Dest: m.target})
		case "bind":
			if m.from != nil {
				sub, err := pe.plan(context.Background(), *m.from)
				if err != nil {
					return fmt.Errorf("RUN --mount=type=bind,from=...: %w", err)
				}
				desc += ",source=" + m.source
				spec.Inputs = append(spec.Inputs, layers.Input{Name: "bind-from:" + m.target, Digest: string(sub.Steps[len(sub.Steps)-1].Key)})
				if ps.mountDep == nil {
					ps.mountDep = map[int]int{}
				}
				ps.mountDep[len(ps.run.Mounts)] = len(ps.deps)
				ps.deps = append(ps.deps, sub)
				ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Src: m.source, Dest: m.target, Writable: !m.readOnly})
				break
			}
			if !m.readOnly {
				return errors.New("RUN --mount=type=bind,rw: writable bind mounts are not offered (writes would reach the build context); copy the files instead")
			}
			src, err := contextPath(m.ctxDir, m.source, m.ignore, false)
			if err != nil {
				return fmt.Errorf("RUN --mount=type=bind,source=%s: %w", m.source, err)
			}
			tree, err := mount.WalkIn(m.ctxDir, relOrDot(m.source), m.ignore)
			if err != nil {
				return err
			}
			desc += ",source=" + m.source
			spec.Inputs = append(spec.Inputs, layers.Input{Name: "bind:" + m.target, Digest: tree.Digest})
			ps.trees = append(ps.trees, treeOf("bind:"+m.target, tree))
			ps.run.Mounts = append(ps.run.Mounts, runners.Mount{Src: src, Dest: m.target})
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

func relOrDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// cacheMountDir returns the persistent directory of a cache mount, made on
// first use: one per user (under the cache directory) per id.
func (pe *planEnv) cacheMountDir(m runMount) (string, error) {
	sum := sha256.Sum256([]byte(m.id))
	dir := filepath.Join(pe.mountRoot, "cache-mounts", hex.EncodeToString(sum[:16]))
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", fmt.Errorf("cache mount %s: %w", m.id, err)
	}
	if err := os.Mkdir(dir, 0o755); err == nil {
		if m.mode != nil {
			_ = os.Chmod(dir, os.FileMode(*m.mode))
		}
		if m.uid != nil || m.gid != nil {
			uid, gid := -1, -1
			if m.uid != nil {
				uid = int(*m.uid)
			}
			if m.gid != nil {
				gid = int(*m.gid)
			}
			if err := os.Lchown(dir, uid, gid); err != nil {
				return "", fmt.Errorf("cache mount %s: setting its owner: %w", m.id, err)
			}
		}
	} else if !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("cache mount %s: %w", m.id, err)
	}
	return dir, nil
}

// contextPath checks that rel names something inside the context that the
// ignore patterns keep (unless glob), and returns its host path.
func contextPath(ctxDir, rel string, ignore []string, allowMissing bool) (string, error) {
	rel = relOrDot(rel)
	p := filepath.Join(ctxDir, filepath.FromSlash(rel))
	realCtx, err := filepath.EvalSymlinks(ctxDir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if allowMissing {
				return p, nil
			}
			return "", fmt.Errorf("%s: no such file or directory in the build context %s", rel, ctxDir)
		}
		return "", err
	}
	if real != realCtx && !strings.HasPrefix(real, realCtx+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is a symlink that leads outside the build context (to %s); copy the target into the context instead", rel, real)
	}
	if rel != "." {
		m, err := mount.NewMatcher(ignore)
		if err != nil {
			return "", err
		}
		if ign, _ := m.Ignored(rel); ign {
			return "", fmt.Errorf("%s is excluded by the ignore patterns (.dockerignore)", rel)
		}
	}
	return p, nil
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// lowerCopy lowers a Dockerfile COPY or ADD.
func (pe *planEnv) lowerCopy(ctx context.Context, s *stepDef, spec *layers.Spec, ps *PlannedStep) error {
	c := s.copyDef
	spec.Args = append([]string{c.dest}, c.sources...)
	opts := map[string]string{}
	if c.chown != "" {
		opts["chown"] = c.chown
	}
	if c.chmod != "" {
		opts["chmod"] = c.chmod
	}
	if c.add {
		opts["add"] = "true"
	}
	if c.extract {
		opts["extract"] = "true"
	}
	if c.parents {
		opts["parents"] = "true"
	}
	if c.checksum != "" {
		opts["checksum"] = c.checksum
	}
	excludes := mount.NormalizePatterns(c.excludes)
	if len(excludes) > 0 {
		opts["exclude"] = strings.Join(excludes, "\n")
	}
	spec.Options = opts
	base := runners.Copy{Dest: c.dest, Chown: c.chown, Chmod: c.chmod, Parents: c.parents}
	if c.from != nil {
		sub, err := pe.plan(ctx, *c.from)
		if err != nil {
			return fmt.Errorf("copying from %s: %w", c.fromDesc, err)
		}
		spec.Inputs = []layers.Input{{Name: "from", Digest: string(sub.Steps[len(sub.Steps)-1].Key)}}
		cp := base
		cp.ContextDir = "/"
		cp.Sources = c.sources
		cp.Excludes = excludes
		ps.run.Copies = []runners.Copy{cp}
		ps.deps = []*Plan{sub}
		ps.fromDep = map[int]int{0: 0}
		return nil
	}
	ignore := c.ignore
	var local []string
	for _, src := range c.sources {
		if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
			file, digest, err := pe.download(ctx, src, c.checksum)
			if err != nil {
				return err
			}
			spec.Inputs = append(spec.Inputs, layers.Input{Name: "url:" + src, Digest: digest})
			cp := base
			cp.ContextDir, cp.Sources = filepath.Dir(file), []string{filepath.Base(file)}
			ps.run.Copies = append(ps.run.Copies, cp)
			continue
		}
		if lf, ok := c.contextFiles[src]; ok {
			d, err := mount.FileDigest(lf)
			if err != nil {
				return fmt.Errorf("context file %s: %w", src, err)
			}
			abs, err := filepath.Abs(lf)
			if err != nil {
				return err
			}
			spec.Inputs = append(spec.Inputs, layers.Input{Name: "src:" + src, Digest: d})
			cp := base
			cp.ContextDir, cp.Sources = filepath.Dir(abs), []string{filepath.Base(abs)}
			ps.run.Copies = append(ps.run.Copies, cp)
			continue
		}
		matches := []string{src}
		if isGlob(src) {
			found, err := filepath.Glob(filepath.Join(c.ctxDir, filepath.FromSlash(src)))
			if err != nil {
				return fmt.Errorf("source %q: %w", src, err)
			}
			m, err := mount.NewMatcher(ignore)
			if err != nil {
				return err
			}
			matches = nil
			for _, f := range found {
				rel, err := filepath.Rel(c.ctxDir, f)
				if err != nil {
					return err
				}
				rel = filepath.ToSlash(rel)
				if ign, _ := m.Ignored(rel); !ign {
					matches = append(matches, rel)
				}
			}
			if len(matches) == 0 {
				return fmt.Errorf("no file in the build context %s matches %q (after the ignore patterns)", c.ctxDir, src)
			}
		}
		for _, rel := range matches {
			if _, err := contextPath(c.ctxDir, rel, ignore, false); err != nil {
				return err
			}
			tree, err := mount.WalkIn(c.ctxDir, relOrDot(rel), append(slices.Clone(ignore), excludes...))
			if err != nil {
				return err
			}
			spec.Inputs = append(spec.Inputs, layers.Input{Name: "src:" + rel, Digest: tree.Digest})
			ps.trees = append(ps.trees, treeOf("src:"+rel, tree))
		}
		local = append(local, src)
	}
	if len(local) > 0 {
		cp := base
		cp.ContextDir = c.ctxDir
		cp.Sources = local
		cp.Excludes = append(slices.Clone(ignore), excludes...)
		cp.Extract = c.extract
		ps.run.Copies = append(ps.run.Copies, cp)
	}
	for _, in := range c.inline {
		sum := sha256.Sum256([]byte(in.Data))
		h := hex.EncodeToString(sum[:])
		dir := filepath.Join(pe.mountRoot, "inline", h)
		name := path.Base(path.Clean("/" + in.Name))
		file := filepath.Join(dir, name)
		if _, err := os.Stat(file); err != nil {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			tmp := file + ".tmp" + strconv.Itoa(os.Getpid())
			if err := os.WriteFile(tmp, []byte(in.Data), 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, file); err != nil {
				return err
			}
		}
		spec.Inputs = append(spec.Inputs, layers.Input{Name: "inline:" + name, Digest: "sha256:" + h})
		cp := base
		cp.ContextDir, cp.Sources = dir, []string{name}
		ps.run.Copies = append(ps.run.Copies, cp)
	}
	return nil
}

// download fetches an ADD URL into the cache directory and returns the
// file and its digest, checked against want when given.
func (pe *planEnv) download(ctx context.Context, src, want string) (string, string, error) {
	u, err := url.Parse(src)
	if err != nil {
		return "", "", fmt.Errorf("ADD %s: %w", src, err)
	}
	name := path.Base(u.Path)
	if name == "" || name == "/" || name == "." {
		name = "download"
	}
	sum := sha256.Sum256([]byte(src))
	dir := filepath.Join(pe.mountRoot, "downloads", hex.EncodeToString(sum[:16]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, src, nil)
	if err != nil {
		return "", "", fmt.Errorf("ADD %s: %w", src, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("ADD %s: cannot download it (%v); check the URL and the network, or COPY a local copy", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("ADD %s: the server answered %s", src, resp.Status)
	}
	f, err := os.CreateTemp(dir, ".part-*")
	if err != nil {
		return "", "", err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		f.Close()
		return "", "", fmt.Errorf("ADD %s: downloading: %w", src, err)
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if want != "" && want != digest {
		return "", "", fmt.Errorf("ADD --checksum=%s %s: the download's digest is %s", want, src, digest)
	}
	file := filepath.Join(dir, name)
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return "", "", err
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return "", "", err
	}
	return file, digest, nil
}

// secretMounts writes the files of a step's RUN --mount=type=secret
// mounts into a private temporary directory and mounts them; the returned
// func removes them. Values come from the step's secrets, by key.
func secretMounts(st PlannedStep, rs *runners.Step) (func(), error) {
	if len(st.secretMounts) == 0 {
		return func() {}, nil
	}
	var dir string
	cleanup := func() {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	rs.Mounts = slices.Clone(rs.Mounts)
	for _, m := range st.secretMounts {
		val, found := "", false
		for _, sec := range st.secrets {
			if v, ok := sec.env[m.id]; ok {
				val, found = v, true
			}
		}
		if !found {
			if m.required {
				cleanup()
				return nil, fmt.Errorf("%s: secret %q is required but not given: pass a secret holding the key %s with WithSecrets", st.Name(), m.id, m.id)
			}
			continue
		}
		if m.env != "" {
			rs.RunEnv = append(rs.RunEnv, m.env+"="+val)
		}
		if m.target == "" {
			continue
		}
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", fmt.Sprintf("strata-secret-%d-", os.Getpid())); err != nil {
				return nil, fmt.Errorf("%s: secret mount: %w", st.Name(), err)
			}
		}
		mode := os.FileMode(0o400)
		if m.mode != nil {
			mode = os.FileMode(*m.mode)
		}
		f := filepath.Join(dir, strconv.Itoa(len(rs.Mounts)))
		if err := os.WriteFile(f, []byte(val), mode|0o200); err != nil {
			cleanup()
			return nil, fmt.Errorf("%s: secret mount: %w", st.Name(), err)
		}
		_ = os.Chmod(f, mode)
		if m.uid != nil || m.gid != nil {
			uid, gid := -1, -1
			if m.uid != nil {
				uid = int(*m.uid)
			}
			if m.gid != nil {
				gid = int(*m.gid)
			}
			_ = os.Lchown(f, uid, gid)
		}
		rs.Mounts = append(rs.Mounts, runners.Mount{Src: f, Dest: m.target})
	}
	return cleanup, nil
}
