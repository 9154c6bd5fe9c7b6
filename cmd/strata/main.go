// Command strata builds OCI images rootless from a Dockerfile or a spec
// file (package spec), for CI: strata build, strata cache ls, strata cache
// prune. Run "strata help" for the flags and exit codes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/containerd/platforms"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/stratabuild/strata/attest"
	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/spec"
)

// Exit codes.
const (
	exitOK          = 0
	exitBuildFailed = 1
	exitUsage       = 2
	exitEnv         = 3
	exitInterrupted = 130
)

const usageText = `strata builds OCI images rootless.

Usage:
  strata build [flags] [CONTEXT]      build from CONTEXT/Containerfile or Dockerfile (-f) or a spec file (--spec)
  strata explain [flags] [CONTEXT]    say which steps a build would run, and why (a dry run)
  strata verify IMAGE [flags] [CONTEXT]
                                      recompute every step key of IMAGE's provenance from CONTEXT
  strata cache ls [--json]            list the local layer cache
  strata cache prune [--older-than DURATION] [--max-size SIZE]
                                      remove cache entries, oldest first
  strata help

Run "strata build -h" or "strata cache prune -h" for their flags.

Exit codes:
  0    success
  1    the build failed (a step failed; the error names the step)
  2    usage error: bad flags, spec file or Dockerfile syntax
  3    environment error: no runc, no subuid/subgid mapping, the store cannot be opened
  130  interrupted (SIGINT), 143 terminated (SIGTERM), 129 hangup (SIGHUP):
       the running step was stopped and cleaned up, nothing was recorded for it
       and nothing was pushed after the signal; a second signal (a second or
       more after the first) exits at once, and the build guard cleans up
`

func main() {
	if builder.InitReexec() {
		return
	}
	stop := cpuProfile()
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cpuProfile writes a CPU profile of this process to the file that
// STRATA_CPUPROFILE names, when it is set (PERFORMANCE.md): the returned
// func ends it.
func cpuProfile() func() {
	p := os.Getenv("STRATA_CPUPROFILE")
	if p == "" {
		return func() {}
	}
	f, err := os.Create(p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: STRATA_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "strata: STRATA_CPUPROFILE: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// usageError is an error in how strata was called (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// envError is an error of the machine strata runs on (exit 3).
type envError struct{ err error }

func (e envError) Error() string { return e.err.Error() }
func (e envError) Unwrap() error { return e.err }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	ctx, interrupted, stop := signalContext()
	defer stop()
	var err error
	switch args[0] {
	case "build":
		err = cmdBuild(ctx, args[1:], stdout, stderr, "build")
	case "explain":
		err = cmdBuild(ctx, args[1:], stdout, stderr, "explain")
	case "verify":
		err = cmdBuild(ctx, args[1:], stdout, stderr, "verify")
	case "cache":
		if len(args) < 2 {
			err = usagef("cache needs ls or prune")
			break
		}
		switch args[1] {
		case "ls":
			err = cmdCacheLs(args[2:], stdout, stderr)
		case "prune":
			err = cmdCachePrune(ctx, args[2:], stdout, stderr)
		default:
			err = usagef("unknown cache command %q: use ls or prune", args[1])
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		err = usagef("unknown command %q", args[0])
	}
	var ue usageError
	var ee envError
	switch {
	case err == nil:
		return exitOK
	case interrupted() != nil:
		fmt.Fprintf(stderr, "strata: %s\n", signalWord(interrupted()))
		return signalStatus(interrupted())
	case errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return exitUsage
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return exitEnv
	case errors.As(err, new(reported)):
		var rep reported
		errors.As(err, &rep)
		return rep.code
	default:
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return exitBuildFailed
	}
}

// reported is a build failure the progress renderer already printed, with
// the exit status it gets (buildExitCode).
type reported struct{ code int }

func (r reported) Error() string { return "build failed" }

// buildExitCode is the exit status of a failed build: 3 (environment) when
// a registry or the network could not be reached, 2 (usage) when the
// Dockerfile itself is refused (a stage, an instruction or a flag the
// translation rejects, with its file:line), 1 for a build that failed (a
// step, a missing context file).
func buildExitCode(err error) int {
	var op *net.OpError
	var dns *net.DNSError
	var de *dockerfile.Error
	switch {
	case errors.As(err, &op), errors.As(err, &dns):
		return exitEnv
	case errors.As(err, &de):
		return exitUsage
	}
	return exitBuildFailed
}

// signalContext returns a context cancelled by the first SIGINT, SIGTERM
// or SIGHUP (the builder then stops the running step and cleans up) and a
// func that returns that signal (nil while none came). A second signal, a
// second or more after the first, exits at once with the first signal's
// status; the build guard of the process then stops the step and cleans up
// (runners/guard.go). Copies of one signal that arrive together (Ctrl-C
// reaches every process of the group, and the user-namespace parent
// forwards its own copy) count once.
func signalContext() (context.Context, func() os.Signal, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var mu sync.Mutex
	var first os.Signal
	go func() {
		sig, ok := <-ch
		if !ok {
			return
		}
		mu.Lock()
		first = sig
		mu.Unlock()
		cancel()
		at := time.Now()
		for range ch {
			if time.Since(at) >= time.Second {
				os.Exit(signalStatus(sig))
			}
		}
	}()
	got := func() os.Signal {
		mu.Lock()
		defer mu.Unlock()
		return first
	}
	return ctx, got, func() { signal.Stop(ch); cancel() }
}

// signalStatus is the exit status a shell reports for a process that a
// signal ended: 128 + its number (SIGINT 130, SIGTERM 143, SIGHUP 129).
func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitInterrupted
}

// signalWord is what strata prints when sig stopped the build.
func signalWord(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "terminated"
	case syscall.SIGHUP:
		return "hangup"
	}
	return "interrupted"
}

// newFlagSet is a GNU-style flag set, as podman, buildah and docker
// buildx take flags: --tag, -t, -qt app, --pull=always, flags before or
// after the positional arguments. The single-dash long spelling strata
// took before (-tag, -force-build) still works (normalizeArgs).
func newFlagSet(name, usage string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fmt.Fprint(stderr, fs.FlagUsages())
		fmt.Fprint(stderr, "\nExit codes: 0 success, 1 build failed, 2 usage error, 3 environment error, 130 interrupted (143 SIGTERM, 129 SIGHUP).\n")
	}
	return fs
}

