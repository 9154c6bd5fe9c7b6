package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stratabuild/strata/builder"
)

// Error is a spec file error. Its text names the file, the step (or the
// base) and the line: `spec.yaml: step 3 (apt_install): line 9: ...`.
// Reach it with errors.As.
type Error struct {
	File string
	// Where is "step N (method)", "base (kind)" or "" for the file as a whole.
	Where string
	// Line is the 1-based line in the file, 0 when unknown.
	Line int
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	if e.Where != "" {
		b.WriteString(e.Where)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Parse reads a spec file (YAML or JSON) named name and returns the image it
// describes. Relative paths in it are resolved against dir. Parse reads the
// files a step needs to check its arguments (a Dockerfile base), as the
// builder function it maps onto does; everything else is read by Build.
func Parse(data []byte, name string, dir string) (builder.Image, error) {
	c, err := parse(data, name, dir)
	if err != nil {
		return builder.Image{}, err
	}
	return c.image(), nil
}

// chain is a parsed spec: the base and the steps, each as the Go call it
// maps onto (for documentation and golden tests) and as a function.
type chain struct {
	base  call
	steps []call
}

type call struct {
	where string
	line  int
	text  string // the Go call, e.g. `AptInstall([]string{"git"})`
	apply func(builder.Image) builder.Image
}

func (c *chain) image() builder.Image {
	img := c.base.apply(builder.Image{})
	for _, s := range c.steps {
		img = s.apply(img)
	}
	return img
}

// goChain returns the Go chain the spec maps onto.
func (c *chain) goChain() string {
	var b strings.Builder
	b.WriteString(c.base.text)
	for _, s := range c.steps {
		b.WriteString(".\n\t")
		b.WriteString(s.text)
	}
	b.WriteString("\n")
	return b.String()
}

// maxAliasDepth bounds how many YAML aliases may be followed in a row.
const maxAliasDepth = 32

// maxNesting bounds the nesting of the YAML document.
const maxNesting = 64

type parser struct {
	name, dir string
	where     string
}

func (p *parser) errAt(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.name, Where: p.where, Line: line, Err: fmt.Errorf(format, args...)}
}

func parse(data []byte, name, dir string) (c *chain, err error) {
	p := &parser{name: name, dir: dir}
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && (trimmed[0] == '{' || strings.HasSuffix(strings.ToLower(name), ".json")) {
		if err := checkJSON(data, name); err != nil {
			return nil, err
		}
		// Valid JSON holds tabs only as whitespace between tokens, which
		// YAML does not always accept: they become spaces (lines and
		// columns are unchanged).
		data = bytes.ReplaceAll(data, []byte("\t"), []byte(" "))
	}
	var doc yaml.Node
	if err := decodeYAML(data, &doc); err != nil {
		return nil, &Error{File: name, Err: err}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, &Error{File: name, Err: errors.New("the spec is empty")}
		}
		root = root.Content[0]
	}
	if root.Kind == 0 {
		return nil, &Error{File: name, Err: errors.New("the spec is empty")}
	}
	if err := p.checkDepth(root, 0); err != nil {
		return nil, err
	}
	top, err := p.fields(withoutExtensions(root), "base", "steps")
	if err != nil {
		return nil, err
	}
	c = &chain{}
	bn, ok := top["base"]
	if !ok {
		return nil, p.errAt(root, "no base: give one of %s (scratch: true for an empty image)", strings.Join(baseKinds, ", "))
	}
	if c.base, err = p.base(bn); err != nil {
		return nil, err
	}
	if err := p.checkImage(c.base.apply(builder.Image{}), c.base); err != nil {
		return nil, err
	}
	img := c.base.apply(builder.Image{})
	if sn, ok := top["steps"]; ok {
		p.where = ""
		seq, err := p.deref(sn)
		if err != nil {
			return nil, err
		}
		if seq.Kind == yaml.ScalarNode && seq.Tag == "!!null" {
			return c, nil
		}
		if seq.Kind != yaml.SequenceNode {
			return nil, p.errAt(seq, "steps must be a list")
		}
		for i, n := range seq.Content {
			st, err := p.step(i+1, n)
			if err != nil {
				return nil, err
			}
			c.steps = append(c.steps, st)
			img = st.apply(img)
			if err := p.checkImage(img, st); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// withoutExtensions returns the mapping n without its "x-" keys, which
// hold anchors for reuse (as in Compose files) and are otherwise ignored.
func withoutExtensions(n *yaml.Node) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return n
	}
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && strings.HasPrefix(k.Value, "x-") {
			continue
		}
		c.Content = append(c.Content, n.Content[i], n.Content[i+1])
	}
	return &c
}

