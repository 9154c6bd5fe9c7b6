// Command strata-sbom prints the SPDX 2.3 JSON SBOM of a root filesystem
// (package sbom). strata build --sbom runs it on the image it built.
//
//	strata-sbom [--name NAME] [--version VERSION] [--tool NAME --tool-version V] DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/stratabuild/strata/sbom"
)

func main() {
	var o sbom.Options
	flag.StringVar(&o.Name, "name", "image", "what the SBOM describes (the image's reference)")
	flag.StringVar(&o.Version, "version", "", "its version (the manifest digest)")
	flag.StringVar(&o.Tool, "tool", "", "the builder, for the SBOM's creation info")
	flag.StringVar(&o.ToolVersion, "tool-version", "", "the builder's version")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: strata-sbom [--name NAME] [--version V] DIR")
		os.Exit(2)
	}
	b, err := sbom.Generate(context.Background(), flag.Arg(0), o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata-sbom: %v\n", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(b); err != nil {
		fmt.Fprintf(os.Stderr, "strata-sbom: %v\n", err)
		os.Exit(1)
	}
}