// parseFlags parses args and returns the positional arguments.
func parseFlags(fs *pflag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(normalizeArgs(fs, args)); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// normalizeArgs rewrites a long flag given with one dash (-tag x,
// -force-build: Go's flag package spelling, which strata took before) to
// two, leaving values, shorthands (-t, -qt) and everything after "--"
// alone.
func normalizeArgs(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	takesValue := func(f *pflag.Flag) bool { return f != nil && f.NoOptDefVal == "" }
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			out = append(out, a)
			continue
		}
		var f *pflag.Flag
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case strings.HasPrefix(a, "--"):
			f = fs.Lookup(name)
		case len(name) > 1 && fs.Lookup(name) != nil:
			f = fs.Lookup(name)
			a = "-" + a
		default:
			// Shorthands, possibly combined (-qt app, -tapp): the
			// first that takes a value takes the rest of the
			// argument, or the next one when nothing is left.
			for j := 1; j < len(a); j++ {
				sf := fs.ShorthandLookup(a[j : j+1])
				if sf != nil && takesValue(sf) {
					if j == len(a)-1 {
						f = sf
					}
					break
				}
			}
		}
		out = append(out, a)
		if f != nil && !hasValue && takesValue(f) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// flagError turns a flag package error into a usage error (help stays help).
func flagError(err error) error {
	if errors.Is(err, pflag.ErrHelp) {
		return err
	}
	return usageError{err}
}

type storeFlags struct{ graph, run string }

func (s *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.graph, "store", "", "image store directory (default: the user's containers/storage)")
	fs.StringVar(&s.run, "runroot", "", "run-time state directory of the store (default: the user's containers/storage)")
}

func openSession(ctx context.Context, sf storeFlags, opts ...builder.Option) (*builder.Session, error) {
	opts = append(opts, builder.WithStore(sf.graph, sf.run))
	s, err := builder.Open(ctx, opts...)
	if err != nil {
		return nil, envError{err}
	}
	return s, nil
}

const buildUsage = `Usage: strata build [flags] [CONTEXT]

Builds CONTEXT/Containerfile, else CONTEXT/Dockerfile (or -f FILE, or --spec FILE), prints the progress
to stderr and the image ID to stdout. Flags:
`

const explainUsage = `Usage: strata explain [flags] [CONTEXT]

Plans the build that "strata build" with the same flags would run, without
running it, and prints one line per step: CACHED, or RUN with the inputs
that changed since the nearest earlier build (--tag names the image whose
last build is compared). Flags:
`

const verifyUsage = `Usage: strata verify IMAGE [flags] [CONTEXT]

Reads the provenance attached to IMAGE (oci:DIR[:TAG] or docker://REF, as
strata build --output and --push wrote it), checks that every recorded key
follows from its recorded recipe, plans the definition again from CONTEXT
(or --context DIR) and compares the keys step by step. The Dockerfile (or
spec file), its target and build arguments, the secret names, the
platform, the format and SOURCE_DATE_EPOCH default to the recorded ones;
give the build's other flags (--build-context, --ssh) as for strata build. Prints one
line per step and exits 0 only when every key reproduces (1 when one does
not). Flags:
`

