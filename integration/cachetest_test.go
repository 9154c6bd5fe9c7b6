package integration

import (
	"testing"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/layers/cachetest"
)

func cachetestRun(t *testing.T, newCache func(t *testing.T) layers.Cache, id func(t *testing.T, i int) string) {
	cachetest.RunCacheTests(t, newCache, id)
}
