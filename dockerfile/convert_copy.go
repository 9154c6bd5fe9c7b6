package dockerfile

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// copyFrom resolves --from: a stage (by name or index), a named context, or
// an image.
func (p *dfParser) copyFrom(from string, cp *Copy, byName map[string]*Stage, chain []*Stage, loc []parser.Range) error {
	if from == "" {
		return nil
	}
	cur := chain[len(chain)-1]
	if strings.Contains(from, "$") {
		return p.errAt(loc, "--from", "--from=%s: variables are not expanded in --from (nor by BuildKit); as a workaround, define a stage FROM the variable (a global ARG) and copy from that stage", from)
	}
	if s := byName[strings.ToLower(from)]; s != nil {
		cp.FromStage = s
	} else if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= cur.Index {
			return p.errAt(loc, "--from", "--from=%d: there is no earlier stage %d", n, n)
		}
		cp.FromStage = p.out[n]
	} else if p.opts.Contexts[from] {
		cp.FromContext = from
		return nil
	} else {
		if strings.ContainsAny(from, " \t") || from != strings.ToLower(from) && !strings.Contains(from, "/") {
			return p.errAt(loc, "--from", "--from=%s: no stage of that name, and not an image reference", from)
		}
		cp.FromImage = from
		return nil
	}
	if cp.FromStage == cur || cp.FromStage.Index > cur.Index {
		return p.errAt(loc, "--from", "--from=%s: a stage can only use stages defined before it", from)
	}
	return p.translate(cp.FromStage, byName, slices.Clip(chain[:len(chain)-1]))
}

// sources checks and cleans COPY/ADD sources and the destination.
func (p *dfParser) sources(sd instructions.SourcesAndDest, cp *Copy, st *Stage, loc []parser.Range, add bool) error {
	dest := sd.DestPath
	// A destination that expands to nothing (COPY src $EMPTY) is the
	// working directory, as in BuildKit.
	dir := dest == "" || strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		dest = path.Join(st.workdir, dest)
	}
	dest = path.Clean(dest)
	if dir && dest != "/" {
		dest += "/"
	}
	cp.Dest = dest
	for _, s := range sd.SourcePaths {
		// A URL ending in .git is a git repository to BuildKit, not a
		// file to download.
		if add && (strings.HasPrefix(s, "git@") || strings.HasSuffix(s, ".git") && strings.Contains(s, "://")) {
			return p.errAt(loc, s, "ADD %s: git sources are %w (clone it in a RUN, with --mount=type=ssh for a private repository, or COPY a checkout)", s, ErrUnsupported)
		}
		if add && isURL(s) {
			cp.Sources = append(cp.Sources, s)
			continue
		}
		local := cp.FromStage == nil && cp.FromContext == "" && cp.FromImage == ""
		if local {
			if path.IsAbs(s) {
				return p.errAt(loc, s, "source %q is an absolute path: COPY and ADD read from the build context; write it relative to the context", s)
			}
			c := path.Clean(s)
			if c == ".." || strings.HasPrefix(c, "../") {
				return p.errAt(loc, s, "source %q is outside the build context", s)
			}
			if cp.Parents && strings.Contains(s, "/./") {
				// The pivot of --parents: keep it, cleaning each side.
				l, r, _ := strings.Cut(s, "/./")
				c = path.Clean(l) + "/./" + path.Clean(r)
			}
			cp.Sources = append(cp.Sources, c)
			continue
		}
		c := path.Clean("/" + s)
		cp.Sources = append(cp.Sources, strings.TrimPrefix(c, "/"))
	}
	for _, sc := range sd.SourceContents {
		cp.Inline = append(cp.Inline, Inline{Name: sc.Path, Data: sc.Data})
	}
	if len(cp.Sources)+len(cp.Inline) == 0 {
		return p.errAt(loc, "", "no source")
	}
	if len(cp.Sources)+len(cp.Inline) > 1 && !strings.HasSuffix(cp.Dest, "/") {
		// Several sources go into a directory, as BuildKit does when it
		// exists; where it does not, BuildKit writes each source in turn
		// to a file of that name and keeps the last (README).
		cp.Dest += "/"
	}
	return nil
}