// cmdBuild runs "strata build", or with mode "explain" "strata explain":
// the same flags, no build, one line per step saying whether it would run
// and why; or with mode "verify" "strata verify": the same flags, the
// provenance of an image checked against them.
func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer, mode string) error {
	name, usage := "build", buildUsage
	explain, verify := mode == "explain", mode == "verify"
	switch mode {
	case "explain":
		name, usage = "explain", explainUsage
	case "verify":
		name, usage = "verify", verifyUsage
	}
	fs := newFlagSet(name, usage, stderr)
	var (
		mountsTo, mountsFrom                                                      string
		file, specFile, cacheTo, target, progressMode, compression, sde, gpuType  string
		network, pull, iidFile, metadataFile, format, platform                    string
		tags, pushes, cacheFrom, outputs, buildArgs, contexts, secrets, labels    []string
		annotations, sshAgents                                                    []string
		forceBuild, noCache, quiet, cacheAuthEnv, pushAuthEnv, insecure, withSBOM bool
		sf                                                                        storeFlags
		provenance, verifyContext, signKey, signPassFile, registriesD, verifyKey  string
	)
	fs.StringVarP(&file, "file", "f", "", "the Dockerfile; - reads it from stdin (default: CONTEXT/Containerfile, else CONTEXT/Dockerfile)")
	fs.StringVar(&specFile, "spec", "", "build from this spec file (YAML or JSON; see package spec) instead of a Dockerfile")
	fs.StringArrayVarP(&tags, "tag", "t", nil, "name the image in the store (repeatable)")
	fs.StringArrayVar(&buildArgs, "build-arg", nil, "set a Dockerfile ARG: K=V, or K for the value of the variable K (repeatable)")
	fs.StringVar(&target, "target", "", "build this stage of the Dockerfile")
	fs.StringArrayVar(&contexts, "build-context", nil, "NAME=archive:PATH, NAME=oci-layout:DIR or NAME=docker-image://REF: FROM NAME uses it (repeatable)")
	fs.StringArrayVar(&secrets, "secret", nil, "id=NAME[,src=FILE|,env=VAR][,type=file|env]: the Dockerfile's secret NAME, from FILE or the variable VAR (default: the variable NAME, else the file NAME) (repeatable)")
	fs.StringArrayVar(&sshAgents, "ssh", nil, "default|ID[=SOCKET]: forward an ssh agent to RUN --mount=type=ssh,id=ID (default: $SSH_AUTH_SOCK) (repeatable)")
	fs.StringArrayVar(&labels, "label", nil, "set a label on the image: K=V (repeatable)")
	fs.StringArrayVar(&annotations, "annotation", nil, "set an annotation on the image's manifest: K=V or manifest:K=V (repeatable)")
	fs.StringVar(&platform, "platform", "", "build for these platforms (linux/arm64, or linux/amd64,linux/arm64 for an image index; default: the host's); other architectures run through qemu-user-static")
	fs.StringVar(&format, "format", "oci", "image format: oci, or docker (keeps HEALTHCHECK, SHELL and ONBUILD; Docker manifests for pushes and docker-archive outputs)")
	fs.StringVar(&network, "network", "default", "network of the RUN instructions that do not say: default (the host's), host or none")
	fs.StringVar(&pull, "pull", "always", "registry bases: always (--pull alone; a tag is resolved at every build, only missing layers are pulled), missing (only when the store has no image of that name) or never (the store's only)")
	fs.Lookup("pull").NoOptDefVal = "always"
	fs.BoolVar(&noCache, "no-cache", false, "run every step even when its cache entry exists (as --force-build)")
	fs.BoolVar(&forceBuild, "force-build", false, "run every step even when its cache entry exists")
	fs.BoolVarP(&quiet, "quiet", "q", false, "print only the image ID (no progress)")
	fs.StringVar(&iidFile, "iidfile", "", "write the image ID (sha256:...) to this file")
	fs.StringVar(&metadataFile, "metadata-file", "", "write the build's result as JSON to this file (containerimage.digest, image.name, strata.steps)")
	fs.StringArrayVar(&pushes, "push", nil, "push the image to this registry reference (repeatable)")
	fs.BoolVar(&pushAuthEnv, "push-auth-env", false, "push with REGISTRY_USERNAME/REGISTRY_PASSWORD from the environment (default: auth.json)")
	fs.StringArrayVar(&cacheFrom, "cache-from", nil, "look up steps in this registry repository (repeatable, in order)")
	fs.StringVar(&cacheTo, "cache-to", "", "push the steps this build runs to this registry repository")
	fs.StringVar(&mountsTo, "cache-mounts-to", "", "save the cache mounts (RUN --mount=type=cache) the build used to this registry repository")
	fs.StringVar(&mountsFrom, "cache-mounts-from", "", "restore empty cache mounts from this registry repository before the steps that use them")
	fs.BoolVar(&cacheAuthEnv, "cache-auth-env", false, "use REGISTRY_USERNAME/REGISTRY_PASSWORD from the environment for the cache repositories (default: auth.json)")
	fs.StringArrayVar(&outputs, "output", nil, "also write the image to oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE (repeatable)")
	fs.StringVar(&gpuType, "gpu", "", "run every RUN of the Dockerfile with GPUs: any, all, H100, H100:2, or H100,A100 (Dockerfile builds)")
	fs.StringVar(&progressMode, "progress", "auto", "progress output: auto (tty when stderr is a terminal, else plain), plain, tty or json")
	fs.BoolVar(&insecure, "insecure-registry", false, "allow plain HTTP and unverified TLS for registries")
	fs.StringVar(&compression, "compression", "", "layer compression of pushes and outputs: gzip (default), zstd, or none (local outputs only)")
	fs.StringVar(&sde, "source-date-epoch", "", "clamp timestamps to this Unix time for reproducible images (default: $SOURCE_DATE_EPOCH)")
	fs.StringVar(&provenance, "provenance", "true", "attach a SLSA provenance attestation to every --output oci: layout and --push: true (default; mode=min and mode=max mean the same), or false")
	fs.BoolVar(&withSBOM, "sbom", false, "attach an SPDX SBOM of the image (syft, through strata-sbom) to every --output oci: layout and --push")
	fs.StringVar(&signKey, "sign-by-sigstore-private-key", "", "sign the pushed image and its attestations with this sigstore private key (needs --push and --sign-passphrase-file)")
	fs.StringVar(&signPassFile, "sign-passphrase-file", "", "the passphrase of the --sign-by-sigstore-private-key key: the file's first line")
	fs.StringVar(&registriesD, "registries.d", "", "read registries.d settings (use-sigstore-attachments, lookaside) from this directory")
	if verify {
		fs.StringVar(&verifyContext, "context", "", "the build context to verify against (or give CONTEXT)")
		fs.StringVar(&verifyKey, "sigstore-public-key", "", "also require sigstore signatures by this public key on the image and its provenance (docker:// images)")
	}
	sf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagError(err)
	}
	var verifyImage string
	if verify {
		if len(pos) == 0 {
			return usagef("verify needs the IMAGE: oci:DIR[:TAG] or docker://REF")
		}
		verifyImage, pos = pos[0], pos[1:]
		if verifyContext != "" {
			if len(pos) > 0 {
				return usagef("give --context or CONTEXT, not both")
			}
			pos = []string{verifyContext}
		}
	}
	if len(pos) > 1 {
		return usagef("%s takes one CONTEXT, got %q", name, pos)
	}
	switch provenance {
	case "true", "1", "mode=min", "mode=max":
		provenance = "true"
	case "false", "0":
	default:
		return usagef("--provenance=%s: use true or false", provenance)
	}
	switch pull {
	case "true":
		pull = "always"
	case "false":
		pull = "missing"
	case "always", "missing", "never":
	default:
		return usagef("--pull=%s: use always, missing or never", pull)
	}
	switch network {
	case "default", "host", "none":
	default:
		return usagef("--network=%s: use default, host or none", network)
	}
	if quiet {
		progressMode = "quiet"
	}
	forceBuild = forceBuild || noCache
	contextDir := "."
	if len(pos) == 1 {
		contextDir = pos[0]
	}

	// The renderer.
	var r renderer
	switch progressMode {
	case "auto":
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			r = newTTY(f)
		} else {
			r = &plain{w: stderr}
		}
	case "plain":
		r = &plain{w: stderr}
	case "tty":
		f, _ := stderr.(*os.File)
		r = newTTY(f)
	case "json":
		r = &jsonLines{enc: json.NewEncoder(stderr)}
	case "quiet":
		r = quietRenderer{w: stderr}
	default:
		return usagef("--progress %q: use auto, plain, tty, json or quiet", progressMode)
	}

	// Session and build options.
	sopts := []builder.Option{builder.PullPolicy(pull)}
	if insecure {
		sopts = append(sopts, builder.WithInsecureRegistries())
	}
	if registriesD != "" {
		sopts = append(sopts, builder.WithRegistriesDir(registriesD))
	}
	if forceBuild {
		sopts = append(sopts, builder.ForceBuildAll())
	}
	if sde != "" {
		n, err := strconv.ParseInt(sde, 10, 64)
		if err != nil {
			return usagef("--source-date-epoch %q: want seconds since 1970", sde)
		}
		sopts = append(sopts, builder.SourceDateEpoch(time.Unix(n, 0)))
	}
	// verify: the recorded Dockerfile, target, build arguments, platform
	// and format are the defaults.
	var s *builder.Session
	var vprov *attest.Provenance
	var vdigest string
	var verifySecrets []string
	var specDir string // --spec: the directory its paths resolve against
	if verify {
		if s, err = openSession(ctx, sf, sopts...); err != nil {
			return err
		}
		defer s.Close()
		var ropts []builder.BuildOption
		if platform != "" {
			ropts = append(ropts, builder.Platforms(platform))
		}
		if pushAuthEnv {
			ropts = append(ropts, builder.PushAuth(builder.SecretFromEnv("REGISTRY_USERNAME", "REGISTRY_PASSWORD")))
		}
		if verifyKey != "" {
			ropts = append(ropts, builder.RequireSignedBy(verifyKey))
		}
		if vprov, vdigest, err = s.ReadProvenance(ctx, verifyImage, ropts...); err != nil {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return reported{exitBuildFailed}
		}
		ext := vprov.BuildDefinition.ExternalParameters
		if sp := ext.Spec; sp != nil && specFile == "" && !fs.Changed("file") && sp.File != "" {
			specFile = filepath.Join(contextDir, filepath.FromSlash(sp.File))
		}
		if dp := ext.Dockerfile; dp != nil && specFile == "" {
			if !fs.Changed("file") && dp.File != "" {
				file = filepath.Join(contextDir, filepath.FromSlash(dp.File))
			}
			if !fs.Changed("target") {
				target = dp.Target
			}
			if !fs.Changed("network") && dp.Network != "" {
				network = dp.Network
			}
			given := map[string]bool{}
			for _, a := range buildArgs {
				k, _, _ := strings.Cut(a, "=")
				given[k] = true
			}
			for _, k := range slices.Sorted(maps.Keys(dp.BuildArgs)) {
				if !given[k] {
					buildArgs = append(buildArgs, k+"="+dp.BuildArgs[k])
				}
			}
			// The secrets by name: their values change no key.
			for _, id := range dp.Secrets {
				if !slices.ContainsFunc(secrets, func(sec string) bool { return slices.Contains(strings.Split(sec, ","), "id="+id) }) {
					verifySecrets = append(verifySecrets, id)
				}
			}
		}
		if !fs.Changed("format") && ext.Format != "" {
			format = ext.Format
		}
	}

	// The image.
	var img builder.Image
	if specFile != "" {
		if file != "" {
			return usagef("give -f or --spec, not both")
		}
		for name, given := range map[string]bool{"--gpu": gpuType != "", "--build-arg": len(buildArgs) > 0,
			"--target": target != "", "--build-context": len(contexts) > 0, "--secret": len(secrets) > 0,
			"--network": network != "default", "--ssh": len(sshAgents) > 0} {
			if given {
				return usagef("%s applies to Dockerfile builds; say it in the spec file", name)
			}
		}
		data, err := os.ReadFile(specFile)
		if err != nil {
			return usageError{err}
		}
		dir := filepath.Dir(specFile)
		if len(pos) == 1 {
			dir = contextDir
		}
		if img, err = spec.Parse(data, specFile, dir); err != nil {
			return usageError{err}
		}
		specDir = dir
	} else {
		switch file {
		case "":
			file = defaultDockerfile(contextDir)
		case "-":
			f, cleanup, err := dockerfileFromStdin()
			if err != nil {
				return err
			}
			defer cleanup()
			file = f
		}
		var opts []builder.DockerfileOption
		opts = append(opts, builder.ContextDir(contextDir))
		if network != "default" {
			opts = append(opts, builder.RunNetwork(network))
		}
		for _, a := range sshAgents {
			id, sock, ok := strings.Cut(a, "=")
			if !ok {
				if sock = os.Getenv("SSH_AUTH_SOCK"); sock == "" {
					return usagef("--ssh %s: SSH_AUTH_SOCK is not set: start an agent (eval $(ssh-agent); ssh-add KEY) or give --ssh %s=SOCKET", a, id)
				}
			}
			if st, err := os.Stat(sock); err != nil || st.Mode()&os.ModeSocket == 0 {
				return usagef("--ssh %s: %s is not an ssh agent's socket (key files are not offered: load them into an agent with ssh-add)", id, sock)
			}
			opts = append(opts, builder.SSH(id, sock))
		}
		if len(buildArgs) > 0 {
			m := map[string]string{}
			for _, a := range buildArgs {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					// docker build takes the value from the environment.
					if v, ok = os.LookupEnv(k); !ok {
						continue
					}
				}
				m[k] = v
			}
			opts = append(opts, builder.BuildArgs(m))
		}
		if target != "" {
			opts = append(opts, builder.Target(target))
		}
		if gpuType != "" {
			opts = append(opts, builder.GPU(strings.Split(gpuType, ",")...))
		}
		for _, c := range contexts {
			name, src, ok := strings.Cut(c, "=")
			if !ok || name == "" {
				return usagef("--build-context %q: want NAME=archive:PATH, NAME=oci-layout:DIR or NAME=docker-image://REF", c)
			}
			var ci builder.Image
			switch {
			case strings.HasPrefix(src, "archive:"):
				ci = builder.FromArchive(strings.TrimPrefix(src, "archive:"))
			case strings.HasPrefix(src, "oci-layout:"):
				ci = builder.FromOCILayout(strings.TrimPrefix(src, "oci-layout:"))
			case strings.HasPrefix(src, "docker-image://"):
				ci = builder.FromRegistry(strings.TrimPrefix(src, "docker-image://"))
			default:
				return usagef("--build-context %q: want NAME=archive:PATH, NAME=oci-layout:DIR or NAME=docker-image://REF", c)
			}
			if err := ci.Err(); err != nil {
				return usagef("--build-context %s: %v", name, err)
			}
			opts = append(opts, builder.BuildContext(name, ci))
		}
		var secs []builder.Secret
		for _, s := range secrets {
			id, v, err := parseSecret(s)
			if err != nil {
				return err
			}
			secs = append(secs, builder.SecretFromMap(id, map[string]string{id: v}))
		}
		for _, id := range verifySecrets {
			secs = append(secs, builder.SecretFromMap(id, map[string]string{id: ""}))
		}
		if len(secs) > 0 {
			opts = append(opts, builder.WithSecrets(secs...))
		}
		img = builder.FromDockerfile(file, opts...)
	}
	if len(labels) > 0 {
		m := map[string]string{}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			m[k] = v
		}
		img = img.Label(m)
	}
	if err := img.Err(); err != nil {
		return usageError{err}
	}
	if explain && (iidFile != "" || metadataFile != "") {
		return usagef("--iidfile and --metadata-file apply to strata build, not explain")
	}

	// Signals are signalContext's: it cancels ctx, and run prints what
	// stopped the build and exits with the signal's status.
	bopts := []builder.BuildOption{builder.WithProgressFunc(r.event), builder.WithoutSignalHandling()}
	for _, t := range tags {
		bopts = append(bopts, builder.WithTag(t))
	}
	for _, o := range outputs {
		if !strings.HasPrefix(o, "oci:") && !strings.HasPrefix(o, "oci-archive:") && !strings.HasPrefix(o, "docker-archive:") {
			return usagef("--output %q: want oci:DIR, oci-archive:FILE or docker-archive:FILE", o)
		}
		bopts = append(bopts, builder.ExportTo(o))
	}
	for _, p := range pushes {
		bopts = append(bopts, builder.Push(p))
	}
	if pushAuthEnv {
		bopts = append(bopts, builder.PushAuth(builder.SecretFromEnv("REGISTRY_USERNAME", "REGISTRY_PASSWORD")))
	}
	if len(cacheFrom) > 0 {
		bopts = append(bopts, builder.CacheFrom(cacheFrom...))
	}
	if cacheTo != "" {
		bopts = append(bopts, builder.CacheTo(cacheTo))
	}
	if mountsTo != "" {
		bopts = append(bopts, builder.CacheMountsTo(mountsTo))
	}
	if mountsFrom != "" {
		bopts = append(bopts, builder.CacheMountsFrom(mountsFrom))
	}
	if cacheAuthEnv {
		bopts = append(bopts, builder.CacheAuth(builder.SecretFromEnv("REGISTRY_USERNAME", "REGISTRY_PASSWORD")))
	}
	if platform != "" {
		for _, p := range strings.Split(platform, ",") {
			if _, err := platforms.Parse(p); err != nil {
				return usagef("--platform %s: %v", p, err)
			}
		}
		bopts = append(bopts, builder.Platforms(strings.Split(platform, ",")...))
	}
	switch format {
	case "oci", "docker":
		bopts = append(bopts, builder.Format(format))
	default:
		return usagef("--format %q: use oci or docker", format)
	}
	if len(annotations) > 0 {
		m := map[string]string{}
		for _, a := range annotations {
			// buildx's form: [TYPE:]K=V; strata writes one manifest
			// and no index, so TYPE can only be manifest.
			k, v, ok := strings.Cut(a, "=")
			if typ, key, typed := strings.Cut(k, ":"); typed {
				if typ != "manifest" {
					return usagef("--annotation %q: strata writes one manifest and no index: give K=V or manifest:K=V", a)
				}
				k = key
			}
			if !ok || k == "" {
				return usagef("--annotation %q: want K=V or manifest:K=V", a)
			}
			m[k] = v
		}
		bopts = append(bopts, builder.Annotations(m))
	}
	switch compression {
	case "", "gzip", "zstd", "none":
		if compression != "" {
			bopts = append(bopts, builder.LayerCompression(compression))
		}
	default:
		return usagef("--compression %q: use gzip, zstd or none (local outputs only)", compression)
	}

	if verify {
		return printVerification(ctx, s, img, vprov, verifyImage, vdigest, platform, stdout, stderr)
	}
	if provenance == "false" {
		bopts = append(bopts, builder.NoProvenance())
	}
	if withSBOM {
		bopts = append(bopts, builder.SBOM())
	}
	if specFile != "" {
		bopts = append(bopts, builder.DefinedBySpec(specFile, specDir))
	}
	switch {
	case signKey != "" && signPassFile == "":
		return usagef("--sign-by-sigstore-private-key needs --sign-passphrase-file FILE (strata does not prompt)")
	case signKey == "" && signPassFile != "":
		return usagef("--sign-passphrase-file applies with --sign-by-sigstore-private-key")
	case signKey != "" && len(pushes) == 0:
		return usagef("--sign-by-sigstore-private-key signs what strata pushes: add --push REF")
	case signKey != "":
		pass, err := readPassphraseFile(signPassFile)
		if err != nil {
			return usagef("--sign-passphrase-file: %v", err)
		}
		bopts = append(bopts, builder.SignBy(signKey, builder.SecretFromMap("sign-passphrase", map[string]string{"passphrase": pass})))
	}
	s, err = openSession(ctx, sf, sopts...)
	if err != nil {
		return err
	}
	defer s.Close()
	if explain {
		// Explain compares with the build of the first --tag; the other
		// flags are the build's. Several platforms: each in turn.
		plats := []string{""}
		if platform != "" {
			plats = strings.Split(platform, ",")
		}
		for _, p := range plats {
			eopts := []builder.BuildOption{builder.Format(format)}
			prefix := ""
			if p != "" {
				eopts = append(eopts, builder.Platforms(p))
			}
			if len(plats) > 1 {
				prefix = "[" + p + "] "
			}
			if len(tags) > 0 {
				eopts = append(eopts, builder.WithTag(tags[0]))
			}
			ex, err := s.Explain(ctx, img, eopts...)
			if err != nil {
				fmt.Fprintf(stderr, "strata: %s%v\n", prefix, err)
				return reported{buildExitCode(err)}
			}
			runs := 0
			for _, e := range ex {
				state := "CACHED"
				if !e.Cached {
					state = "RUN (" + e.Reason + ")"
					runs++
				}
				fmt.Fprintf(stdout, "%s#%d %s: %s\n", prefix, e.Index, builder.StepLabel(e.Method, e.Description), state)
			}
			fmt.Fprintf(stdout, "%s%d of %d steps would run\n", prefix, runs, len(ex))
		}
		return nil
	}
	res, err := s.Build(ctx, img, bopts...)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.fail(err)
		return reported{buildExitCode(err)}
	}
	if j, ok := r.(*jsonLines); ok {
		j.write(jsonEvent{Kind: "result", ImageID: res.ImageID})
	}
	if iidFile != "" {
		if err := os.WriteFile(iidFile, []byte("sha256:"+res.ImageID), 0o644); err != nil {
			return fmt.Errorf("--iidfile: %w", err)
		}
	}
	if metadataFile != "" {
		if err := writeMetadata(metadataFile, res, append(slices.Clone(res.Tags), pushes...)); err != nil {
			return fmt.Errorf("--metadata-file: %w", err)
		}
	}
	fmt.Fprintln(stdout, res.ImageID)
	return nil
}

