package builder_test

import (
	"context"
	"fmt"
	"os"

	"github.com/stratabuild/strata/builder"
)

// Two CI runners share a layer cache in a registry: every runner pushes the
// steps it runs to the cache repository, and looks up the steps it misses
// there before running them. It needs a registry, so this example only
// compiles.
func ExampleCacheFrom() {
	img := builder.FromRegistry("debian:bookworm-slim").
		RunCommands([]string{"apt-get update", "apt-get install -y git"}).
		Cmd([]string{"git", "--version"})
	creds := builder.SecretFromEnv("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
	res, err := builder.Build(context.Background(), img,
		builder.CacheFrom("registry.example.com/team/strata-cache"),
		builder.CacheTo("registry.example.com/team/strata-cache"),
		builder.CacheAuth(creds),
		builder.WithOutput(os.Stdout))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, st := range res.Steps {
		fmt.Println(st.Index, st.Method, "remote:", st.Remote, "cached:", st.Cached)
	}
}