// decodeYAML decodes one YAML document; a second document is an error. A
// panic in the YAML decoder becomes an error.
func decodeYAML(data []byte, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(doc); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the spec is empty")
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return fmt.Errorf("line %d: a spec file holds one YAML document", extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// checkJSON reports a JSON syntax error with its line and column.
func checkJSON(data []byte, name string) error {
	var v any
	err := json.Unmarshal(data, &v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, int(se.Offset))
		return &Error{File: name, Line: line, Err: fmt.Errorf("column %d: invalid JSON: %v", col, se)}
	}
	return &Error{File: name, Err: fmt.Errorf("invalid JSON: %v", err)}
}

func lineCol(data []byte, off int) (int, int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - bytes.LastIndexByte(before, '\n')
	return line, col
}

// stepPrefix is the "step N (Method): " that builder puts before errors.
var stepPrefix = regexp.MustCompile(`^step [0-9]+ \([A-Za-z]+\): `)

// checkImage reports the first invalid argument the builder recorded, as an
// error of the spec step c.
func (p *parser) checkImage(img builder.Image, c call) error {
	err := img.Err()
	if err == nil {
		return nil
	}
	msg := stepPrefix.ReplaceAllString(err.Error(), "")
	return &Error{File: p.name, Where: c.where, Line: c.line, Err: wrapped{msg: msg, err: err}}
}

// wrapped is an error with another text that unwraps to err.
type wrapped struct {
	msg string
	err error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.err }

func (p *parser) checkDepth(n *yaml.Node, depth int) error {
	if depth > maxNesting {
		return p.errAt(n, "nested more than %d levels deep", maxNesting)
	}
	for _, c := range n.Content {
		if err := p.checkDepth(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// deref follows aliases.
func (p *parser) deref(n *yaml.Node) (*yaml.Node, error) {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i == maxAliasDepth || n.Alias == nil {
			return nil, p.errAt(n, "alias %q cannot be resolved", n.Value)
		}
		n = n.Alias
	}
	if n == nil {
		return nil, p.errAt(nil, "missing value")
	}
	return n, nil
}

// fields returns the values of the mapping n by key, rejecting keys not in
// allowed and keys given twice.
func (p *parser) fields(n *yaml.Node, allowed ...string) (map[string]*yaml.Node, error) {
	n, err := p.deref(n)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, "expected a mapping with keys %s", strings.Join(allowed, ", "))
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, err := p.deref(n.Content[i])
		if err != nil {
			return nil, err
		}
		if kn.Kind != yaml.ScalarNode {
			return nil, p.errAt(kn, "keys must be strings")
		}
		k := kn.Value
		if !slices.Contains(allowed, k) {
			return nil, p.errAt(kn, "unknown key %q (known: %s)", k, strings.Join(allowed, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, p.errAt(kn, "key %q given twice", k)
		}
		out[k] = n.Content[i+1]
	}
	return out, nil
}

// str reads a scalar as a string. Numbers and booleans are taken as written.
func (p *parser) str(n *yaml.Node, what string) (string, error) {
	n, err := p.deref(n)
	if err != nil {
		return "", err
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errAt(n, "%s must be a string", what)
	}
	return n.Value, nil
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, error) {
	n, err := p.deref(n)
	if err != nil {
		return false, err
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err == nil {
			return b, nil
		}
		switch strings.ToLower(n.Value) {
		case "yes", "on", "y":
			return true, nil
		case "no", "off", "n":
			return false, nil
		}
	}
	return false, p.errAt(n, "%s must be true or false", what)
}

func (p *parser) strList(n *yaml.Node, what string) ([]string, error) {
	n, err := p.deref(n)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errAt(n, "%s must be a list of strings", what)
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, err := p.str(c, what+" entries")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// strOrList reads a string or a list of strings.
func (p *parser) strOrList(n *yaml.Node, what string) ([]string, error) {
	d, err := p.deref(n)
	if err != nil {
		return nil, err
	}
	if d.Kind == yaml.ScalarNode {
		s, err := p.str(d, what)
		return []string{s}, err
	}
	return p.strList(d, what)
}

func (p *parser) strMap(n *yaml.Node, what string) (map[string]string, error) {
	n, err := p.deref(n)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, "%s must be a mapping of strings", what)
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := p.str(n.Content[i], what+" keys")
		if err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, p.errAt(n.Content[i], "%s: key %q given twice", what, k)
		}
		v, err := p.str(n.Content[i+1], what+" values")
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// path resolves a path of the spec against its directory.
func (p *parser) path(s string) string {
	if s == "" || filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(p.dir, s)
}

func (p *parser) pathOf(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what)
	return p.path(s), err
}

func (p *parser) paths(n *yaml.Node, what string) ([]string, error) {
	l, err := p.strList(n, what)
	for i := range l {
		l[i] = p.path(l[i])
	}
	return l, err
}

func (p *parser) timeOf(n *yaml.Node, what string) (time.Time, error) {
	s, err := p.str(n, what)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, p.errAt(n, "%s %q must be an RFC 3339 time (2024-05-01T00:00:00Z)", what, s)
	}
	return t, nil
}

// Go literals for the chain description.

func goStr(s string) string { return strconv.Quote(s) }

func goList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[]string{" + strings.Join(q, ", ") + "}"
}

func goArgs(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func goMap(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, strconv.Quote(k)+": "+strconv.Quote(m[k]))
	}
	return "map[string]string{" + strings.Join(parts, ", ") + "}"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func withOpts(text string, opts []string) string {
	if len(opts) == 0 {
		return text + ")"
	}
	return text + ", " + strings.Join(opts, ", ") + ")"
}
