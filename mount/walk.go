package mount

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Entry is one file, directory or symlink of a walked source.
type Entry struct {
	// Path is slash-separated and relative to the source root ("." for the
	// root directory itself; the base name for a single-file source).
	Path string `json:"path"`
	// Type is "file", "dir", "symlink", or "other".
	Type string `json:"type"`
	// Mode holds the permission bits plus setuid/setgid/sticky.
	Mode uint32 `json:"mode"`
	// Target is a symlink's target.
	Target string `json:"target,omitempty"`
	// Digest is a regular file's content digest.
	Digest string `json:"digest,omitempty"`
	// Size is a regular file's size in bytes.
	Size int64 `json:"size,omitempty"`
	// RawPath and RawTarget hold Path and Target as bytes (base64 in the
	// digest's JSON) when they are not valid UTF-8, which JSON strings
	// cannot carry: Path and Target are then empty, so names that differ in
	// any byte never digest alike.
	RawPath   []byte `json:"raw_path,omitempty"`
	RawTarget []byte `json:"raw_target,omitempty"`
}

// Tree is the result of walking a source.
type Tree struct {
	// Entries in sorted path order.
	Entries []Entry
	// Digest covers all entries; see the package doc.
	Digest string
}

// WalkOption changes how Walk and WalkIn read files.
type WalkOption func(*walkOptions)

type walkOptions struct {
	cache *DigestCache
}

// WithDigestCache takes unchanged files' digests from c (and adds the
// ones it reads) instead of reading every file.
func WithDigestCache(c *DigestCache) WalkOption {
	return func(o *walkOptions) { o.cache = c }
}

// Walk reads the file or directory at src and returns its entries that the
// patterns do not ignore, with content digests. src must exist.
func Walk(src string, patterns []string, opts ...WalkOption) (*Tree, error) {
	m, err := NewMatcher(patterns)
	if err != nil {
		return nil, err
	}
	return walk(src, "", m, opts)
}

// WalkIn walks root/rel (rel slash-separated, relative to root) like Walk,
// but matches the patterns against paths relative to root, as a
// .dockerignore applies to a whole build context. Entry paths stay
// relative to root/rel.
func WalkIn(root, rel string, patterns []string, opts ...WalkOption) (*Tree, error) {
	m, err := NewMatcher(patterns)
	if err != nil {
		return nil, err
	}
	rel = filepath.ToSlash(filepath.Clean(rel))
	prefix := ""
	if rel != "." {
		prefix = rel + "/"
	}
	return walk(filepath.Join(root, filepath.FromSlash(rel)), prefix, m, opts)
}

// toHash is a regular file whose digest the walk still needs.
type toHash struct {
	entry int // index in entries
	path  string
	info  fs.FileInfo
}

func walk(src, prefix string, m *Matcher, opts []WalkOption) (*Tree, error) {
	var o walkOptions
	for _, opt := range opts {
		opt(&o)
	}
	start := time.Now()
	st, err := os.Lstat(src)
	if err != nil {
		return nil, fmt.Errorf("local input: %w", err)
	}
	var entries []Entry
	var files []toHash
	add := func(p, rel string, info fs.FileInfo) error {
		e, err := entryFor(p, rel, info)
		if err != nil {
			return err
		}
		if e.Type == "file" {
			files = append(files, toHash{entry: len(entries), path: p, info: info})
		}
		entries = append(entries, e)
		return nil
	}
	if !st.IsDir() {
		if err := add(src, filepath.Base(src), st); err != nil {
			return nil, err
		}
	} else {
		err = filepath.WalkDir(src, func(p string, d fs.DirEntry, werr error) error {
			if werr != nil {
				return fmt.Errorf("reading %s: %w", p, werr)
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if rel != "." {
				ign, err := m.Ignored(prefix + rel)
				if err != nil {
					return fmt.Errorf("matching %s: %w", rel, err)
				}
				if ign {
					if d.IsDir() && !m.hasExclusions() {
						return filepath.SkipDir
					}
					return nil
				}
			}
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			return add(p, rel, info)
		})
		if err != nil {
			return nil, err
		}
	}
	if err := hashFiles(entries, files, o.cache, start); err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	for i := range entries {
		e := &entries[i]
		if !utf8.ValidString(e.Path) {
			e.RawPath, e.Path = []byte(e.Path), ""
		}
		if !utf8.ValidString(e.Target) {
			e.RawTarget, e.Target = []byte(e.Target), ""
		}
	}
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return nil, err
		}
	}
	return &Tree{Entries: entries, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil
}

// hashFiles fills in the digests of files, several at a time; the first
// error (in walk order) is returned.
func hashFiles(entries []Entry, files []toHash, cache *DigestCache, start time.Time) error {
	workers := min(runtime.GOMAXPROCS(0)*2, len(files), 16)
	if workers <= 1 {
		for _, f := range files {
			d, err := cache.digest(f.path, f.info, start)
			if err != nil {
				return err
			}
			entries[f.entry].Digest = d
		}
		return nil
	}
	errs := make([]error, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				f := files[i]
				entries[f.entry].Digest, errs[i] = cache.digest(f.path, f.info, start)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *Matcher) hasExclusions() bool { return m != nil && m.pm.Exclusions() }

func entryFor(p, rel string, info fs.FileInfo) (Entry, error) {
	e := Entry{Path: rel, Mode: uint32(info.Mode().Perm())}
	if info.Mode()&fs.ModeSetuid != 0 {
		e.Mode |= 0o4000
	}
	if info.Mode()&fs.ModeSetgid != 0 {
		e.Mode |= 0o2000
	}
	if info.Mode()&fs.ModeSticky != 0 {
		e.Mode |= 0o1000
	}
	switch {
	case info.Mode().IsRegular():
		// The digest is filled in by hashFiles.
		e.Type = "file"
		e.Size = info.Size()
	case info.IsDir():
		e.Type = "dir"
	case info.Mode()&fs.ModeSymlink != 0:
		e.Type = "symlink"
		t, err := os.Readlink(p)
		if err != nil {
			return Entry{}, fmt.Errorf("reading link %s: %w", p, err)
		}
		e.Target = t
	default:
		e.Type = "other"
	}
	return e, nil
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// FileDigest returns the SHA-256 of the file at p, as "sha256:<hex>".
func FileDigest(p string) (string, error) { return fileDigest(p) }
