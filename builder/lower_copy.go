package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/mount"
	"github.com/stratabuild/strata/runners"
)

func relOrDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// contextPath checks that rel names something inside the context that the
// ignore patterns (read from ignoreFrom) keep, and returns its host path.
func contextPath(ctxDir, rel string, ignore []string, ignoreFrom string, allowMissing bool) (string, error) {
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
			if ignoreFrom == "" {
				ignoreFrom = "the ignore patterns"
			}
			return "", fmt.Errorf("%s is excluded by %s", rel, ignoreFrom)
		}
	}
	return p, nil
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// lowerCopy lowers a Dockerfile COPY or ADD.
func (pe *planEnv) lowerCopy(ctx context.Context, s *stepDef, spec *layers.Spec, ps *PlannedStep) error {
	c := s.copyDef
	excludes := mount.NormalizePatterns(c.excludes)
	spec.Args = append([]string{c.dest}, c.sources...)
	spec.Options = copyKeyOptions(c, excludes)
	base := runners.Copy{Dest: c.dest, Chown: c.chown, Chmod: c.chmod, Parents: c.parents}
	if c.from != nil {
		// Heredoc sources (below) are not read from the other image; with
		// no other source, the step does not depend on it.
		if len(c.sources) > 0 {
			sub, err := pe.plan(ctx, *c.from)
			if err != nil {
				return fmt.Errorf("copying from %s: %w", c.fromDesc, err)
			}
			spec.Inputs = []layers.Input{{Name: "from", Digest: string(sub.Steps[len(sub.Steps)-1].Key)}}
			cp := base
			cp.ContextDir = "/"
			cp.Sources = c.sources
			for _, src := range c.sources {
				cp.Excludes = append(cp.Excludes, under(src, excludes)...)
			}
			ps.run.Copies = []runners.Copy{cp}
			ps.deps = []*Plan{sub}
			ps.fromDep = map[int]int{0: 0}
		}
		pe.lowerInlines(c, base, spec, ps)
		return nil
	}
	var local, localExcludes []string
	for _, src := range c.sources {
		lf, isContextFile := c.contextFiles[src]
		switch {
		case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
			f, err := pe.lowerURL(ctx, src, c.checksum)
			if err != nil {
				return err
			}
			spec.Inputs = append(spec.Inputs, layers.Input{Name: "url:" + src, Digest: string(f.digest)})
			ps.downloads = append(ps.downloads, f)
			cp := base
			cp.ContextDir, cp.Sources = f.dir, []string{f.name}
			ps.run.Copies = append(ps.run.Copies, cp)
		case isContextFile:
			cp, in, err := contextFileCopy(base, src, lf)
			if err != nil {
				return err
			}
			spec.Inputs = append(spec.Inputs, in)
			ps.run.Copies = append(ps.run.Copies, cp)
		default:
			matches, err := pe.lowerContextSource(c, src, excludes, spec, ps)
			if err != nil {
				return err
			}
			local = append(local, src)
			for _, m := range matches {
				localExcludes = append(localExcludes, under(m, excludes)...)
			}
		}
	}
	if len(local) > 0 {
		cp := base
		cp.ContextDir = c.ctxDir
		cp.Sources = local
		cp.Excludes = append(slices.Clone(c.ignore), localExcludes...)
		cp.Extract = c.extract
		ps.run.Copies = append(ps.run.Copies, cp)
	}
	pe.lowerInlines(c, base, spec, ps)
	return nil
}

// lowerInlines adds the copies of c's heredoc sources (COPY <<EOF).
func (pe *planEnv) lowerInlines(c *copyDef, base runners.Copy, spec *layers.Spec, ps *PlannedStep) {
	for _, in := range c.inline {
		cp, input := pe.inlineCopy(base, in, ps)
		spec.Inputs = append(spec.Inputs, input)
		ps.run.Copies = append(ps.run.Copies, cp)
	}
}

