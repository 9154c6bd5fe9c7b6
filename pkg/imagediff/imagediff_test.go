package imagediff

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

type ent struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
	mtime            int64
}

func reg(name, body string, mode int64) ent {
	return ent{name: name, body: body, typ: tar.TypeReg, mode: mode}
}
func dir(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }

// layout writes a one-image OCI layout named ref; compress is "", "gzip"
// or "zstd"; breakDiffID writes a wrong diff ID for the first layer.
func layout(t *testing.T, ref string, cfg v1.ImageConfig, compress string, breakDiffID bool, layers ...[]ent) string {
	t.Helper()
	// "gzip+pad": the layer tar has padding after its end-of-archive blocks.
	compress, pad := strings.CutSuffix(compress, "+pad")
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) v1.Descriptor {
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{Digest: d, Size: int64(len(b))}
	}
	var img v1.Image
	img.Config = cfg
	img.RootFS.Type = "layers"
	var m v1.Manifest
	m.SchemaVersion = 2
	m.MediaType = v1.MediaTypeImageManifest
	for i, l := range layers {
		var raw bytes.Buffer
		tw := tar.NewWriter(&raw)
		for _, e := range l {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.uid,
				Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(e.mtime, 0)}
			if e.typ != tar.TypeReg {
				h.Size = 0
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if h.Size > 0 {
				tw.Write([]byte(e.body))
			}
		}
		tw.Close()
		if pad {
			// Padding past the two end blocks, as Python's tarfile writes.
			raw.Write(make([]byte, 8192))
		}
		diffID := digest.FromBytes(raw.Bytes())
		if breakDiffID && i == 0 {
			diffID = digest.FromString("wrong")
		}
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, diffID)
		blob := raw.Bytes()
		switch compress {
		case "gzip":
			var z bytes.Buffer
			gw := gzip.NewWriter(&z)
			gw.Write(blob)
			gw.Close()
			blob = z.Bytes()
		case "zstd":
			zw, _ := zstd.NewWriter(nil)
			blob = zw.EncodeAll(blob, nil)
		}
		d := put(blob)
		d.MediaType = v1.MediaTypeImageLayer
		m.Layers = append(m.Layers, d)
	}
	cb, _ := json.Marshal(img)
	m.Config = put(cb)
	m.Config.MediaType = v1.MediaTypeImageConfig
	mb, _ := json.Marshal(m)
	md := put(mb)
	md.MediaType = v1.MediaTypeImageManifest
	md.Annotations = map[string]string{v1.AnnotationRefName: ref}
	ib, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []v1.Descriptor{md}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func load(t *testing.T, dir string) *Image {
	t.Helper()
	img, err := Load(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var baseLayer = []ent{
	dir("bin/", 0o755),
	reg("bin/tool", "tool v1", 0o755),
	{name: "bin/sh", typ: tar.TypeSymlink, link: "tool", mode: 0o777},
	dir("etc/", 0o755),
	reg("etc/conf", "a=1\n", 0o644),
	dir("var/cache/", 0o755),
	reg("var/cache/x", "x", 0o644),
	reg("var/cache/y", "y", 0o644),
}

func TestCompare(t *testing.T) {
	t.Parallel()
	cfg := v1.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}, Labels: map[string]string{"a": "1"}}
	ref := load(t, layout(t, "x", cfg, "", false, baseLayer))
	with := func(f func(e *ent)) []ent {
		out := append([]ent(nil), baseLayer...)
		for i := range out {
			f(&out[i])
		}
		return out
	}
	cases := []struct {
		name   string
		cfg    v1.ImageConfig
		layers [][]ent
		opts   Options
		want   []string
	}{
		{name: "times differ only", cfg: cfg, layers: [][]ent{with(func(e *ent) { e.mtime = 12345 })}},
		{name: "gzip layer", cfg: cfg, layers: [][]ent{baseLayer}},
		{name: "mode", cfg: cfg, layers: [][]ent{with(func(e *ent) {
			if e.name == "etc/conf" {
				e.mode = 0o600
			}
		})}, want: []string{"/etc/conf mode: 0644 | 0600"}},
		{name: "setuid and owner", cfg: cfg, layers: [][]ent{with(func(e *ent) {
			if e.name == "bin/tool" {
				e.mode, e.uid = 0o4755, 7
			}
		})}, want: []string{"/bin/tool mode: 0755 | 4755", "/bin/tool owner: 0:0 | 7:7"}},
		{name: "content and link", cfg: cfg, layers: [][]ent{with(func(e *ent) {
			switch e.name {
			case "etc/conf":
				e.body = "a=2\n"
			case "bin/sh":
				e.link = "/bin/tool"
			}
		})}, want: []string{"/bin/sh link: tool | /bin/tool", "/etc/conf content: sha256:"}},
		{name: "whiteout and opaque dir in a second layer", cfg: cfg,
			layers: [][]ent{baseLayer, {reg("etc/.wh.conf", "", 0o644), reg("var/cache/.wh..wh..opq", "", 0o644), reg("var/cache/z", "z", 0o644)}},
			want:   []string{"/etc/conf: file 0644 0:0 sha256:", "/var/cache/x: file", "/var/cache/y: file", "/var/cache/z: missing | file"}},
		{name: "config", cfg: v1.ImageConfig{Env: []string{"PATH=/usr/bin"}, Cmd: []string{"sh"}, Labels: map[string]string{"a": "1", "io.buildah.version": "1.28"}, User: "1000"},
			layers: [][]ent{baseLayer}, want: []string{`Env: ["PATH=/bin"] | ["PATH=/usr/bin"]`, `User: "" | "1000"`, `Labels: a="1" | a="1" io.buildah.version="1.28"`}},
		{name: "ignored label", cfg: v1.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}, Labels: map[string]string{"a": "1", "io.buildah.version": "1.28"}},
			layers: [][]ent{baseLayer}, opts: Options{IgnoreLabels: []string{"io.buildah."}}},
		{name: "ignored path", cfg: cfg, layers: [][]ent{baseLayer, {reg("var/cache/new", "n", 0o644)}}, opts: Options{IgnorePaths: []string{"/var/cache"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			comp := ""
			if strings.Contains(c.name, "gzip") {
				comp = "gzip"
			}
			got := Compare(ref, load(t, layout(t, "x", c.cfg, comp, false, c.layers...)), c.opts)
			if len(got) != len(c.want) {
				t.Fatalf("got %d differences, want %d:\n%s", len(got), len(c.want), lines(got))
			}
			for i, w := range c.want {
				if !strings.HasPrefix(got[i].String(), w) {
					t.Errorf("difference %d = %q, want it to start with %q", i, got[i], w)
				}
			}
		})
	}
}