// stdin is where -f - reads the Dockerfile from.
var stdin io.Reader = os.Stdin

// dockerfileFromStdin writes the Dockerfile on stdin (-f -) to a file of
// its own, outside the context, removed by cleanup.
func dockerfileFromStdin() (string, func(), error) {
	data, err := io.ReadAll(stdin)
	if err != nil {
		return "", nil, usagef("-f -: reading the Dockerfile from stdin: %v", err)
	}
	dir, err := os.MkdirTemp("", "strata-stdin-")
	if err != nil {
		return "", nil, envError{err}
	}
	cleanup := func() { os.RemoveAll(dir) }
	p := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		cleanup()
		return "", nil, envError{err}
	}
	return p, cleanup, nil
}

// parseSecret reads a --secret in docker buildx's syntax and returns the
// secret's name and value:
// id=NAME[,src=FILE|,env=VAR][,type=file|env]. Without src or env, the
// variable NAME is used when it is set, else the file NAME. The value
// never appears in an error.
func parseSecret(s string) (id, value string, err error) {
	var src, envVar, typ string
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return "", "", usagef("--secret %q: want id=NAME[,src=FILE|,env=VAR][,type=file|env]", s)
		}
		switch k {
		case "id":
			id = v
		case "src", "source":
			src = v
		case "env":
			envVar = v
		case "type":
			typ = v
		default:
			return "", "", usagef("--secret %q: unknown key %q (want id, src, env or type)", s, k)
		}
	}
	if id == "" {
		return "", "", usagef("--secret %q: want id=NAME[,src=FILE|,env=VAR][,type=file|env]", s)
	}
	switch typ {
	case "":
		switch {
		case src != "" && envVar != "":
			return "", "", usagef("--secret %s: give src or env, not both", id)
		case src != "":
			typ = "file"
		case envVar != "":
			typ = "env"
		default:
			if _, ok := os.LookupEnv(id); ok {
				typ, envVar = "env", id
			} else {
				typ, src = "file", id
			}
		}
	case "env":
		if src != "" {
			return "", "", usagef("--secret %s: type=env takes env=VAR, not src", id)
		}
		if envVar == "" {
			envVar = id
		}
	case "file":
		if envVar != "" {
			return "", "", usagef("--secret %s: type=file takes src=FILE, not env", id)
		}
		if src == "" {
			src = id
		}
	default:
		return "", "", usagef("--secret %s: type=%s: use file or env", id, typ)
	}
	if typ == "env" {
		v, ok := os.LookupEnv(envVar)
		if !ok {
			return "", "", usagef("--secret %s: the variable %s is not set", id, envVar)
		}
		return id, v, nil
	}
	data, rerr := os.ReadFile(src)
	if rerr != nil {
		err = rerr
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", "", usagef("--secret %s: reading %s: %v", id, src, err)
	}
	return id, string(data), nil
}

