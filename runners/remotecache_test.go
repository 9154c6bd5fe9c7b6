package runners

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/docker/distribution/registry/api/errcode"
	v2 "github.com/docker/distribution/registry/api/v2"
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
