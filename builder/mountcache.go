package builder

import (
	"context"
	"errors"
	"maps"

	"os"
	"slices"
	"sync"

	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/runners"
)

// Cache mounts shared through a registry: one image per mount id, tagged
// "mount-<hash of id>" (runners/mountcache.go has the format).

type mountCacheOptions struct {
	to, from string
	limit    int64
	err      error
}

// DefaultCacheMountsLimit is the largest cache mount CacheMountsTo saves
// unless CacheMountsLimit says otherwise: 1 GiB.
const DefaultCacheMountsLimit = 1 << 30

// CacheMountsTo saves the content of every cache mount (CacheMount, RUN
// --mount=type=cache) used by a step that ran in this build to the
// repository repo after the build, one layer per mount id, so that clean
// runners can restore it with CacheMountsFrom. A mount whose content did
// not change is not sent at all; a changed one sends only its new layer.
// Mount content is never part of an image or a cache key. Credentials as
// for CacheTo (CacheAuth or auth.json). Failures are noted, never fatal.
// Default: cache mounts stay on this machine.
func CacheMountsTo(repo string) BuildOption {
	return named("CacheMountsTo", func(o *buildOptions) {
		n, err := runners.ParseCacheRepo(repo)
		if err != nil {
			o.mounts.err = err
			return
		}
		o.mounts.to = n
	})
}

// CacheMountsFrom restores a cache mount that is empty on this machine
// from repo before the first step that uses it runs. A missing or corrupt
// copy means an empty cache, with a note in the progress output. Default:
// no restore.
func CacheMountsFrom(repo string) BuildOption {
	return named("CacheMountsFrom", func(o *buildOptions) {
		n, err := runners.ParseCacheRepo(repo)
		if err != nil {
			o.mounts.err = err
			return
		}
		o.mounts.from = n
	})
}

// CacheMountsLimit caps the size of a cache mount that CacheMountsTo
// saves (bigger ones are skipped with a note). Default: 1 GiB.
func CacheMountsLimit(bytes int64) BuildOption {
	return named("CacheMountsLimit", func(o *buildOptions) { o.mounts.limit = bytes })
}

// mountSync restores and saves one build's cache mounts. Its methods do
// nothing on a nil *mountSync.
type mountSync struct {
	s    *Session
	o    mountCacheOptions
	auth *types.DockerAuthConfig
	pr   *progress
	red  *redactor

	mu       sync.Mutex
	used     map[string]string // id -> dir, for mounts of steps that ran
	restored map[string]string // id -> layer digest restored from
}

func (s *Session) newMountSync(o mountCacheOptions, auth *types.DockerAuthConfig, pr *progress) (*mountSync, error) {
	if o.err != nil {
		return nil, o.err
	}
	if o.to == "" && o.from == "" {
		return nil, nil
	}
	if o.limit == 0 {
		o.limit = DefaultCacheMountsLimit
	}
	return &mountSync{s: s, o: o, auth: auth, pr: pr, red: authRedactor(auth),
		used: map[string]string{}, restored: map[string]string{}}, nil
}

// prepare restores the cache mounts of a step about to run.
func (m *mountSync) prepare(ctx context.Context, st PlannedStep) {
	if m == nil {
		return
	}
	dirs := map[string]string{}
	for _, c := range st.cacheMounts {
		if _, ok := dirs[c.id]; !ok {
			dirs[c.id] = c.dir
		}
	}
	for _, id := range slices.Sorted(maps.Keys(dirs)) {
		dir := dirs[id]
		m.mu.Lock()
		_, seen := m.used[id]
		m.used[id] = dir
		m.mu.Unlock()
		if seen || m.o.from == "" {
			continue
		}
		if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
			continue // kept from an earlier build here: newer than any copy
		}
		d, err := m.s.rt.PullCacheMount(ctx, m.o.from, id, dir, m.auth)
		switch {
		case err == nil:
			m.mu.Lock()
			m.restored[id] = d
			m.mu.Unlock()
			m.pr.printf("cache mount %s: restored from %s\n", id, m.o.from)
		case errors.Is(err, runners.ErrCacheMiss):
			m.pr.printf("cache mount %s: no copy in %s; starting empty\n", id, m.o.from)
		default:
			m.pr.printf("cache mount %s: %s; starting empty\n", id, m.red.apply(err.Error()))
		}
	}
}

// finish saves the cache mounts used by steps that ran.
func (m *mountSync) finish(ctx context.Context) {
	if m == nil || m.o.to == "" {
		return
	}
	m.mu.Lock()
	ids := make([]string, 0, len(m.used))
	for id := range m.used {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		r, err := m.s.rt.PushCacheMount(ctx, m.o.to, id, m.used[id], m.auth, m.o.limit, m.restored[id])
		switch {
		case errors.Is(err, runners.ErrMountTooLarge):
			m.pr.printf("cache mount %s: not saved: %v (see CacheMountsLimit)\n", id, err)
		case err != nil:
			m.pr.printf("cache mount %s: not saved: %s\n", id, m.red.apply(err.Error()))
		case r.Pushed:
			m.pr.printf("cache mount %s: saved to %s (%d bytes)\n", id, m.o.to, r.Bytes)
		default:
			m.pr.printf("cache mount %s: unchanged, nothing sent\n", id)
		}
	}
}
