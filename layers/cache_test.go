package layers_test

import (
	"testing"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/layers/cachetest"
)

func TestMemoryCache(t *testing.T) {
	cachetest.RunCacheTests(t, func(t *testing.T) layers.Cache { return layers.NewMemory() })
}