// copy fills op from a COPY instruction.
func (cv *converter) copy(c *instructions.CopyCommand, op *Op, loc []parser.Range) error {
	if err := cv.expandCopy(c, loc); err != nil {
		return err
	}
	if err := cv.p.checkChmod(c.Chmod, loc); err != nil {
		return err
	}
	cp := &Copy{Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, Excludes: c.ExcludePatterns, Parents: c.Parents}
	if err := cv.p.copyFrom(c.From, cp, cv.byName, cv.chain, loc); err != nil {
		return err
	}
	if err := cv.p.sources(c.SourcesAndDest, cp, cv.st, loc, false); err != nil {
		return err
	}
	op.Copy = cp
	return nil
}

// add fills op from an ADD instruction.
func (cv *converter) add(c *instructions.AddCommand, op *Op, loc []parser.Range) error {
	if err := cv.expandCopy(c, loc); err != nil {
		return err
	}
	if err := cv.p.checkChmod(c.Chmod, loc); err != nil {
		return err
	}
	cp := &Copy{Add: true, Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, Excludes: c.ExcludePatterns,
		Checksum: c.Checksum, Unpack: c.Unpack}
	if c.KeepGitDir != nil {
		cp.KeepGitDir = *c.KeepGitDir
	}
	if err := cv.p.sources(c.SourcesAndDest, cp, cv.st, loc, true); err != nil {
		return err
	}
	if cp.Checksum != "" {
		if len(cp.Sources) != 1 || len(cp.Inline) > 0 {
			return cv.p.errAt(loc, "--checksum", "ADD --checksum takes one source: give each URL its own ADD")
		}
		if !isURL(cp.Sources[0]) {
			return cv.p.errAt(loc, "--checksum", "ADD --checksum checks a download: %q is not an http(s) URL", cp.Sources[0])
		}
	}
	op.Copy = cp
	return nil
}

// expandCopy substitutes the stage's variables in a COPY or ADD: its
// flags, sources and destination as words, and the bodies of its
// unquoted heredocs (<<EOF, not <<"EOF") as text.
func (cv *converter) expandCopy(c interface {
	Expand(instructions.SingleWordExpander) error
	ExpandRaw(instructions.SingleWordExpander) error
}, loc []parser.Range) error {
	if err := c.Expand(cv.expander(loc)); err != nil {
		return cv.p.exprErr(err, loc)
	}
	if err := c.ExpandRaw(cv.rawExpander(loc)); err != nil {
		return cv.p.exprErr(err, loc)
	}
	return nil
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// checkChmod refuses a --chmod that BuildKit refuses (not an octal mode
// from 0 to 07777) and, as unsupported, the symbolic modes BuildKit takes
// (u+x, go-w): the copy cannot apply them yet.
func (p *dfParser) checkChmod(m string, loc []parser.Range) error {
	if m == "" {
		return nil
	}
	n, err := strconv.ParseUint(m, 8, 32)
	if err == nil && n <= 0o7777 {
		return nil
	}
	if symbolicMode.MatchString(m) {
		return p.errAt(loc, "--chmod", "--chmod=%s: symbolic modes are %w; write the octal mode (for example --chmod=0755)", m, ErrUnsupported)
	}
	return p.errAt(loc, "--chmod", "--chmod=%s: a mode is an octal number from 0 to 07777", m)
}

// symbolicMode matches chmod(1)'s symbolic modes: u+x, go-w, a=rX,u+s.
var symbolicMode = regexp.MustCompile(`^[ugoa]*([-+=]([rwxXst]*|[ugo]))+(,[ugoa]*([-+=]([rwxXst]*|[ugo]))+)*$`)
