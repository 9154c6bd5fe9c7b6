package builder

import (
	"fmt"

	"github.com/containerd/platforms"

	"github.com/stratabuild/strata/runners"
)

// hostPlatform is this machine's platform as images name it
// ("linux/amd64").
func hostPlatform() string { return runners.HostPlatform }

// normalizePlatform parses an OS/architecture[/variant] name
// ("linux/arm64", "linux/arm/v7", "arm64") into its canonical form.
func normalizePlatform(p string) (string, error) {
	spec, err := platforms.Parse(p)
	if err != nil {
		return "", fmt.Errorf("platform %q: %w", p, err)
	}
	return platforms.Format(platforms.Normalize(spec)), nil
}

// Platforms builds for the given platform instead of the host's
// ("linux/arm64", docker buildx build --platform): registry bases are
// taken for that platform from their index, each step's image says it
// in its config, and steps on another architecture run through the
// host's emulator (qemu-user-static registered with binfmt_misc; a build
// that needs one that is missing fails before any container starts). The
// platform enters every step's key, so runners of several architectures
// can share one cache. One platform per build for now: several, into an
// image index, is an error.
func Platforms(ps ...string) BuildOption {
	return named("Platforms", func(o *buildOptions) {
		switch len(ps) {
		case 0:
			o.err = fmt.Errorf("Platforms: no platform given")
			return
		case 1:
		default:
			o.err = fmt.Errorf("Platforms(%q): building several platforms into one image index is not offered yet: build each platform on its own", ps)
			return
		}
		p, err := normalizePlatform(ps[0])
		if err != nil {
			o.err = fmt.Errorf("Platforms: %w", err)
			return
		}
		if p == hostPlatform() {
			p = ""
		}
		o.platform = p
	})
}
