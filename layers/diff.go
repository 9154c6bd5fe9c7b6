package layers

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// ShortDigest shortens "sha256:<hex>" to "sha256:<8 hex>…" for messages.
func ShortDigest(d string) string {
	alg, h, ok := strings.Cut(d, ":")
	if !ok || len(h) <= 8 {
		return d
	}
	return alg + ":" + h[:8] + "…"
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(sb.String(), "\n")
}

// Diff says, one line per changed input, how the step of recipe cur
// differs from the earlier recipe old of the same position. The parent is
// not compared: callers report a rebuilt parent themselves. An empty
// result means the specs are equal.
func Diff(old, cur Recipe) []string {
	o, c := old.Spec, cur.Spec
	var out []string
	if o.Kind != c.Kind {
		return []string{fmt.Sprintf("step kind changed (%s -> %s)", o.Kind, c.Kind)}
	}
	if !slices.Equal(o.Args, c.Args) {
		if c.Kind == KindBase && len(o.Args) == 1 && len(c.Args) == 1 {
			out = append(out, fmt.Sprintf("base image changed (%s -> %s)", ShortDigest(o.Args[0]), ShortDigest(c.Args[0])))
		} else {
			out = append(out, fmt.Sprintf("argument changed %s -> %s", jsonList(o.Args), jsonList(c.Args)))
		}
	}
	if !slices.Equal(o.Shell, c.Shell) {
		out = append(out, fmt.Sprintf("shell changed %s -> %s", jsonList(o.Shell), jsonList(c.Shell)))
	}
	what := "env"
	if c.Kind == KindLabel {
		what = "label"
	}
	out = append(out, diffMap(what, o.Env, c.Env)...)
	if !slices.Equal(o.Ignore, c.Ignore) {
		out = append(out, fmt.Sprintf("ignore patterns changed %s -> %s", jsonList(o.Ignore), jsonList(c.Ignore)))
	}
	if !slices.Equal(o.Secrets, c.Secrets) {
		out = append(out, fmt.Sprintf("secrets changed %s -> %s (names only: values are never keyed)", jsonList(o.Secrets), jsonList(c.Secrets)))
	}
	out = append(out, diffMap("option", o.Options, c.Options)...)
	out = append(out, diffInputs(old, cur)...)
	return out
}

func diffMap(what string, o, c map[string]string) []string {
	var out []string
	keys := map[string]bool{}
	for k := range o {
		keys[k] = true
	}
	for k := range c {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		ov, inO := o[k]
		cv, inC := c[k]
		switch {
		case inO && !inC:
			out = append(out, fmt.Sprintf("%s %s removed", what, k))
		case !inO && inC:
			out = append(out, fmt.Sprintf("%s %s added (%q)", what, k, cv))
		case ov != cv:
			out = append(out, fmt.Sprintf("%s %s changed (%q -> %q)", what, k, ov, cv))
		}
	}
	return out
}

func diffInputs(old, cur Recipe) []string {
	od := map[string]string{}
	for _, in := range old.Spec.Inputs {
		od[in.Name] = in.Digest
	}
	var out []string
	seen := map[string]bool{}
	for _, in := range cur.Spec.Inputs {
		seen[in.Name] = true
		d, ok := od[in.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("input %s added", in.Name))
		case d != in.Digest:
			ot, ct := treeOf(old, in.Name), treeOf(cur, in.Name)
			if ot == nil || ct == nil || ot.Truncated || ct.Truncated {
				out = append(out, fmt.Sprintf("%s changed (%s -> %s)", in.Name, ShortDigest(d), ShortDigest(in.Digest)))
				continue
			}
			out = append(out, diffTree(in.Name, *ot, *ct))
		}
	}
	for _, in := range old.Spec.Inputs {
		if !seen[in.Name] {
			out = append(out, fmt.Sprintf("input %s removed", in.Name))
		}
	}
	return out
}

func treeOf(r Recipe, input string) *Tree {
	for i := range r.Trees {
		if r.Trees[i].Input == input {
			return &r.Trees[i]
		}
	}
	return nil
}

// diffTree describes how the files of an input changed, in one line.
func diffTree(input string, o, c Tree) string {
	prefix := ""
	if _, rel, ok := strings.Cut(input, ":"); ok && rel != "." && rel != "" {
		prefix = rel
	}
	show := func(p string) string {
		if prefix == "" || p == "." {
			if p == "." && prefix != "" {
				return prefix
			}
			return p
		}
		if p == path.Base(prefix) {
			return prefix // a single-file input
		}
		return path.Join(prefix, p)
	}
	om := map[string]TreeEntry{}
	for _, e := range o.Files {
		om[e.Path] = e
	}
	var parts, added, removed []string
	cm := map[string]bool{}
	for _, e := range c.Files {
		cm[e.Path] = true
		prev, ok := om[e.Path]
		switch {
		case !ok:
			added = append(added, show(e.Path))
		case prev.Digest != e.Digest:
			parts = append(parts, fmt.Sprintf("%s changed (%s -> %s)", show(e.Path), ShortDigest(prev.Digest), ShortDigest(e.Digest)))
		case prev.Mode != e.Mode:
			parts = append(parts, fmt.Sprintf("%s mode changed (%04o -> %04o)", show(e.Path), prev.Mode, e.Mode))
		}
	}
	for _, e := range o.Files {
		if !cm[e.Path] {
			removed = append(removed, show(e.Path))
		}
	}
	list := func(n int, verb string, names []string) string {
		s := "1 file " + verb
		if n != 1 {
			s = fmt.Sprintf("%d files %s", n, verb)
		}
		if len(names) > 3 {
			names = append(names[:3:3], "…")
		}
		return s + " (" + strings.Join(names, ", ") + ")"
	}
	if len(parts) > 5 {
		n := len(parts)
		parts = append(parts[:5:5], fmt.Sprintf("%d more changed", n-5))
	}
	if len(added) > 0 {
		parts = append(parts, list(len(added), "added", added))
	}
	if len(removed) > 0 {
		parts = append(parts, list(len(removed), "removed", removed))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s changed (%s)", input, "file metadata")
	}
	return strings.Join(parts, ", ")
}