// writeMetadata writes what docker buildx build --metadata-file writes
// (the manifest and config digests, the image's names), and strata's
// steps: key, and whether each came from the cache. The manifest digest
// is the pushed one (the first --push), else the first --output's, else
// the store's.
func writeMetadata(path string, res *builder.Result, names []string) error {
	type step struct {
		Index       int    `json:"index"`
		Method      string `json:"method"`
		Description string `json:"description,omitempty"`
		Key         string `json:"key"`
		Cache       string `json:"cache"` // "hit", "remote" or "miss"
		ImageID     string `json:"image_id"`
	}
	md := struct {
		Digest       string `json:"containerimage.digest"`
		ConfigDigest string `json:"containerimage.config.digest"`
		Name         string `json:"image.name,omitempty"`
		Steps        []step `json:"strata.steps"`
	}{Digest: res.ManifestDigest, ConfigDigest: "sha256:" + res.ImageID, Name: strings.Join(names, ",")}
	if len(res.Exports) > 0 {
		md.Digest = res.Exports[0].ManifestDigest
		for _, e := range res.Exports {
			if strings.HasPrefix(e.Dest, "docker://") {
				md.Digest = e.ManifestDigest
				break
			}
		}
	}
	for _, st := range res.Steps {
		c := "miss"
		switch {
		case st.Cached:
			c = "hit"
		case st.Remote:
			c = "remote"
		}
		md.Steps = append(md.Steps, step{st.Index, st.Method, st.Description, string(st.Key), c, st.ImageID})
	}
	b, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func newTTY(f *os.File) renderer {
	if f == nil {
		return &tty{w: os.Stderr, width: 80}
	}
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil || w <= 0 {
		w = 80
	}
	return &tty{w: f, width: w}
}

const cacheLsUsage = "Usage: strata cache ls [--json] [--store DIR --runroot DIR]\n\nLists the local layer cache, oldest first. Flags:\n"

func cmdCacheLs(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cache ls", cacheLsUsage, stderr)
	asJSON := fs.Bool("json", false, "print a JSON array")
	var sf storeFlags
	sf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 0 {
		return usagef("cache ls takes no arguments")
	}
	s, err := openSession(context.Background(), sf)
	if err != nil {
		return err
	}
	defer s.Close()
	entries, err := s.CacheEntries()
	if err != nil {
		return err
	}
	if *asJSON {
		type entry struct {
			Key     string    `json:"key"`
			ImageID string    `json:"image_id"`
			Size    int64     `json:"size"`
			Created time.Time `json:"created"`
			Tags    []string  `json:"tags,omitempty"`
		}
		out := []entry{}
		for _, e := range entries {
			out = append(out, entry{string(e.Key), e.ImageID, e.Size, e.Created, e.Tags})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tIMAGE\tSIZE\tCREATED\tTAGS")
	var total int64
	for _, e := range entries {
		total += e.Size
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Key.Short(), short(e.ImageID), humanSize(e.Size),
			e.Created.Local().Format("2006-01-02 15:04:05"), strings.Join(e.Tags, ","))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d entries, %s\n", len(entries), humanSize(total))
	return nil
}

const cachePruneUsage = `Usage: strata cache prune [--older-than DURATION] [--max-size SIZE] [--store DIR --runroot DIR]

Removes cache entries older than DURATION, then the oldest until the rest
hold at most SIZE, and deletes the images left without a name. Images with a
tag, images other images or containers are built on, and entries a running
build is recording are kept. Flags:
`

func cmdCachePrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cache prune", cachePruneUsage, stderr)
	olderThan := fs.String("older-than", "", "remove entries older than this (e.g. 36h, 7d)")
	maxSize := fs.String("max-size", "", "keep at most this much (bytes, or 500MB, 10GB, 2GiB; 0 removes every entry not in use)")
	var sf storeFlags
	sf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 0 {
		return usagef("cache prune takes no arguments")
	}
	opts := builder.PruneOptions{MaxSize: -1}
	if *olderThan == "" && *maxSize == "" {
		return usagef("give --older-than or --max-size (--max-size 0 removes every entry not in use)")
	}
	if *olderThan != "" {
		d, err := parseDuration(*olderThan)
		if err != nil {
			return usagef("--older-than: %v", err)
		}
		opts.OlderThan = d
	}
	if *maxSize != "" {
		n, err := parseSize(*maxSize)
		if err != nil {
			return usagef("--max-size: %v", err)
		}
		opts.MaxSize = n
	}
	s, err := openSession(ctx, sf)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.PruneCache(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %d entries, deleted %d images (%s freed); %d entries busy; %d entries left (%s)\n",
		len(rep.Removed), len(rep.DeletedImages), humanSize(rep.FreedBytes), len(rep.Busy), rep.Left, humanSize(rep.LeftBytes))
	return nil
}

// parseDuration is time.ParseDuration that also takes days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative duration %q", s)
	}
	return d, err
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1000}, {"M", 1000 * 1000}, {"G", 1000 * 1000 * 1000}, {"T", 1000 * 1000 * 1000 * 1000},
	{"B", 1},
}

