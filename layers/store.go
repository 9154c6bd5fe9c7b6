package layers

import (
	"context"
	"errors"
	"fmt"

	"go.podman.io/storage"
)

// CacheRepository is the image name under which cache entries are recorded in
// a containers/storage store: an entry for key sha256:<hex> is the name
// "localhost/strata-cache:<hex>" on the committed image.
const CacheRepository = "localhost/strata-cache"

// EntryName returns the image name that records key k in a store.
func EntryName(k Key) string { return CacheRepository + ":" + k.Hex() }

// NewStoreCache returns a Cache kept as image names in a containers/storage
// store. A lookup is one name lookup in the store's index, whatever the number
// of images.
func NewStoreCache(s storage.Store) Cache { return &storeCache{s: s} }

type storeCache struct{ s storage.Store }

func (c *storeCache) Get(_ context.Context, k Key) (Entry, error) {
	if !k.Valid() {
		return Entry{}, fmt.Errorf("invalid key %q: %w", k, ErrNotFound)
	}
	img, err := c.s.Image(EntryName(k))
	if err != nil {
		if errors.Is(err, storage.ErrImageUnknown) {
			return Entry{}, ErrNotFound
		}
		return Entry{}, fmt.Errorf("looking up cache entry %s: %w", k.Short(), err)
	}
	if img.TopLayer != "" {
		if _, err := c.s.Layer(img.TopLayer); err != nil {
			// The image lost its layers: treat as a miss.
			return Entry{}, fmt.Errorf("cache entry %s has no layer: %w", k.Short(), ErrNotFound)
		}
	}
	return Entry{ImageID: img.ID}, nil
}

func (c *storeCache) Put(_ context.Context, k Key, e Entry) error {
	if !k.Valid() {
		return fmt.Errorf("layers: invalid key %q", k)
	}
	// AddNames moves the name away from any image that held it before.
	if err := c.s.AddNames(e.ImageID, []string{EntryName(k)}); err != nil {
		return fmt.Errorf("recording cache entry %s: %w", k.Short(), err)
	}
	return nil
}
