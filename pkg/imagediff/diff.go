package imagediff

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
)

// Difference is one way two images differ: a file (Path set) or a config
// field (Field set).
type Difference struct {
	Path  string
	Field string
	A, B  string
}

func (d Difference) String() string {
	what := d.Field
	if d.Path != "" {
		what = "/" + d.Path
		if d.Field != "" {
			what += " " + d.Field
		}
	}
	return fmt.Sprintf("%s: %s | %s", what, d.A, d.B)
}

// Options says what a comparison leaves out.
type Options struct {
	// IgnoreLabels are label-name prefixes left out of the Labels
	// comparison, such as a builder's own version label.
	IgnoreLabels []string
	// IgnorePaths are paths (and everything below them) left out of the
	// file comparison.
	IgnorePaths []string
}

// Compare lists how a differs from b, files first (sorted by path), then
// config fields. An empty list means the two are the same image for a user.
func Compare(a, b *Image, o Options) []Difference {
	var out []Difference
	ignored := func(p string) bool {
		for _, ig := range o.IgnorePaths {
			ig = strings.Trim(ig, "/")
			if p == ig || strings.HasPrefix(p, ig+"/") {
				return true
			}
		}
		return false
	}
	names := map[string]bool{}
	for n := range a.Files {
		names[n] = true
	}
	for n := range b.Files {
		names[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		if ignored(n) {
			continue
		}
		fa, okA := a.Files[n]
		fb, okB := b.Files[n]
		switch {
		case !okA:
			out = append(out, Difference{Path: n, A: "missing", B: fb.describe()})
		case !okB:
			out = append(out, Difference{Path: n, A: fa.describe(), B: "missing"})
		default:
			out = append(out, fileDiffs(n, fa, fb)...)
		}
	}
	ca, cb := a.Config, b.Config
	field := func(name string, x, y any) {
		// Compared as shown: a missing list and an empty one are alike.
		if sx, sy := show(x), show(y); sx != sy {
			out = append(out, Difference{Field: name, A: sx, B: sy})
		}
	}
	field("Env", ca.Env, cb.Env)
	field("WorkingDir", ca.WorkingDir, cb.WorkingDir)
	field("User", ca.User, cb.User)
	field("Entrypoint", ca.Entrypoint, cb.Entrypoint)
	field("Cmd", ca.Cmd, cb.Cmd)
	field("Labels", labels(ca.Labels, o.IgnoreLabels), labels(cb.Labels, o.IgnoreLabels))
	field("ExposedPorts", keys(ca.ExposedPorts), keys(cb.ExposedPorts))
	field("Volumes", keys(ca.Volumes), keys(cb.Volumes))
	field("StopSignal", ca.StopSignal, cb.StopSignal)
	field("Author", a.Author, b.Author)
	return out
}

func fileDiffs(n string, a, b File) []Difference {
	var out []Difference
	add := func(field, x, y string) {
		if x != y {
			out = append(out, Difference{Path: n, Field: field, A: x, B: y})
		}
	}
	add("type", typeName(a.Type), typeName(b.Type))
	if a.Type != b.Type {
		return out
	}
	add("mode", fmt.Sprintf("%04o", modeBits(a)), fmt.Sprintf("%04o", modeBits(b)))
	add("owner", fmt.Sprintf("%d:%d", a.UID, a.GID), fmt.Sprintf("%d:%d", b.UID, b.GID))
	add("link", a.Link, b.Link)
	add("content", a.Digest, b.Digest)
	add("device", fmt.Sprintf("%d:%d", a.DevMajor, a.DevMinor), fmt.Sprintf("%d:%d", b.DevMajor, b.DevMinor))
	return out
}

// modeBits gives the permission bits with setuid (04000), setgid (02000)
// and sticky (01000) in their Unix places.
func modeBits(f File) uint32 {
	m := uint32(f.Mode.Perm())
	if f.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if f.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if f.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

func (f File) describe() string {
	s := fmt.Sprintf("%s %04o %d:%d", typeName(f.Type), modeBits(f), f.UID, f.GID)
	switch f.Type {
	case 'l':
		s += " -> " + f.Link
	case 'f':
		s += " " + short(f.Digest)
	}
	if f.Implicit {
		s += " (implicit)"
	}
	return s
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19] + "…"
	}
	return d
}

func typeName(t byte) string {
	switch t {
	case 'f':
		return "file"
	case 'd':
		return "dir"
	case 'l':
		return "symlink"
	case 'c':
		return "char device"
	case 'b':
		return "block device"
	case 'p':
		return "fifo"
	}
	return "unknown"
}

func labels(m map[string]string, ignore []string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		skip := false
		for _, p := range ignore {
			if strings.HasPrefix(k, p) {
				skip = true
			}
		}
		if !skip {
			out[k] = v
		}
	}
	return out
}

func keys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case []string:
		if len(x) == 0 {
			return "(none)"
		}
		return fmt.Sprintf("%q", x)
	case map[string]string:
		if len(x) == 0 {
			return "(none)"
		}
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(x)) {
			kv = append(kv, fmt.Sprintf("%s=%q", k, x[k]))
		}
		return strings.Join(kv, " ")
	}
	return fmt.Sprint(v)
}