// parseSize reads a byte count: "1048576", "500MB", "10GB", "2GiB".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if len(t) >= len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || n*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q (e.g. 1048576, 500MB, 10GB, 2GiB)", s)
	}
	return int64(n * float64(mult)), nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func short(id string) string { return id[:min(12, len(id))] }

// defaultDockerfile is CONTEXT/Containerfile when there is one (Buildah's
// and Podman's default name), else CONTEXT/Dockerfile.
func defaultDockerfile(contextDir string) string {
	cf := filepath.Join(contextDir, "Containerfile")
	if st, err := os.Stat(cf); err == nil && st.Mode().IsRegular() {
		return cf
	}
	return filepath.Join(contextDir, "Dockerfile")
}

// printVerification checks the provenance vprov of image (manifest
// digest d) against img and prints one line per step.
func printVerification(ctx context.Context, s *builder.Session, img builder.Image, vprov *attest.Provenance, image, d, platform string, stdout, stderr io.Writer) error {
	v, err := s.VerifyProvenance(ctx, img, vprov, image, d, platform)
	if err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return reported{exitBuildFailed}
	}
	fmt.Fprintf(stdout, "image %s (%s)\n", image, d)
	same := 0
	for _, st := range v.Steps {
		if st.Same {
			same++
			fmt.Fprintf(stdout, "%s: same key %s\n", st.Name(), st.Recorded.Short())
			continue
		}
		fmt.Fprintf(stdout, "%s: DIFFERS: %s\n", st.Name(), st.Why)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	fmt.Fprintf(stdout, "%d of %d steps reproduce\n", same, len(v.Steps))
	if !v.OK {
		fmt.Fprintf(stderr, "strata: %s: the provenance does not reproduce from this source\n", image)
		return reported{exitBuildFailed}
	}
	return nil
}

// readPassphraseFile returns the first line of the file (skopeo's
// --sign-passphrase-file reads it the same way).
func readPassphraseFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}
