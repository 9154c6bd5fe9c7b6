package imagediff

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one entry of a flattened root filesystem. Times are not kept.
type File struct {
	// Type is 'f' (regular file, hard links included), 'd', 'l' (symlink),
	// 'c', 'b' or 'p'.
	Type byte
	// Mode holds the permission bits and setuid, setgid and sticky.
	Mode     fs.FileMode
	UID, GID int
	// Link is a symlink's target.
	Link string
	// Digest is a regular file's content digest ("sha256:...").
	Digest             string
	Size               int64
	DevMajor, DevMinor int64
	// Implicit is true for a directory no layer names, made because a
	// file below it exists (a runtime creates it 0755, root-owned).
	Implicit bool
}

// Image is an image read from an OCI layout: its flattened files, keyed by
// path without a leading slash, and its runtime config.
type Image struct {
	Files  map[string]File
	Config v1.ImageConfig
	// Author is the image's author (Dockerfile MAINTAINER).
	Author string
}

// Load reads the image named ref (the index's
// org.opencontainers.image.ref.name annotation) from the OCI layout at dir;
// an empty ref takes the layout's only image.
func Load(dir, ref string) (*Image, error) {
	var idx v1.Index
	if err := readJSON(filepath.Join(dir, "index.json"), &idx); err != nil {
		return nil, fmt.Errorf("reading the OCI layout %s: %w", dir, err)
	}
	desc, err := pick(dir, idx, ref)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	var m v1.Manifest
	if err := readBlobJSON(dir, desc.Digest, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var cfg v1.Image
	if err := readBlobJSON(dir, m.Config.Digest, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config lists %d diff IDs for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	img := &Image{Files: map[string]File{}, Config: cfg.Config, Author: cfg.Author}
	for i, l := range m.Layers {
		if err := img.apply(dir, l.Digest, cfg.RootFS.DiffIDs[i]); err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i+1, l.Digest, err)
		}
	}
	img.addImplicitDirs()
	return img, nil
}

// pick finds the manifest for ref, following nested indexes.
func pick(dir string, idx v1.Index, ref string) (v1.Descriptor, error) {
	var found []v1.Descriptor
	for _, d := range idx.Manifests {
		if ref != "" && d.Annotations[v1.AnnotationRefName] != ref {
			continue
		}
		switch d.MediaType {
		case v1.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
			var sub v1.Index
			if err := readBlobJSON(dir, d.Digest, &sub); err != nil {
				return v1.Descriptor{}, err
			}
			m, err := pick(dir, sub, "")
			if err != nil {
				return v1.Descriptor{}, err
			}
			found = append(found, m)
		default:
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && ref != "":
		return v1.Descriptor{}, fmt.Errorf("no image named %q", ref)
	case len(found) == 0:
		return v1.Descriptor{}, errors.New("no image")
	}
	return v1.Descriptor{}, fmt.Errorf("%d images match %q: name one", len(found), ref)
}

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func blobPath(dir string, d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("bad digest %q: %w", d, err)
	}
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()), nil
}

func readBlobJSON(dir string, d digest.Digest, v any) error {
	p, err := blobPath(dir, d)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if got := digest.FromBytes(b); got != d {
		return fmt.Errorf("blob %s has digest %s", d, got)
	}
	return json.Unmarshal(b, v)
}

// apply reads one layer blob (gzip, zstd or plain tar, told apart by their
// magic bytes) onto the files: whiteouts first remove lower entries, then
// the layer's own entries are added.
func (img *Image) apply(dir string, blob, diffID digest.Digest) error {
	p, err := blobPath(dir, blob)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	compressed := sha256.New()
	br := bufio.NewReader(io.TeeReader(f, compressed))
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	uncompressed := sha256.New()
	tee := io.TeeReader(r, uncompressed)
	tr := tar.NewReader(tee)
	type entry struct {
		name string
		file File
		hard string
	}
	var adds []entry
	var removes, opaques []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := clean(h.Name)
		if name == "" {
			continue
		}
		base := path.Base(name)
		if base == ".wh..wh..opq" {
			opaques = append(opaques, path.Dir(name))
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			removes = append(removes, path.Join(path.Dir(name), strings.TrimPrefix(base, ".wh.")))
			continue
		}
		file := File{
			Mode: h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
			UID:  h.Uid, GID: h.Gid,
		}
		hard := ""
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			file.Type = 'f'
			file.Size = h.Size
			d, err := digestOf(tr)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			file.Digest = d
		case tar.TypeLink:
			file.Type = 'f'
			hard = clean(h.Linkname)
		case tar.TypeDir:
			file.Type = 'd'
		case tar.TypeSymlink:
			file.Type = 'l'
			file.Link = h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			file.Type = 'c'
			if h.Typeflag == tar.TypeBlock {
				file.Type = 'b'
			}
			file.DevMajor, file.DevMinor = h.Devmajor, h.Devminor
		case tar.TypeFifo:
			file.Type = 'p'
		default:
			continue
		}
		adds = append(adds, entry{name, file, hard})
	}
	// The rest of the stream (tar padding) belongs to both digests.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	if got := sum(compressed); got != blob.String() {
		return fmt.Errorf("blob digest is %s", got)
	}
	if got := sum(uncompressed); got != diffID.String() {
		return fmt.Errorf("uncompressed digest %s does not match the config's diff ID %s", got, diffID)
	}
	for _, d := range opaques {
		img.removeBelow(d)
	}
	for _, n := range removes {
		delete(img.Files, n)
		img.removeBelow(n)
	}
	for _, e := range adds {
		if e.hard != "" {
			target, ok := img.Files[e.hard]
			if !ok {
				return fmt.Errorf("%s: hard link to %s, which does not exist", e.name, e.hard)
			}
			target.Mode, target.UID, target.GID = e.file.Mode, e.file.UID, e.file.GID
			e.file = target
		}
		if old, ok := img.Files[e.name]; ok && old.Type == 'd' && e.file.Type != 'd' {
			img.removeBelow(e.name)
		}
		img.Files[e.name] = e.file
	}
	return nil
}

// removeBelow deletes every entry under dir (not dir itself).
func (img *Image) removeBelow(dir string) {
	prefix := dir + "/"
	if dir == "." || dir == "" {
		prefix = ""
	}
	for n := range img.Files {
		if strings.HasPrefix(n, prefix) {
			delete(img.Files, n)
		}
	}
}

// addImplicitDirs records the parents that no layer named.
func (img *Image) addImplicitDirs() {
	for n := range img.Files {
		for d := path.Dir(n); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := img.Files[d]; ok {
				break
			}
			img.Files[d] = File{Type: 'd', Mode: 0o755, Implicit: true}
		}
	}
}

// clean makes a tar name relative to the root; "" is the root itself.
func clean(name string) string {
	n := path.Clean("/" + name)
	return strings.TrimPrefix(n, "/")
}

func digestOf(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return sum(h), nil
}

func sum(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
