package runners

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/docker/distribution/registry/api/errcode"
	v2 "github.com/docker/distribution/registry/api/v2"
	"go.podman.io/image/v5/docker"
)

func TestParseCacheRepo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, err string }{
		{in: "127.0.0.1:5000/cache", want: "127.0.0.1:5000/cache"},
		{in: "docker://registry.example.com/team/cache", want: "registry.example.com/team/cache"},
		{in: "cache", want: "docker.io/library/cache"},
		{in: "127.0.0.1:5000/cache:v1", err: "without a tag"},
		{in: "127.0.0.1:5000/cache@sha256:" + strings.Repeat("a", 64), err: "without a tag"},
		{in: "Bad Repo", err: "cache repository"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCacheRepo(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCacheEntryRef(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("0a", 32)
	r, err := cacheEntryRef("127.0.0.1:5000/cache", hex)
	if err != nil || r.String() != "127.0.0.1:5000/cache:"+hex {
		t.Fatalf("got %v, %v", r, err)
	}
	for _, bad := range []string{"", "xyz", strings.Repeat("A", 64), strings.Repeat("a", 63)} {
		if _, err := cacheEntryRef("127.0.0.1:5000/cache", bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

func TestClassifyCacheErr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		miss bool
	}{
		{"manifest unknown", v2.ErrorCodeManifestUnknown.WithMessage("manifest unknown"), true},
		{"blob unknown", fmt.Errorf("writing blob: %w", v2.ErrorCodeBlobUnknown.WithDetail("sha256:x")), true},
		{"repository unknown", v2.ErrorCodeNameUnknown.WithMessage("repository name not known to registry"), true},
		{"plain 404", errors.New(`StatusCode: 404, "not found"`), true},
		{"unauthorized", errcode.ErrorCodeUnauthorized.WithMessage("authentication required"), false},
		{"refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := classifyCacheErr("r:t", tc.err)
			if got := errors.Is(err, ErrCacheMiss); got != tc.miss {
				t.Fatalf("%v: miss = %v, want %v", err, got, tc.miss)
			}
			if !errors.Is(err, tc.err) && !strings.Contains(err.Error(), tc.err.Error()) {
				t.Fatalf("%v does not wrap %v", err, tc.err)
			}
		})
	}
}

// TestTransientCacheErr: the pulls that PullCacheEntry tries again are
// the ones that may pass; a miss, refused credentials, a registry that
// is not there and a corrupted blob are given up at once.
func TestTransientCacheErr(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"server error", classifyCacheErr("r:t", errcode.ErrorCodeUnknown.WithMessage("unknown error")), true},
		{"connection reset", classifyCacheErr("r:t", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{"500 on a blob another writer stores", fmt.Errorf("writing blob: %w", docker.UnexpectedHTTPStatusError{StatusCode: 500}), true},
		{"503", fmt.Errorf("writing blob: %w", docker.UnexpectedHTTPStatusError{StatusCode: 503}), true},
		{"404 without a body", fmt.Errorf("writing blob: %w", docker.UnexpectedHTTPStatusError{StatusCode: 404}), false},
		{"miss", classifyCacheErr("r:t", v2.ErrorCodeManifestUnknown.WithMessage("manifest unknown")), false},
		{"unauthorized", classifyCacheErr("r:t", errcode.ErrorCodeUnauthorized.WithMessage("authentication required")), false},
		{"connection refused", classifyCacheErr("r:t", refused), false},
		{"digest mismatch", classifyCacheErr("r:t", errors.New("Digest did not match, expected sha256:a, got sha256:b")), false},
		{"cancelled", classifyCacheErr("r:t", context.Canceled), false},
	} {
		if got := transientCacheErr(tc.err); got != tc.want {
			t.Errorf("%s (%v): transient = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestRetryTransient: a push or pull that fails in a way that may pass is
// tried three times in all and succeeds if a later try does; a lasting
// failure is given up after one try, and a cancelled context stops the
// waiting.
func TestRetryTransient(t *testing.T) {
	t.Parallel()
	serverErr := fmt.Errorf("writing blob: %w", docker.UnexpectedHTTPStatusError{StatusCode: 500})
	miss := classifyCacheErr("r:t", v2.ErrorCodeManifestUnknown.WithMessage("manifest unknown"))
	for _, tc := range []struct {
		name      string
		errs      []error // what each try returns; nil after the list
		wantCalls int
		wantErr   error
	}{
		{"passes on the third try", []error{serverErr, serverErr}, 3, nil},
		{"gives up after three", []error{serverErr, serverErr, serverErr, serverErr}, 3, serverErr},
		{"miss is not retried", []error{miss}, 1, miss},
		{"success at once", nil, 1, nil},
	} {
		calls := 0
		err := retryTransient(context.Background(), func() error {
			calls++
			if calls <= len(tc.errs) {
				return tc.errs[calls-1]
			}
			return nil
		})
		if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("%s: %d calls, err %v; want %d calls, err %v", tc.name, calls, err, tc.wantCalls, tc.wantErr)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := retryTransient(ctx, func() error { calls++; return serverErr })
	if calls != 1 || !errors.Is(err, serverErr) {
		t.Errorf("cancelled: %d calls, err %v; want 1 call and the error", calls, err)
	}
}
