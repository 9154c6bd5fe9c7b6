package runners

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.podman.io/storage"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/layers"
)

// CacheEntry is one entry of the local layer cache: an image named
// "localhost/strata-cache:<key hex>" in the store.
type CacheEntry struct {
	// Key is the step's cache key, "sha256:<hex>".
	Key layers.Key
	// ImageID is the image the entry names.
	ImageID string
	// Size is the uncompressed size of the image's top layer (what the step
	// added), in bytes; the layers below it belong to earlier entries.
	Size int64
	// Created is when the image was committed.
	Created time.Time
	// Tags are the image's names that are not cache entries (WithTag);
	// an image with tags is never deleted by PruneCache.
	Tags []string
}

// CacheEntries lists the local cache entries, oldest first.
func (r *Runtime) CacheEntries() ([]CacheEntry, error) {
	imgs, err := r.store.Images()
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	ls, err := r.store.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	size := map[string]int64{}
	for _, l := range ls {
		size[l.ID] = max(l.UncompressedSize, 0)
	}
	var out []CacheEntry
	for _, img := range imgs {
		var tags []string
		var keys []layers.Key
		for _, n := range img.Names {
			if hex, ok := strings.CutPrefix(n, layers.CacheRepository+":"); ok {
				keys = append(keys, layers.Key("sha256:"+hex))
			} else {
				tags = append(tags, n)
			}
		}
		for _, k := range keys {
			out = append(out, CacheEntry{Key: k, ImageID: img.ID, Size: size[img.TopLayer], Created: img.Created, Tags: tags})
		}
	}
	slices.SortStableFunc(out, func(a, b CacheEntry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(string(a.Key), string(b.Key))
	})
	return out, nil
}

// PruneOptions says which cache entries PruneCache removes. An entry is
// removed when it is older than OlderThan, and then the oldest entries are
// removed until the entries left total at most MaxSize bytes.
type PruneOptions struct {
	// OlderThan removes entries created longer ago than this. 0: no age limit.
	OlderThan time.Duration
	// MaxSize is the most bytes the entries left may hold. Negative: no size
	// limit; 0 removes every entry that is not in use.
	MaxSize int64
	// Now is the time ages are measured from. Default: time.Now().
	Now time.Time
}

// PruneReport says what PruneCache did.
type PruneReport struct {
	// Removed are the entries whose names were removed.
	Removed []CacheEntry
	// Busy are entries that a build holds the key lock of (it is running
	// that step now); they were left alone.
	Busy []CacheEntry
	// DeletedImages are the images deleted from the store: images that held
	// only removed entry names, no tag, and were not the base of another
	// image or a container.
	DeletedImages []string
	// FreedBytes is the size of the layers deleted with them.
	FreedBytes int64
	// Left are the entries that remain and their total size.
	Left      int
	LeftBytes int64
}

