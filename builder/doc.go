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
// # Signals
//
// A program needs nothing more than InitReexec to be stopped cleanly. While
// a Build runs, SIGINT, SIGTERM and SIGHUP (what a terminal, a CI runner,
// docker stop, Kubernetes and systemd send) cancel it: the running step is
// stopped, nothing is recorded or tagged for it, no working container or run
// directory is left, and background pushes are abandoned (a half-sent push
// leaves no tag). When every build that was running has cleaned up, the
// process exits with the status a shell reports for the signal (130, 143
// or 129), as the signal would have ended it without strata. A second
// signal, a second or more after the first, exits at once. After each
// Build these signals have their default action again (Buildah can leave a
// handler registered that would swallow them). A program that handles
// them itself (signal.NotifyContext, a SIGHUP to reload) passes
// WithoutSignalHandling and cancels the context it gives Build; Build's
// error then satisfies errors.Is(err, context.Canceled).
//
// However the program ends (SIGKILL, OOM, os.Exit), nothing of its build
// outlives it by more than a moment: the user-namespace copy of the program
// dies with the process that started it (the kernel's parent-death signal,
// checked after it is set), and every open Session has a guard process, in
// a session of its own, that notices the program's death, stops the step
// running under the OCI runtime and removes its working container and run
// directory. The next Open reaps anything else a killed build left.
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
// # Attestations
//
// Every Push and every tagged ExportTo("oci:DIR:TAG") gets a SLSA
// provenance made from the steps' recipes (package attest; NoProvenance
// leaves it out), SBOM adds an SPDX SBOM (syft, through the sbom module's
// strata-sbom command), and SignBy signs pushed images and their
// attestations with a sigstore key. Each is an OCI 1.1 artifact whose
// subject is the image manifest (one per platform manifest of an index),
// listed in Export.Attestations. Session.Verify reads a provenance back
// and recomputes every step key from the source.
//
// This package orchestrates; it never touches Buildah directly (package
// runners does).
package builder