// copyKeyOptions are the options of a COPY or ADD that its key covers.
func copyKeyOptions(c *copyDef, excludes []string) map[string]string {
	opts := map[string]string{}
	if c.chown != "" {
		opts["chown"] = c.chown
	}
	if c.chmod != "" {
		opts["chmod"] = c.chmod
		// Since the directories the copy creates get the mode too
		// (runners.chmodParents): entries made before were 0755.
		opts["chmod-dirs"] = "created"
	}
	if c.add {
		opts["add"] = "true"
	}
	if c.extract {
		opts["extract"] = "true"
		if c.chown != "" {
			// Since the extracted files get the owner too (as in
			// BuildKit): entries made before kept the archive's.
			opts["chown-archives"] = "contents"
		}
	}
	if c.parents {
		opts["parents"] = "true"
	}
	if c.checksum != "" {
		opts["checksum"] = c.checksum
	}
	if len(excludes) > 0 {
		opts["exclude"] = strings.Join(excludes, "\n")
		// Since the patterns match inside each source, as in BuildKit
		// (under): entries made before matched from the context root.
		opts["exclude-in"] = "source"
	}
	return opts
}

// contextFileCopy copies the host file lf that ContextFiles names src,
// keyed by its content.
func contextFileCopy(base runners.Copy, src, lf string) (runners.Copy, layers.Input, error) {
	d, err := mount.FileDigest(lf)
	if err != nil {
		return base, layers.Input{}, fmt.Errorf("context file %s: %w", src, err)
	}
	abs, err := filepath.Abs(lf)
	if err != nil {
		return base, layers.Input{}, err
	}
	cp := base
	cp.ContextDir, cp.Sources = filepath.Dir(abs), []string{filepath.Base(abs)}
	return cp, layers.Input{Name: "src:" + src, Digest: d}, nil
}

// lowerContextSource keys the build-context files that source src (a
// path or a glob) names, after the ignore rules and the copy's excludes,
// and returns the paths it names (the glob's matches).
func (pe *planEnv) lowerContextSource(c *copyDef, src string, excludes []string, spec *layers.Spec, ps *PlannedStep) ([]string, error) {
	matches := []string{src}
	if isGlob(src) {
		found, err := filepath.Glob(filepath.Join(c.ctxDir, filepath.FromSlash(src)))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", src, err)
		}
		m, err := mount.NewMatcher(c.ignore)
		if err != nil {
			return nil, err
		}
		matches = nil
		for _, f := range found {
			rel, err := filepath.Rel(c.ctxDir, f)
			if err != nil {
				return nil, err
			}
			rel = filepath.ToSlash(rel)
			if ign, _ := m.Ignored(rel); !ign {
				matches = append(matches, rel)
			}
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("no file in the build context %s matches %q (after the ignore patterns)", c.ctxDir, src)
		}
	}
	for _, rel := range matches {
		if _, err := contextPath(c.ctxDir, rel, c.ignore, c.ignoreFrom, false); err != nil {
			return nil, err
		}
		tree, err := mount.WalkIn(c.ctxDir, relOrDot(rel), append(slices.Clone(c.ignore), under(rel, excludes)...), mount.WithDigestCache(pe.digests))
		if err != nil {
			return nil, err
		}
		spec.Inputs = append(spec.Inputs, layers.Input{Name: "src:" + rel, Digest: tree.Digest})
		ps.trees = append(ps.trees, treeOf("src:"+rel, tree))
	}
	return matches, nil
}

// under roots COPY --exclude patterns at the source src: as in BuildKit,
// they match paths inside each source (*.conf: the conf files at the top
// of the copied directory), not paths in the context.
func under(src string, patterns []string) []string {
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		q := path.Join(src, strings.TrimPrefix(p, "!"))
		if neg {
			q = "!" + q
		}
		out = append(out, q)
	}
	return out
}

