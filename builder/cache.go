package builder

import (
	"context"

	"github.com/stratabuild/strata/runners"
)

// CacheEntry is one entry of the session's local layer cache (see
// runners.CacheEntry): its key, image, size and creation time.
type CacheEntry = runners.CacheEntry

// PruneOptions says which entries PruneCache removes (see
// runners.PruneOptions). Its zero value removes every entry that is not
// in use.
type PruneOptions = runners.PruneOptions

// PruneReport says what PruneCache removed.
type PruneReport = runners.PruneReport

// CacheEntries lists the entries of the local layer cache in the
// session's store, oldest first. It reads the store's names, so it lists
// nothing when the session was opened WithCache with another cache.
func (s *Session) CacheEntries() ([]CacheEntry, error) { return s.rt.CacheEntries() }

// PruneCache removes local cache entries, oldest first, until opts holds,
// then deletes the images left without a name. It never deletes an image
// that has a tag, that another image or a container is built on, or whose
// step a build (in this process or another on the same store) is running
// now. Builds can run while it prunes; a step whose entry was removed just
// before a build looked it up runs again.
func (s *Session) PruneCache(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	return s.rt.PruneCache(ctx, opts)
}