func lines(ds []Difference) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String() + "\n")
	}
	return b.String()
}

func TestLoad(t *testing.T) {
	t.Parallel()
	layer := []ent{
		reg("a/b/file", "data", 0o640),
		{name: "a/hard", typ: tar.TypeLink, link: "a/b/file", mode: 0o640},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
	}
	for _, comp := range []string{"", "gzip", "zstd"} {
		img := load(t, layout(t, "x", v1.ImageConfig{}, comp, false, layer))
		if f := img.Files["a/hard"]; f.Type != 'f' || f.Digest != img.Files["a/b/file"].Digest || f.Digest == "" {
			t.Errorf("%q: hard link read as %+v", comp, f)
		}
		if d := img.Files["a/b"]; d.Type != 'd' || !d.Implicit || d.Mode != 0o755 {
			t.Errorf("%q: implicit parent = %+v", comp, d)
		}
		if f := img.Files["dev/null"]; f.Type != 'c' {
			t.Errorf("%q: device = %+v", comp, f)
		}
	}
	// An implicit directory equals an explicit root-owned 0755 one.
	explicit := load(t, layout(t, "x", v1.ImageConfig{}, "", false, append([]ent{dir("a", 0o755), dir("a/b", 0o755)}, layer...)))
	if d := Compare(load(t, layout(t, "x", v1.ImageConfig{}, "", false, layer)), explicit, Options{}); len(d) != 0 {
		t.Errorf("implicit vs explicit directories:\n%s", lines(d))
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	if _, err := Load(layout(t, "x", v1.ImageConfig{}, "gzip", true, baseLayer), "x"); err == nil || !strings.Contains(err.Error(), "diff ID") {
		t.Errorf("wrong diff ID: %v", err)
	}
	dir := layout(t, "x", v1.ImageConfig{}, "", false, baseLayer)
	if _, err := Load(dir, "other"); err == nil || !strings.Contains(err.Error(), `no image named "other"`) {
		t.Errorf("unknown name: %v", err)
	}
	// A damaged blob is named.
	var idx v1.Index
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	json.Unmarshal(b, &idx)
	var m v1.Manifest
	mb, _ := os.ReadFile(filepath.Join(dir, "blobs", "sha256", idx.Manifests[0].Digest.Encoded()))
	json.Unmarshal(mb, &m)
	os.WriteFile(filepath.Join(dir, "blobs", "sha256", m.Layers[0].Digest.Encoded()), []byte("garbage"), 0o644)
	if _, err := Load(dir, ""); err == nil || !strings.Contains(err.Error(), "layer 1") {
		t.Errorf("damaged layer: %v", err)
	}
}

// TestLoadPaddedTar: a layer whose tar goes on past its end-of-archive
// blocks (padding to a record size) loads: its diff ID is the digest of
// the whole stream, padding included.
func TestLoadPaddedTar(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"+pad", "gzip+pad", "zstd+pad"} {
		img, err := Load(layout(t, "x", v1.ImageConfig{}, c, false, baseLayer), "x")
		if err != nil {
			t.Errorf("%s: %v", c, err)
			continue
		}
		if len(img.Files) == 0 {
			t.Errorf("%s: no files", c)
		}
	}
}