// inlineCopy copies a heredoc file of COPY <<EOF from a directory under
// the mount root named by its content (written when the step runs).
func (pe *planEnv) inlineCopy(base runners.Copy, in dockerfile.Inline, ps *PlannedStep) (runners.Copy, layers.Input) {
	sum := sha256.Sum256([]byte(in.Data))
	h := hex.EncodeToString(sum[:])
	dir := filepath.Join(pe.mountRoot, "inline", h)
	name := path.Base(path.Clean("/" + in.Name))
	ps.inlines = append(ps.inlines, inlineFile{dir: dir, name: name, data: in.Data})
	cp := base
	cp.ContextDir, cp.Sources = dir, []string{name}
	return cp, layers.Input{Name: "inline:" + name, Digest: "sha256:" + h}
}

// lowerAddLocal lowers AddLocalFile and AddLocalDir: a host file or
// directory, keyed by the digest of its files (after the ignore rules).
func (pe *planEnv) lowerAddLocal(s *stepDef, spec *layers.Spec, ps *PlannedStep) error {
	src, err := filepath.Abs(s.src)
	if err != nil {
		return fmt.Errorf("local path %s: %w", s.src, err)
	}
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("local path %s: %w", s.src, err)
	}
	if s.dir && !st.IsDir() {
		return fmt.Errorf("local path %s is not a directory (use AddLocalFile)", s.src)
	}
	if !s.dir && st.IsDir() {
		return fmt.Errorf("local path %s is a directory (use AddLocalDir)", s.src)
	}
	excludes := s.ignore
	if s.ignoreFunc != nil {
		extra, err := funcExcludes(src, s.ignore, s.ignoreFunc)
		if err != nil {
			return fmt.Errorf("IgnoreFunc on %s: %w", s.src, err)
		}
		excludes = append(slices.Clone(s.ignore), extra...)
	}
	tree, err := mount.Walk(src, excludes, mount.WithDigestCache(pe.digests))
	if err != nil {
		return err
	}
	kind := "file"
	if s.dir {
		kind = "dir"
	}
	spec.Args = s.args
	spec.Ignore = s.ignore
	spec.Inputs = []layers.Input{{Name: "src", Digest: tree.Digest}}
	ps.trees = []layers.Tree{treeOf("src", tree)}
	spec.Options = map[string]string{"source": kind}
	ps.run.Copies = []runners.Copy{{Src: src, Dest: s.args[0], Excludes: excludes}}
	ps.Description = s.src + " -> " + s.args[0]
	return nil
}

// funcExcludes walks root and returns an exact pattern for each path that
// ignore excludes (after the patterns), not descending into excluded
// directories.
func funcExcludes(root string, patterns []string, ignore func(string) bool) ([]string, error) {
	m, err := mount.NewMatcher(patterns)
	if err != nil {
		return nil, err
	}
	var out []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		skip := func() error {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if ign, _ := m.Ignored(rel); ign {
			return skip()
		}
		if !ignore(rel) {
			return nil
		}
		pat, err := exactPattern(rel)
		if err != nil {
			return err
		}
		out = append(out, pat)
		return skip()
	})
	return out, err
}

// exactPattern is an ignore pattern that matches rel and nothing else:
// its glob characters escaped. A name that patterns cannot express (a
// leading "!", surrounding spaces, a newline) is an error.
func exactPattern(rel string) (string, error) {
	if strings.HasPrefix(rel, "!") || strings.ContainsAny(rel, "\n\r") {
		return "", fmt.Errorf("cannot exclude %q: ignore patterns cannot name it", rel)
	}
	for _, part := range strings.Split(rel, "/") {
		if strings.TrimSpace(part) != part {
			return "", fmt.Errorf("cannot exclude %q: ignore patterns cannot name it (surrounding spaces)", rel)
		}
	}
	var b strings.Builder
	for _, r := range rel {
		if strings.ContainsRune(`*?[]\\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String(), nil
}
