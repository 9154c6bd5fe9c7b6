package builder

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"

	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// The remote (registry) layer cache. Entries are images tagged
// <repo>:<key hex>; the format is documented in layers/remote.go.

// remoteOptions are the Build options of the remote cache.
type remoteOptions struct {
	from []string
	to   string
	auth *types.DockerAuthConfig
	err  error
}

// CacheFrom looks up steps that miss the local cache in the cache
// repositories repos ("registry.example.com/team/cache", no tag), in order,
// before running them. A hit is pulled into the store (only the layers the
// store lacks are downloaded), recorded in the local cache and reported as
// REMOTE (StepResult.Remote). A repository that fails (unreachable,
// credentials refused, a blob that does not match its digest) is named once
// in the progress output and not asked again during this build; the step
// runs locally. Credentials come from CacheAuth, or else from auth.json;
// plain-HTTP registries need WithInsecureRegistries. Default: none.
func CacheFrom(repos ...string) BuildOption {
	return named("CacheFrom", func(o *buildOptions) {
		for _, r := range repos {
			n, err := runners.ParseCacheRepo(r)
			if err != nil {
				o.remote.err = err
				return
			}
			o.remote.from = append(o.remote.from, n)
		}
	})
}

// CacheTo pushes the result of every step this build runs (or imports, for
// the base) to the cache repository repo, tagged by the step's key, for
// CacheFrom in other builds and on other machines. Pushes run in the
// background, one at a time in step order, while later steps run; Build
// waits for them before it returns. A failed push never fails the build:
// it is named once in the progress output and the remaining pushes of the
// build are skipped. Credentials as for CacheFrom. Default: no push.
func CacheTo(repo string) BuildOption {
	return named("CacheTo", func(o *buildOptions) {
		n, err := runners.ParseCacheRepo(repo)
		if err != nil {
			o.remote.err = err
			return
		}
		o.remote.to = n
	})
}

// CacheAuth uses the credentials in secret (its REGISTRY_USERNAME and
// REGISTRY_PASSWORD variables) for the CacheFrom and CacheTo repositories.
// Its values are redacted from every note that strata prints. Default:
// auth.json.
func CacheAuth(secret Secret) BuildOption {
	return named("CacheAuth", func(o *buildOptions) {
		var bo baseOptions
		WithRegistryAuth(secret).applyBase(&bo)
		if bo.err != nil {
			o.remote.err = bo.err
			return
		}
		o.remote.auth = bo.auth
	})
}

// remoteCache is one build's use of the remote cache. Its methods do
// nothing on a nil *remoteCache (no CacheFrom, no CacheTo).
type remoteCache struct {
	s    *Session
	ctx  context.Context
	from []string
	to   string
	auth *types.DockerAuthConfig
	pr   *progress
	red  *redactor

	mu   sync.Mutex
	dead map[string]bool // cache-from repositories given up on in this build

	jobs     chan pushJob
	done     chan struct{}
	stopOnce sync.Once
}

type pushJob struct {
	key layers.Key
	id  string
}

// newRemoteCache returns the build's remote cache, or nil when the build
// uses none. The pushes run with ctx.
func (s *Session) newRemoteCache(ctx context.Context, o remoteOptions, pr *progress, steps int) (*remoteCache, error) {
	if o.err != nil {
		return nil, o.err
	}
	if len(o.from) == 0 && o.to == "" {
		return nil, nil
	}
	rc := &remoteCache{
		s: s, ctx: ctx, from: o.from, to: o.to, auth: o.auth, pr: pr,
		red:  authRedactor(o.auth),
		dead: map[string]bool{},
	}
	if rc.to != "" {
		rc.jobs = make(chan pushJob, steps+1)
		rc.done = make(chan struct{})
		go rc.pushLoop()
	}
	return rc, nil
}

// fetch looks st up in each CacheFrom repository in order and, on a hit,
// records the pulled image in the session's cache and returns its ID. The
// caller holds st's key claim and lock. A forced step is never fetched.
func (rc *remoteCache) fetch(ctx context.Context, st PlannedStep, forced bool) (string, bool) {
	if rc == nil || forced || (st.base != nil && st.base.Kind == runners.BaseScratch) {
		return "", false
	}
	for _, repo := range rc.from {
		rc.mu.Lock()
		dead := rc.dead[repo]
		rc.mu.Unlock()
		if dead {
			continue
		}
		id, err := rc.s.rt.PullCacheEntry(ctx, repo, st.Key.Hex(), rc.auth)
		if errors.Is(err, runners.ErrCacheMiss) {
			continue
		}
		if err == nil {
			err = rc.s.cache.Put(ctx, st.Key, layers.Entry{ImageID: id})
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", false
			}
			rc.mu.Lock()
			rc.dead[repo] = true
			rc.mu.Unlock()
			rc.note("cache-from %s: %s; running steps locally", repo, rc.describe(err))
			continue
		}
		return id, true
	}
	return "", false
}

// store queues the push of st's result, image id, to the CacheTo
// repository.
func (rc *remoteCache) store(st PlannedStep, id string) {
	if rc == nil || rc.to == "" || id == "" {
		return
	}
	rc.jobs <- pushJob{key: st.Key, id: id}
}

// pushLoop pushes the queued entries one at a time, in step order, so
// that each push finds its parent's blobs already in the registry. After
// a failure it prints one note and drops the rest.
func (rc *remoteCache) pushLoop() {
	defer close(rc.done)
	failed := false
	for j := range rc.jobs {
		if failed {
			continue
		}
		if err := rc.s.rt.PushCacheEntry(rc.ctx, rc.to, j.key.Hex(), j.id, rc.auth); err != nil {
			failed = true
			rc.note("cache-to %s: %s; no further steps of this build are pushed", rc.to, rc.describe(err))
		}
	}
}

// wait waits for the queued pushes. Build defers it, on every return.
func (rc *remoteCache) wait() {
	if rc == nil || rc.jobs == nil {
		return
	}
	rc.stopOnce.Do(func() { close(rc.jobs) })
	<-rc.done
}

// authRedactor redacts the password of a, as it is, URL-escaped, and in
// the base64 "user:password" form of basic auth. (Not the user name: a
// short one would mangle the notes.)
func authRedactor(a *types.DockerAuthConfig) *redactor {
	if a == nil || a.Password == "" {
		return nil
	}
	return &redactor{values: []string{a.Password, url.QueryEscape(a.Password),
		base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password))}}
}

func (rc *remoteCache) note(format string, args ...any) {
	rc.pr.printf("%s\n", rc.red.apply(fmt.Sprintf(format, args...)))
}

// describe says in a few words what went wrong, followed by the error
// (secret values redacted, on one line).
func (rc *remoteCache) describe(err error) string {
	what := "failed"
	var ua docker.ErrUnauthorizedForCredentials
	var ne net.Error
	msg := err.Error()
	low := strings.ToLower(msg)
	switch {
	case errors.As(err, &ua) || strings.Contains(low, "unauthorized") || strings.Contains(low, "authentication required") || strings.Contains(low, "denied"):
		what = "credentials refused"
	case strings.Contains(low, "digest") && (strings.Contains(low, "mismatch") || strings.Contains(low, "did not match")):
		what = "corrupted blob (digest mismatch)"
	case errors.As(err, &ne) || strings.Contains(low, "connection refused") || strings.Contains(low, "no such host") || strings.Contains(low, "pinging container registry"):
		what = "unreachable"
	}
	msg = strings.Join(strings.Fields(rc.red.apply(msg)), " ")
	return what + " (" + msg + ")"
}
