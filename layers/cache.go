package layers

import (
	"context"
	"errors"
	"sync"
)

// ErrNotFound is returned by Cache.Get when no entry exists for a key.
var ErrNotFound = errors.New("layers: cache entry not found")

// Entry is what the cache remembers about a finished step.
type Entry struct {
	// ImageID is the ID of the committed image that holds the step's result.
	ImageID string
}

// Cache maps step keys to committed images.
//
// Get returns ErrNotFound (possibly wrapped) when there is no usable entry.
// Put records an entry; recording an existing key replaces it. Implementations
// are safe for concurrent use.
type Cache interface {
	Get(ctx context.Context, k Key) (Entry, error)
	Put(ctx context.Context, k Key, e Entry) error
}

// NewMemory returns an empty in-memory Cache.
func NewMemory() Cache { return &memory{m: map[Key]Entry{}} }

type memory struct {
	mu sync.Mutex
	m  map[Key]Entry
}

func (c *memory) Get(_ context.Context, k Key) (Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return Entry{}, ErrNotFound
	}
	return e, nil
}

func (c *memory) Put(_ context.Context, k Key, e Entry) error {
	if !k.Valid() {
		return errors.New("layers: invalid key " + string(k))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = e
	return nil
}