// PruneCache removes local cache entries as opts says, oldest first, then
// deletes the images left with no name. It never deletes an image that has
// a tag, that another image or a container is built on, or whose entry is
// locked by a build that is running that step (the store-wide key lock
// that builds hold from a miss until the entry is recorded): each entry's
// key lock is tried without waiting and busy entries are skipped.
func (r *Runtime) PruneCache(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	entries, err := r.CacheEntries()
	if err != nil {
		return rep, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	var chosen []CacheEntry
	left := entries[:0:0]
	for _, e := range entries {
		old := opts.OlderThan > 0 && now.Sub(e.Created) > opts.OlderThan
		big := opts.MaxSize >= 0 && total > opts.MaxSize
		if old || big {
			chosen = append(chosen, e)
			total -= e.Size
			continue
		}
		left = append(left, e)
	}
	// Images whose names this prune removed, by ID, with the key they held.
	freed := map[string]layers.Key{}
	for _, e := range chosen {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		unlock, ok, err := r.tryLockKey(e.Key.Hex())
		if err != nil {
			return rep, err
		}
		if !ok {
			rep.Busy = append(rep.Busy, e)
			left = append(left, e)
			continue
		}
		err = r.store.RemoveNames(e.ImageID, []string{layers.EntryName(e.Key)})
		unlock()
		if err != nil {
			if errors.Is(err, storage.ErrImageUnknown) {
				continue
			}
			return rep, fmt.Errorf("removing cache entry %s: %w", e.Key.Short(), err)
		}
		rep.Removed = append(rep.Removed, e)
		freed[e.ImageID] = e.Key
	}
	// Delete the unnamed images, children first: deleting one can make its
	// parent deletable, so go round until nothing more can be deleted.
	for progress := true; progress && len(freed) > 0; {
		progress = false
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		ls, err := r.store.Layers()
		if err != nil {
			return rep, fmt.Errorf("listing layers: %w", err)
		}
		children := map[string]int{}
		size := map[string]int64{}
		for _, l := range ls {
			children[l.Parent]++
			size[l.ID] = max(l.UncompressedSize, 0)
		}
		for _, id := range sortedIDs(freed) {
			key := freed[id]
			deleted, drop, err := r.deleteUnnamed(id, key, children)
			if err != nil {
				return rep, err
			}
			if drop {
				delete(freed, id)
			}
			if deleted != nil {
				progress = true
				rep.DeletedImages = append(rep.DeletedImages, id)
				for _, l := range deleted {
					rep.FreedBytes += size[l]
				}
				break // the layer tree changed: list it again
			}
		}
	}
	for _, e := range left {
		rep.LeftBytes += e.Size
	}
	rep.Left = len(left)
	return rep, nil
}

// deleteUnnamed deletes image id if it still has no name and nothing is
// built on it, holding the key lock of the entry it held. drop says that id
// needs no further look (deleted, named again, gone, or in use by a
// container).
func (r *Runtime) deleteUnnamed(id string, key layers.Key, children map[string]int) (deleted []string, drop bool, err error) {
	unlock, ok, err := r.tryLockKey(key.Hex())
	if err != nil || !ok {
		// A build is recording this key again: it may use the image.
		return nil, true, err
	}
	defer unlock()
	img, err := r.store.Image(id)
	if err != nil {
		return nil, true, nil
	}
	if len(img.Names) > 0 {
		return nil, true, nil // named again meanwhile (a build recorded it)
	}
	if img.TopLayer != "" && children[img.TopLayer] > 0 {
		return nil, false, nil // another image or a container is built on it
	}
	ls, err := r.store.DeleteImage(id, true)
	switch {
	case err == nil:
		return ls, true, nil
	case errors.Is(err, storage.ErrImageUsedByContainer), errors.Is(err, storage.ErrLayerUsedByContainer):
		return nil, true, nil
	case errors.Is(err, storage.ErrLayerHasChildren), errors.Is(err, storage.ErrLayerUsedByImage):
		return nil, false, nil
	case errors.Is(err, storage.ErrImageUnknown), errors.Is(err, storage.ErrNotAnImage):
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("deleting image %s: %w", id[:min(12, len(id))], err)
}

func sortedIDs(m map[string]layers.Key) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// tryLockKey takes the key lock of LockKey and the use lock of ShareKey,
// both exclusive, without waiting; ok is false when a build holds either
// (it runs that step, or uses its entry).
func (r *Runtime) tryLockKey(hex string) (unlock func(), ok bool, err error) {
	u1, ok, err := r.tryLock(hex + ".lock")
	if err != nil || !ok {
		return nil, ok, err
	}
	u2, ok, err := r.tryLock(hex + ".use")
	if err != nil || !ok {
		u1()
		return nil, ok, err
	}
	return func() { u2(); u1() }, true, nil
}

func (r *Runtime) tryLock(name string) (unlock func(), ok bool, err error) {
	hex := name
	dir := filepath.Join(r.runRoot, keysDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("locking key %s: %w", hex, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, true, nil
}
