package mount

import (
	"bufio"
	"encoding/gob"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// DigestCache remembers regular files' content digests by their absolute
// path and what stat says of them (device, inode, size, modification and
// change times), as git's index does, so that a walk of an unchanged tree
// reads no file contents. A file whose times are within RacyMargin of the
// walk's start is never remembered: a change made in the same clock tick
// as the one before it would keep its times. The change time moves on
// every write, chmod, chown and rename and cannot be set by a program, so
// tools that restore the modification time cannot hide a change.
//
// A DigestCache is safe for concurrent use. Save writes it atomically;
// processes sharing one file may lose each other's newest entries (it is
// a cache: a lost entry costs a read of the file).
type DigestCache struct {
	path string
	once sync.Once

	mu      sync.Mutex
	entries map[string]statDigest
	used    map[string]bool
	dirty   bool
}

// RacyMargin is how old (before the walk started) a file's modification
// and change times must be for its digest to be remembered: longer than
// any kernel's timestamp tick.
const RacyMargin = 250 * time.Millisecond

// maxDigestEntries bounds the cache file: past it, Save keeps only the
// entries this process used.
const maxDigestEntries = 1 << 20

// digestCacheVersion changes when the file's layout or meaning does; a
// file of another version is ignored.
const digestCacheVersion = 1

type statDigest struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // ns since the epoch
	Digest       string
}

type digestCacheFile struct {
	Version int
	Entries map[string]statDigest
}

// OpenDigestCache returns the cache kept at path, read when it is first
// used; a missing, unreadable or foreign file gives an empty cache (never
// an error: it only costs time).
func OpenDigestCache(path string) *DigestCache {
	return &DigestCache{path: path, entries: map[string]statDigest{}, used: map[string]bool{}}
}

// load reads the file once.
func (c *DigestCache) load() {
	c.once.Do(func() {
		f, err := os.Open(c.path)
		if err != nil {
			return
		}
		defer f.Close()
		var df digestCacheFile
		if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&df); err == nil && df.Version == digestCacheVersion && df.Entries != nil {
			c.mu.Lock()
			for p, e := range c.entries { // learnt before the load
				df.Entries[p] = e
			}
			c.entries = df.Entries
			c.mu.Unlock()
		}
	})
}

// Len is how many digests the cache holds.
func (c *DigestCache) Len() int {
	c.load()
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Save writes the cache back when it learnt something, through a
// temporary file renamed into place.
func (c *DigestCache) Save() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	entries := c.entries
	if len(entries) > maxDigestEntries {
		entries = map[string]statDigest{}
		for p := range c.used {
			if e, ok := c.entries[p]; ok {
				entries[p] = e
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".digests-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	if err := gob.NewEncoder(w).Encode(digestCacheFile{Version: digestCacheVersion, Entries: entries}); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return err
	}
	c.dirty = false
	return nil
}

// statOf returns what the cache compares of info, false when info has no
// Unix stat.
func statOf(info fs.FileInfo) (statDigest, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return statDigest{}, false
	}
	return statDigest{
		Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}, true
}

// digest returns the content digest of the regular file at p, whose
// lstat is info, from the cache when nothing stat says has changed, else
// by reading it (and remembering it when its times are older than
// start-RacyMargin).
func (c *DigestCache) digest(p string, info fs.FileInfo, start time.Time) (string, error) {
	if c == nil {
		return fileDigest(p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return fileDigest(p)
	}
	st, ok := statOf(info)
	if !ok {
		return fileDigest(p)
	}
	c.load()
	c.mu.Lock()
	e, hit := c.entries[abs]
	c.used[abs] = true
	c.mu.Unlock()
	if hit && e.Dev == st.Dev && e.Ino == st.Ino && e.Size == st.Size && e.Mtime == st.Mtime && e.Ctime == st.Ctime {
		return e.Digest, nil
	}
	d, err := fileDigest(p)
	if err != nil {
		return "", err
	}
	limit := start.Add(-RacyMargin).UnixNano()
	if st.Mtime < limit && st.Ctime < limit {
		st.Digest = d
		c.mu.Lock()
		c.entries[abs] = st
		c.dirty = true
		c.mu.Unlock()
	}
	return d, nil
}
