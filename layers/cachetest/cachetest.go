// Package cachetest is a conformance suite that every layers.Cache
// implementation runs.
package cachetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stratabuild/strata/layers"
)

// RunCacheTests runs the conformance suite against caches made by newCache.
// imageID, when set, returns an image ID that the cache may record (stores
// need real images); by default IDs are made up.
func RunCacheTests(t *testing.T, newCache func(t *testing.T) layers.Cache, imageID ...func(t *testing.T, i int) string) {
	id := func(t *testing.T, i int) string { return fmt.Sprintf("%064x", i) }
	if len(imageID) > 0 {
		id = imageID[0]
	}
	key := func(i int) layers.Key { return layers.Key(fmt.Sprintf("sha256:%064x", 1000+i)) }
	ctx := context.Background()

	t.Run("MissIsErrNotFound", func(t *testing.T) {
		c := newCache(t)
		if _, err := c.Get(ctx, key(1)); !errors.Is(err, layers.ErrNotFound) {
			t.Fatalf("Get of an unknown key: got %v, want ErrNotFound", err)
		}
	})
	t.Run("PutThenGet", func(t *testing.T) {
		c := newCache(t)
		want := id(t, 1)
		if err := c.Put(ctx, key(1), layers.Entry{ImageID: want}); err != nil {
			t.Fatal(err)
		}
		e, err := c.Get(ctx, key(1))
		if err != nil {
			t.Fatal(err)
		}
		if e.ImageID != want {
			t.Fatalf("got image %s, want %s", e.ImageID, want)
		}
		if _, err := c.Get(ctx, key(2)); !errors.Is(err, layers.ErrNotFound) {
			t.Fatalf("other key: got %v, want ErrNotFound", err)
		}
	})
	t.Run("PutReplaces", func(t *testing.T) {
		c := newCache(t)
		a, b := id(t, 1), id(t, 2)
		if err := c.Put(ctx, key(1), layers.Entry{ImageID: a}); err != nil {
			t.Fatal(err)
		}
		if err := c.Put(ctx, key(1), layers.Entry{ImageID: b}); err != nil {
			t.Fatal(err)
		}
		e, err := c.Get(ctx, key(1))
		if err != nil || e.ImageID != b {
			t.Fatalf("got %v, %v; want %s", e, err, b)
		}
	})
	t.Run("InvalidKeyRejected", func(t *testing.T) {
		c := newCache(t)
		err := c.Put(ctx, layers.Key("sha256:"+strings.Repeat("Z", 64)), layers.Entry{ImageID: id(t, 1)})
		if err == nil {
			t.Fatal("Put accepted an invalid key")
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		c := newCache(t)
		ids := make([]string, 8)
		for i := range ids {
			ids[i] = id(t, i)
		}
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if err := c.Put(ctx, key(i), layers.Entry{ImageID: ids[i]}); err != nil {
					t.Error(err)
				}
				if _, err := c.Get(ctx, key(i)); err != nil {
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
		for i := range ids {
			e, err := c.Get(ctx, key(i))
			if err != nil || e.ImageID != ids[i] {
				t.Errorf("key %d: got %v, %v", i, e, err)
			}
		}
	})
}
