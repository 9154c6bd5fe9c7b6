// Package builder is strata's public API: an image definition written in Go
// as an immutable chain of steps, in the style of Modal's modal.Image, and
// Build, which turns it into an OCI image rootless, one layer per step,
// skipping every step whose cache entry exists.
//
//	img := builder.FromArchive("rootfs.tar").
//		RunCommands([]string{"mkdir -p /app"}).
//		AddLocalDir("./src", "/app/src", builder.Copy()).
//		Cmd([]string{"/app/src/run.sh"})
//	res, err := builder.Build(ctx, img, builder.WithTag("myapp"))
//
// An Image is a value: every chain method returns a new Image that shares its
// prefix, and never fails. An invalid argument is recorded on the step and
// returned by Build or Plan, with the step named ("step 3 (RunCommands): ...").
//
// # Start-up
//
// A program that builds must call InitReexec first thing in main (Buildah
// re-executes the program for some operations, and an ordinary user's build
// runs inside a user namespace):
//
//	func main() {
//		if builder.InitReexec() {
//			return
//		}
//		...
//	}
//
// # Build requirements
//
// cgo is required, with the build tags
// "containers_image_openpgp exclude_graphdriver_btrfs seccomp" (libseccomp-dev
// installed), runc in PATH, and for an ordinary user newuidmap/newgidmap with
// ranges in /etc/subuid and /etc/subgid.
//
// # Cache
//
// Each step's key (see package layers) digests its parent's key, the step's
// kind and arguments, the options that change its result, and the content of
// its local inputs. Local files added without Copy() are placed in layers
// after every other step, so editing them never invalidates a build step.
// ForceBuild() on a step, or STRATA_FORCE_BUILD=1 for all, runs it and every
// step after it again.
//
// This package orchestrates; it never touches Buildah directly (package
// runners does).
package builder
