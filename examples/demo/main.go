// Command demo builds a small image with strata and prints each step with its
// cache state. Run it twice: the second build takes every step from the cache.
//
//	go run -tags '...' ./examples/demo -base busybox-rootfs.tar -app ./examples/demo/app
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/stratabuild/strata/builder"
)

func main() {
	if builder.InitReexec() {
		return
	}
	base := flag.String("base", "", "rootfs tarball, oci-archive or docker-archive to start from")
	app := flag.String("app", "examples/demo/app", "local directory copied to /app")
	export := flag.String("export", "", "optional export destination, e.g. oci:/tmp/demo-layout")
	flag.Parse()
	if *base == "" {
		fmt.Fprintln(os.Stderr, "demo: -base is required")
		os.Exit(2)
	}
	img := builder.FromArchive(*base).
		Env(map[string]string{"GREETING": "hello from strata"}).
		RunCommands([]string{"mkdir -p /app /data", "echo built > /data/marker"}).
		AddLocalDir(*app, "/app", builder.Copy(), builder.Ignore("*.tmp")).
		RunCommands([]string{"sh /app/check.sh"}).
		Workdir("/app").
		Cmd([]string{"sh", "/app/run.sh"})

	var opts []builder.BuildOption
	opts = append(opts, builder.WithOutput(os.Stdout), builder.WithTag("strata-demo"))
	if *export != "" {
		opts = append(opts, builder.ExportTo(*export))
	}
	res, err := builder.Build(context.Background(), img, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	for _, s := range res.Steps {
		state := "RUN   "
		if s.Cached {
			state = "CACHED"
		}
		fmt.Printf("step %d %-12s %s %6.2fs %s\n", s.Index, s.Method, state, s.Duration.Seconds(), s.Key.Short())
	}
	fmt.Printf("image %s (manifest %s) tagged %v\n", res.ImageID[:12], res.ManifestDigest, res.Tags)
}
