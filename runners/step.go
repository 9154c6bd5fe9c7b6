package runners

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"go.podman.io/buildah"
	"go.podman.io/buildah/define"
	"go.podman.io/buildah/docker"
	"go.podman.io/common/libnetwork/types"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/gpu"
)

// Step is one unit of work on a working container, described in plain data.
type Step struct {
	// Name identifies the step in errors and logs, e.g. "step 3 (RunCommands)".
	Name string
	// Commands run one after another through Shell (default /bin/sh -c).
	Commands []string
	Shell    []string
	// Argv are commands run directly, without a shell, after Commands.
	Argv [][]string
	// RunEnv is extra "KEY=value" environment for Commands only.
	RunEnv []string
	// Mounts are host files or directories visible while the commands run;
	// nothing of them, mount targets included, is committed.
	Mounts []Mount
	// SourceDateEpoch, when set, clamps every timestamp of the commit (file
	// times in the layer, the image's creation time, history) to it.
	SourceDateEpoch *time.Time
	// GPU, when not zero, gives the commands GPUs that meet it, through
	// CDI; nothing GPU-specific is committed.
	GPU gpu.Request
	// Copies are local files or directories to put into the image.
	Copies []Copy
	// Mkdirs are directories created in the image (with their parents,
	// owned by the image's USER) before anything else runs: Dockerfile's
	// WORKDIR.
	Mkdirs []string
	// NoNetwork runs the commands without network access (only a
	// loopback interface): RUN --network=none.
	NoNetwork bool
	// Locks are files held locked (flock, exclusive) while the commands
	// run: cache mounts with sharing=locked.
	Locks []string
	// RemoveAfter are paths (globs in the last element) removed from the
	// image after the commands ran, before the commit.
	RemoveAfter []string
	// Config changes applied to the image config.
	Config ConfigChange
	// Platform, when set ("linux/arm64"), is the platform the step's image
	// is for: written to its config, and commands for another
	// architecture run through the host's emulator; "" is the host's.
	Platform string
	// Format is the image format of the commit: "docker" (Docker schema
	// 2, which keeps HEALTHCHECK, SHELL and ONBUILD), or "" for OCI.
	Format string
	// History is what the image's history says made this step's layer
	// (created_by), e.g. "RUN /bin/sh -c make" or "COPY dir:<digest> in
	// /app"; empty says only the shell, as Buildah does.
	History string
	// Output receives the commands' stdout and stderr; nil discards.
	Output io.Writer
}

// Copy places the file or directory Src at Dest inside the container.
type Copy struct {
	Src, Dest string
	// Excludes are normalized dockerignore-style patterns relative to Src,
	// or to ContextDir when it is set.
	Excludes []string
	// ContextDir, when set, is the root that Sources are read from: the
	// build context, or a directory inside FromImage. Src is then unused.
	ContextDir string
	// Sources are paths (globs allowed) relative to ContextDir, or URLs.
	Sources []string
	// FromImage, when set, is the ID of an image in the store whose root
	// filesystem is ContextDir (ContextDir is then relative to it).
	FromImage string
	// Chown and Chmod set the owner ("user:group", names looked up in the
	// image) and mode of what is copied; by default files are owned by
	// root, or keep their owner when copied from an image.
	Chown, Chmod string
	// Extract unpacks local tar archives into Dest (Dockerfile's ADD).
	Extract bool
	// Checksum is the expected digest of a single URL source.
	Checksum string
	// Parents keeps each source's directories under Dest (COPY --parents;
	// a "/./" in a source marks where the kept part starts).
	Parents bool
}

// Mount makes the host path Src visible at the absolute path Dest inside
// the container while a step's commands run, read-only unless Writable.
type Mount struct {
	Src, Dest string
	Writable  bool
	// Tmpfs mounts an empty tmpfs at Dest instead (Src unused).
	Tmpfs bool
	// FromImage, when set, is the ID of an image in the store: Src is then
	// a path inside its root filesystem, mounted for the step.
	FromImage string
	// Discard mounts a private copy of Src, writable, removed after the
	// step: what the step writes there is discarded (RUN --mount=type=bind,rw).
	Discard bool
}

// ConfigChange is a set of image config edits; nil fields change nothing.
type ConfigChange struct {
	Env        map[string]string
	Workdir    *string
	Entrypoint *[]string
	Cmd        *[]string
	User       *string
	Labels     map[string]string
	// PathPrepend is put first on the image's PATH.
	PathPrepend string
	// Ports ("80/tcp") and Volumes are added to the config.
	Ports, Volumes []string
	StopSignal     *string
	// Author sets the image's author (Dockerfile MAINTAINER).
	Author *string
	// OnBuildClear drops the ONBUILD triggers inherited from the base
	// (they ran); OnBuildAdd then records new ones (see OnBuildLabel).
	OnBuildClear bool
	OnBuildAdd   []string
	// Annotations are set on the image's manifest (not its config).
	Annotations map[string]string
	// Shell and Healthcheck are Docker-format fields (Step.Format
	// "docker"); OCI images drop them.
	Shell       *[]string
	Healthcheck *Healthcheck
}

// Healthcheck is a Docker-format HEALTHCHECK: Test ["NONE"] disables the
// base's, ["CMD", args...] or ["CMD-SHELL", command] checks.
type Healthcheck = docker.HealthConfig

func (c ConfigChange) empty() bool {
	return c.Env == nil && c.Workdir == nil && c.Entrypoint == nil && c.Cmd == nil && c.User == nil &&
		c.Labels == nil && c.PathPrepend == "" && c.Ports == nil && c.Volumes == nil && c.StopSignal == nil &&
		c.Author == nil && !c.OnBuildClear && c.OnBuildAdd == nil && c.Annotations == nil &&
		c.Shell == nil && c.Healthcheck == nil
}

// StepError reports a step whose command failed.
type StepError struct {
	// Step names the step, e.g. "step 3 (RunCommands)".
	Step string
	// Command is the command that failed.
	Command string
	// ExitCode is the command's exit status, or -1 when it did not exit.
	ExitCode int
	// Tail holds the last lines of the command's output.
	Tail []string
	// Err is the underlying error.
	Err error
	// Hint, when set, is a likely cause found after the failure (a full
	// disk under the store).
	Hint string
}

func (e *StepError) Error() string {
	var b strings.Builder
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, "%s: command %q exited with code %d", e.Step, e.Command, e.ExitCode)
	} else {
		fmt.Fprintf(&b, "%s: command %q failed: %v", e.Step, e.Command, e.Err)
	}
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "\nlast %d lines of output:\n  %s", len(e.Tail), strings.Join(e.Tail, "\n  "))
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "\n%s", e.Hint)
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// Execute runs st on a new working container made from the image parentID
// ("" for scratch), commits the result and removes the container whatever
// happens. It returns the committed image's ID.
func (r *Runtime) Execute(ctx context.Context, parentID string, st Step) (string, error) {
	if err := r.ensureGuard(); err != nil {
		return "", fmt.Errorf("%s: %w", st.Name, err)
	}
	r.retryDeletes()
	if st.runsCommands() {
		// Before any container: a step of another architecture needs
		// its emulator.
		if err := checkEmulator(st.Platform); err != nil {
			return "", fmt.Errorf("%s: %w", st.Name, err)
		}
	}
	from := parentID
	if from == "" {
		from = "scratch"
	}
	pt := newPhaseTimer(st.Name)
	defer pt.done()
	// How the step is committed (see below), known before it runs: a
	// step committed the direct way works in a container that is only a
	// layer, or no layer at all when it changes only the config
	// (worklayer.go).
	writesLayer := st.runsCommands() || len(st.Copies) > 0 || len(st.Mkdirs) > 0
	viaRunc := st.GPU.IsZero() && !r.buildahRun
	stageable := (!st.runsCommands() || viaRunc) && st.SourceDateEpoch == nil && !r.noStaging
	name := containerName()
	if stageable && r.store.GraphDriverName() == "overlay" {
		defer r.ws.expectLayer(name, writesLayer)()
	}
	b, err := buildah.NewBuilder(ctx, r.ws, buildah.BuilderOptions{
		FromImage:        from,
		Container:        name,
		PullPolicy:       define.PullNever,
		SystemContext:    r.SystemContext(),
		Isolation:        r.isolation(),
		NamespaceOptions: hostNetwork(),
		ConfigureNetwork: define.NetworkDefault,
		NetworkInterface: noNetwork{},
		CommonBuildOpts:  &define.CommonBuildOptions{Ulimit: r.ulimits},
		Capabilities:     defaultCapabilities,
		Format:           manifestType(st.Format),
		Logger:           logrus.StandardLogger(),
		// The parent is strata's previous step, an intermediate image whose
		// digest says nothing to a user and would tie the result to one
		// store: keep the base image's own annotations instead.
		PreserveBaseImageAnns: true,
	})
	if err != nil {
		return "", fmt.Errorf("%s: creating working container: %w", st.Name, err)
	}
	pt.mark("create")
	// The container goes away on every path, success or not, in the
	// background: the next step does not wait for its files to be
	// removed (SettleDeletes waits). On a full disk even that can fail
	// (the store cannot record it): it is retried before the next step
	// and at Close.
	defer r.deleteInBackground(b)

	if err := r.mkdirs(b, st); err != nil {
		return "", err
	}
	var copyRoot string
	for _, c := range st.Copies {
		if !r.buildahCopy && copyRoot == "" {
			if copyRoot, err = b.Mount(b.MountLabel); err != nil {
				return "", fmt.Errorf("%s: mounting working container: %w", st.Name, err)
			}
			defer func() {
				if copyRoot != "" {
					_ = b.Unmount()
				}
			}()
		}
		if copyRoot != "" {
			done, err := r.copyDirect(b, copyRoot, c)
			if err != nil {
				return "", fmt.Errorf("%s: copying %s to %s: %w", st.Name, copySourceNames(c), c.Dest, err)
			}
			if done {
				pt.note("copied by strata")
				continue
			}
			pt.note("copied by Buildah")
		}
		if c.ContextDir != "" {
			if err := r.copySources(ctx, b, st, c); err != nil {
				return "", err
			}
			continue
		}
		ctxDir := c.Src
		if !isDir(c.Src) {
			ctxDir = filepath.Dir(c.Src)
		}
		err := b.Add(c.Dest, false, buildah.AddAndCopyOptions{
			ContextDir: ctxDir,
			Excludes:   c.Excludes,
		}, c.Src)
		if err != nil {
			return "", fmt.Errorf("%s: copying %s to %s: %w", st.Name, c.Src, c.Dest, err)
		}
	}

	if copyRoot != "" {
		_ = b.Unmount()
		copyRoot = ""
	}
	pt.mark("copy")
	if st.runsCommands() {
		mnt, err := b.Mount(b.MountLabel)
		if err != nil {
			return "", fmt.Errorf("%s: mounting working container: %w", st.Name, err)
		}
		pt.mark("mount")
		var g *gpuRun
		if !st.GPU.IsZero() {
			if g, err = r.acquireGPUs(ctx, st.GPU); err != nil {
				return "", fmt.Errorf("%s: %w", st.Name, err)
			}
			defer g.release()
		}
		targets := st.Mounts
		if g != nil {
			targets = append(slices.Clone(targets), g.mounts...)
		}
		if st.Mounts, err = r.mountImages(st.Mounts); err != nil {
			return "", fmt.Errorf("%s: %w", st.Name, err)
		}
		defer r.unmountImages(st.Mounts)
		discard, err := privateCopies(st.Mounts)
		defer discard()
		if err != nil {
			return "", fmt.Errorf("%s: %w", st.Name, err)
		}
		unlock, err := lockAll(ctx, st.Locks)
		if err != nil {
			return "", fmt.Errorf("%s: %w", st.Name, err)
		}
		defer unlock()
		missing := missingMountpoints(mnt, targets)
		// The container layer's directory (overlay's upper), where the
		// runs' mount targets copy their parents up (ocirun.go).
		upper := r.upperDir(b)
		var copied []copiedDir
		var argvs [][]string
		shell := st.Shell
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
		}
		for _, cmd := range st.Commands {
			argvs = append(argvs, append(append([]string{}, shell...), cmd))
		}
		argvs = append(argvs, st.Argv...)
		for k, argv := range argvs {
			if err := ctx.Err(); err != nil {
				return "", err
			}
			shown := strings.Join(argv, " ")
			if k < len(st.Commands) {
				shown = st.Commands[k]
			}
			if err := r.run(ctx, b, st, argv, shown, g, upper, &copied); err != nil {
				return "", err
			}
		}
		pt.mark("run")
		removeCreatedMountpoints(mnt, missing)
		if err := removeInRoot(mnt, st.RemoveAfter); err != nil {
			return "", fmt.Errorf("%s: %w", st.Name, err)
		}
		if len(copied) > 0 {
			// Unmounted, the upper directory is the container's to change.
			if err := b.Unmount(); err == nil {
				dropCopiedUp(upper, copied)
			}
		}
		g.release()
	}
	applyConfig(b, st.Config)

	if err := ctx.Err(); err != nil {
		return "", err
	}
	// The history says what the step did, not which image it started
	// from: the parent is strata's previous step, stored under a cache
	// name that means nothing outside this store (Buildah would add
	// "FROM <that name>" as the comment of the entry).
	setPlatform(b, st.Platform)
	b.SetCreatedBy(st.History)
	b.SetHistoryComment("")
	b.FromImage = ""
	Failpoint("commit")
	// The step's layer is the container's own files, moved into the
	// store whole, with the image written by strata (directcommit.go);
	// where that does not apply, Buildah's commit writes it. A step
	// whose commands ran through Buildah's Run (GPUs, BuildahRunEnv) is
	// committed the plain way: Buildah may leave traces of its mount
	// targets that its commit knows to skip.
	if stageable {
		id, err := r.commitDirect(ctx, b, st, writesLayer, pt)
		if err == nil {
			if err := ctx.Err(); err != nil {
				// Cancelled while committing: the image is not the step's result.
				_, _ = r.store.DeleteImage(id, true)
				return "", fmt.Errorf("%s: %w", st.Name, err)
			}
			return id, nil
		}
		if !errors.Is(err, errNoDirectCommit) {
			return "", fmt.Errorf("%s: committing: %w", st.Name, err)
		}
		pt.note("committed by Buildah: " + err.Error())
	}
	// The fallback: a COPY/ADD step's layer linked into a staged layer.
	// Not a RUN step's: staging through the driver's staging directories
	// at every step multiplies a containers/storage race (a staging
	// directory is created before its lock; another process's Shutdown
	// that sweeps it in between leaves one this process cannot clean, so
	// its Shutdown keeps the driver's home mounted).
	var staged *stagedLayer
	if writesLayer && stageable && !st.runsCommands() {
		var err error
		if staged, err = r.stageLayer(b); err != nil {
			pt.note("staging failed, the commit writes the layer: " + err.Error())
		}
		if staged != nil {
			pt.mark("stage")
			Failpoint("staged")
		} else {
			pt.mark("no-stage")
		}
	}
	var id string
	err = retryStagingRace(func() error {
		var err error
		id, _, _, err = b.Commit(ctx, nil, buildah.CommitOptions{
			PreferredManifestType: manifestType(st.Format),
			SystemContext:         r.SystemContext(),
			SignaturePolicyPath:   r.policyPath,
			EmptyLayer:            !writesLayer,
			SourceDateEpoch:       st.SourceDateEpoch,
			RewriteTimestamp:      st.SourceDateEpoch != nil,
		})
		return err
	}, pt.note)
	pt.mark("commit")
	r.dropStaged(staged, id)
	if err != nil {
		return "", fmt.Errorf("%s: committing: %w", st.Name, err)
	}
	if err := ctx.Err(); err != nil {
		// Cancelled while committing: the image is not the step's result.
		_, _ = r.store.DeleteImage(id, true)
		return "", fmt.Errorf("%s: %w", st.Name, err)
	}
	return id, nil
}

// runsCommands says whether the step runs anything in its container.
func (st Step) runsCommands() bool { return len(st.Commands) > 0 || len(st.Argv) > 0 }

// manifestType is Buildah's name for an image format: "docker" or ""
// (OCI).
func manifestType(format string) string {
	if format == "docker" {
		return define.Dockerv2ImageManifest
	}
	return define.OCIv1ImageManifest
}

func (r *Runtime) run(ctx context.Context, b *buildah.Builder, st Step, argv []string, cmd string, g *gpuRun, upper string, copied *[]copiedDir) error {
	var mounts []specs.Mount
	for _, m := range st.Mounts {
		if m.Tmpfs {
			mounts = append(mounts, specs.Mount{Source: "tmpfs", Destination: m.Dest, Type: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
			continue
		}
		opts := []string{"rbind", "ro"}
		if m.Writable {
			opts = []string{"rbind", "rw"}
		}
		mounts = append(mounts, specs.Mount{Source: m.Src, Destination: m.Dest, Type: "bind", Options: opts})
	}
	ns, netcfg := hostNetwork(), define.NetworkDefault
	if st.NoNetwork {
		ns, netcfg = define.NamespaceOptions{{Name: "network", Host: false}}, define.NetworkDisabled
	}
	tail := newTailWriter(20)
	var out io.Writer = tail
	if st.Output != nil {
		out = io.MultiWriter(tail, st.Output)
	}
	hostname := b.ContainerID
	if len(hostname) > 12 {
		hostname = hostname[:12]
	}
	env := st.RunEnv
	var devices []string
	cdiDir := ""
	if g != nil {
		env = append(slices.Clone(env), g.env(append(b.Env(), st.RunEnv...))...)
		devices, cdiDir = g.names, g.dir
	}
	if g == nil && !r.buildahRun {
		err := r.runDirect(ctx, b, argv, env, mounts, hostname, st.NoNetwork, out, upper, copied)
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("%s: %w", st.Name, ctx.Err())
		}
		return r.stepError(st, cmd, tail, err)
	}
	done := make(chan error, 1)
	go func() {
		done <- b.Run(argv, buildah.RunOptions{
			DeviceSpecs:      devices,
			CDIConfigDir:     cdiDir,
			Hostname:         hostname,
			Runtime:          r.runtime,
			Isolation:        r.isolation(),
			Env:              env,
			Mounts:           mounts,
			NamespaceOptions: ns,
			ConfigureNetwork: netcfg,
			Terminal:         buildah.WithoutTerminal,
			Stdin:            strings.NewReader(""),
			Stdout:           out,
			Stderr:           out,
			Quiet:            true,
			CgroupManager:    "cgroupfs",
			// Buildah logs cleanup failures through it and dereferences it
			// unchecked (a full disk made it panic).
			Logger:        logrus.StandardLogger(),
			SystemContext: r.SystemContext(),
		})
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// Buildah's Run takes no context: stop the step's container through
		// the runtime (it may still be starting: try for 5 s, unless Run
		// returns first, as it does when Buildah's own signal handler
		// stopped the container), wait for Run to return so the working
		// container can be removed, and report the cancellation.
		returned := false
		for i := 0; i < 50 && !returned; i++ {
			if r.killRunning(hostname, false) != "" {
				break
			}
			select {
			case <-done:
				returned = true
			case <-time.After(100 * time.Millisecond):
			}
		}
		if !returned {
			<-done
		}
		return fmt.Errorf("%s: %w", st.Name, ctx.Err())
	}
	return r.stepError(st, cmd, tail, err)
}

// upperDir is the directory of b's container layer that holds what its
// steps change (overlay's upper directory), or "" for a driver without
// one.
func (r *Runtime) upperDir(b *buildah.Builder) string {
	c, err := r.ws.Container(b.ContainerID)
	if err != nil {
		return ""
	}
	if r.store.GraphDriverName() != "overlay" {
		return ""
	}
	upper, err := r.store.DifferTarget(c.LayerID)
	if err != nil {
		return ""
	}
	return upper
}

// copySourceNames names a copy's sources for an error.
func copySourceNames(c Copy) string {
	if c.ContextDir != "" {
		return strings.Join(c.Sources, " ")
	}
	return c.Src
}

// stepError is the error of a command that failed with err (nil when it
// did not): its exit code, when it has one, and the end of its output.
func (r *Runtime) stepError(st Step, cmd string, tail *tailWriter, err error) error {
	if err == nil {
		return nil
	}
	se := &StepError{Step: st.Name, Command: cmd, ExitCode: -1, Tail: tail.Lines(), Err: err, Hint: r.diskHint()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		se.ExitCode = ee.ExitCode()
	}
	return se
}

// runDirect runs argv in the working container b (mounted) through one
// `runc run` (ocirun.go), as Buildah's Run would run it.
func (r *Runtime) runDirect(ctx context.Context, b *buildah.Builder, argv, env []string, mounts []specs.Mount, hostname string, noNetwork bool, out io.Writer, upper string, copied *[]copiedDir) error {
	root := b.MountPoint
	if root == "" {
		return errors.New("the working container is not mounted")
	}
	u, _, err := lookupUser(root, b.User())
	if err != nil {
		return err
	}
	cwd := b.WorkDir()
	if cwd == "" {
		cwd = "/"
	}
	if err := mkdirOwned(root, cwd, int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("making the working directory %s: %w", cwd, err)
	}
	dir, err := r.takeRunDir()
	if err != nil {
		return err
	}
	ok := false
	defer func() { r.giveRunDir(dir, ok) }()
	files, err := stepFiles(dir, hostname, noNetwork, containerenvFor(b.Container, b.ContainerID))
	if err != nil {
		return fmt.Errorf("writing the container's /etc files: %w", err)
	}
	targets := slices.Collect(maps.Keys(files))
	for _, m := range mounts {
		targets = append(targets, m.Destination)
	}
	created := noteTargets(root, upper, targets)
	defer func() {
		created.undo()
		*copied = append(*copied, created.copiedUp...)
	}()
	spec := ociSpec(runSpec{
		Root:      root,
		Argv:      argv,
		Env:       mergeEnv([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, b.Env(), env),
		Cwd:       cwd,
		User:      u,
		Hostname:  hostname,
		NoNetwork: noNetwork,
		Files:     files,
		Mounts:    mounts,
		Caps:      defaultCapabilities,
		Rlimit:    rlimits(),
	})
	if err := withSeccomp(spec); err != nil {
		return err
	}
	err = ociRun(ctx, r.runtime, dir, "strata-"+hostname+"-"+randomSuffix()[:8], spec, out)
	ok = err == nil
	return err
}

// takeRunDir returns a directory for a command's OCI bundle: one a
// finished command of this process left (its files are written again in
// place: a new file costs an inode allocation, which is slow on a disk
// that has just freed many), else a new one.
func (r *Runtime) takeRunDir() (string, error) { return r.runDirs.take() }

// giveRunDir keeps dir for the next command when its command ran (ok),
// else removes it.
func (r *Runtime) giveRunDir(dir string, ok bool) {
	if !ok {
		_ = os.RemoveAll(dir)
		return
	}
	r.runDirs.give(dir)
}

// dropRunDirs removes the kept bundle directories (Close).
func (r *Runtime) dropRunDirs() { r.runDirs.drop() }

// dirPool keeps directories of this process for reuse: each is named
// "<runDirPrefix><pid>-..." in the temporary directory, so that the
// reaper removes those of a process that died.
type dirPool struct {
	mu   sync.Mutex
	dirs []string
}

// take returns a kept directory, else a new one.
func (p *dirPool) take() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.dirs); n > 0 {
		dir := p.dirs[n-1]
		p.dirs = p.dirs[:n-1]
		return dir, nil
	}
	return os.MkdirTemp("", fmt.Sprintf("%s%d-", runDirPrefix, os.Getpid()))
}

// give keeps dir for the next take.
func (p *dirPool) give(dir string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirs = append(p.dirs, dir)
}

// drop removes every kept directory.
func (p *dirPool) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, dir := range p.dirs {
		_ = os.RemoveAll(dir)
	}
	p.dirs = nil
}

// deleteInBackground removes the working container b in the background,
// one removal at a time.
func (r *Runtime) deleteInBackground(b *buildah.Builder) {
	r.pendMu.Lock()
	r.pending++
	r.pendMu.Unlock()
	go func() {
		defer func() {
			r.pendMu.Lock()
			r.pending--
			if r.pending == 0 && r.settled != nil {
				r.settled.Broadcast()
			}
			r.pendMu.Unlock()
		}()
		r.deleteMu.Lock()
		defer r.deleteMu.Unlock()
		if err := b.Delete(); err != nil {
			r.deleteLater(b)
		}
	}()
}

// SettleDeletes waits until the working containers of the steps executed
// so far are removed (or kept for a retry when their removal failed). A
// build calls it before it returns, so that no working container of its
// own is left when it does.
func (r *Runtime) SettleDeletes() {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	if r.settled == nil {
		r.settled = sync.NewCond(&r.pendMu)
	}
	for r.pending > 0 {
		r.settled.Wait()
	}
}

// deleteLater keeps a working container whose removal failed.
func (r *Runtime) deleteLater(b *buildah.Builder) {
	r.leftMu.Lock()
	defer r.leftMu.Unlock()
	r.leftovers = append(r.leftovers, b)
}

// retryDeletes removes the working containers whose removal failed before.
func (r *Runtime) retryDeletes() {
	r.leftMu.Lock()
	defer r.leftMu.Unlock()
	var still []*buildah.Builder
	for _, b := range r.leftovers {
		if b.Delete() != nil {
			still = append(still, b)
		}
	}
	r.leftovers = still
}

// diskHint says so when the store's filesystem is (nearly) full: a step's
// writes then fail with errors such as "I/O error" that do not name the
// cause.
func (r *Runtime) diskHint() string {
	var fs unix.Statfs_t
	root := r.store.GraphRoot()
	if unix.Statfs(root, &fs) != nil {
		return ""
	}
	free := fs.Bavail * uint64(fs.Bsize)
	total := fs.Blocks * uint64(fs.Bsize)
	if free >= 8<<20 && free*100 >= total {
		return ""
	}
	return fmt.Sprintf("the store's filesystem is full (%s: %d KiB free of %d MiB): free some space and build again; nothing was recorded for this step",
		root, free>>10, total>>20)
}

// killRunning sends SIGKILL to the processes of the runtime container whose
// hostname is hostname: the step running on one working container (Run is
// given the container's short ID as hostname, Buildah's own default). It
// returns the container's bundle directory ("" when none was found).
// With remove, it also waits for the container to stop and deletes the
// runtime's record of it (Run's own cleanup does that when Run is still
// there to return). Errors are ignored; it tries once.
func (r *Runtime) killRunning(hostname string, remove bool) string {
	out, err := exec.Command(r.runtime, "list", "-q").Output()
	if err == nil {
		for _, id := range strings.Fields(string(out)) {
			st, err := exec.Command(r.runtime, "state", id).Output()
			if err != nil {
				continue
			}
			var state struct {
				Bundle string `json:"bundle"`
			}
			if json.Unmarshal(st, &state) != nil || state.Bundle == "" {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(state.Bundle, "config.json"))
			if err != nil {
				continue
			}
			var spec struct {
				Hostname string `json:"hostname"`
			}
			if json.Unmarshal(raw, &spec) != nil || spec.Hostname != hostname {
				continue
			}
			_ = exec.Command(r.runtime, "kill", id, "KILL").Run()
			if remove {
				// delete --force kills what is left and waits for it.
				_ = exec.Command(r.runtime, "delete", "--force", id).Run()
			}
			return state.Bundle
		}
	}
	return ""
}

// runtimeMountpoints are directories the OCI runtime creates in the rootfs
// to mount over when the image lacks them; they are not the step's output.
var runtimeMountpoints = []string{"dev", "proc", "sys"}

// mountpoints lists the paths, relative to root, that the runtime will
// create for a step's mounts and that must not be committed: the runtime's
// own (kept when the step put something in them) and, for each Mount, the
// topmost component of its target that does not exist yet (always removed).
type mountpoints struct{ runtime, mounts []string }

func missingMountpoints(root string, ms []Mount) mountpoints {
	var out mountpoints
	for _, p := range runtimeMountpoints {
		if _, err := os.Lstat(filepath.Join(root, p)); os.IsNotExist(err) {
			out.runtime = append(out.runtime, p)
		}
	}
	for _, m := range ms {
		rel := strings.TrimPrefix(filepath.Clean("/"+m.Dest), "/")
		parts := strings.Split(rel, "/")
		for i := range parts {
			p := filepath.Join(parts[:i+1]...)
			if _, err := os.Lstat(filepath.Join(root, p)); os.IsNotExist(err) {
				if !slices.Contains(out.mounts, p) {
					out.mounts = append(out.mounts, p)
				}
				break
			}
		}
	}
	return out
}

// removeCreatedMountpoints removes the mountpoints the runtime created so
// they do not land in the committed layer.
func removeCreatedMountpoints(root string, created mountpoints) {
	for _, p := range created.runtime {
		_ = os.Remove(filepath.Join(root, p)) // fails, and keeps it, when not empty
	}
	for _, p := range created.mounts {
		_ = os.RemoveAll(filepath.Join(root, p))
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func applyConfig(b *buildah.Builder, c ConfigChange) {
	if c.empty() {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		setEnv(b, k, c.Env[k])
	}
	if c.Workdir != nil {
		b.SetWorkDir(*c.Workdir)
	}
	if c.Entrypoint != nil {
		b.SetEntrypoint(*c.Entrypoint)
	}
	if c.Cmd != nil {
		b.SetCmd(*c.Cmd)
	}
	if c.User != nil {
		b.SetUser(*c.User)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		b.SetLabel(k, c.Labels[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.Annotations)) {
		b.SetAnnotation(k, c.Annotations[k])
	}
	for _, p := range c.Ports {
		b.SetPort(p)
	}
	for _, v := range c.Volumes {
		b.AddVolume(v)
	}
	if c.StopSignal != nil {
		b.SetStopSignal(*c.StopSignal)
	}
	if c.Author != nil {
		b.SetMaintainer(*c.Author)
	}
	if c.OnBuildClear {
		b.UnsetLabel(OnBuildLabel)
		b.ClearOnBuild()
	}
	if len(c.OnBuildAdd) > 0 {
		trig := append(OnBuildOf(b.Labels()), c.OnBuildAdd...)
		j, _ := json.Marshal(trig)
		b.SetLabel(OnBuildLabel, string(j))
		// Docker's own field too (kept in the docker format only).
		for _, t := range c.OnBuildAdd {
			b.SetOnBuild(t)
		}
	}
	if c.Shell != nil {
		b.SetShell(*c.Shell)
	}
	if c.Healthcheck != nil {
		b.SetHealthcheck(c.Healthcheck)
	}
	if c.PathPrepend != "" {
		old := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		for _, e := range b.Env() {
			if v, ok := strings.CutPrefix(e, "PATH="); ok {
				old = v
			}
		}
		setEnv(b, "PATH", c.PathPrepend+":"+old)
	}
}

// setEnv sets a variable in the image config where it stands, or last when
// it is new, as Docker does (Buildah's SetEnv moves it to the end).
func setEnv(b *buildah.Builder, k, v string) {
	env := envSet(b.Env(), k, v)
	b.ClearEnv()
	for _, e := range env {
		ek, ev, _ := strings.Cut(e, "=")
		b.SetEnv(ek, ev)
	}
}

// envSet returns env (KEY=value entries) with k set to v: in place when
// k is there, appended when not.
func envSet(env []string, k, v string) []string {
	out := slices.Clone(env)
	for i, e := range out {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			out[i] = k + "=" + v
			return out
		}
	}
	return append(out, k+"="+v)
}

// defaultCapabilities are the capabilities a step's processes hold (inside
// the user namespace when rootless): the usual container default set, so
// that package managers can chown and write root-owned paths.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

func (r *Runtime) isolation() define.Isolation {
	if r.rootless {
		return define.IsolationOCIRootless
	}
	return define.IsolationOCI
}

func hostNetwork() define.NamespaceOptions {
	return define.NamespaceOptions{{Name: "network", Host: true}}
}

// noNetwork stands in for netavark: steps always use the host's network
// namespace, so no network backend is ever asked to set anything up.
type noNetwork struct{}

var errNoNetworks = errors.New("strata runs steps in the host network namespace; private networks are not supported")

func (noNetwork) NetworkCreate(types.Network, *types.NetworkCreateOptions) (types.Network, error) {
	return types.Network{}, errNoNetworks
}
func (noNetwork) NetworkUpdate(string, types.NetworkUpdateOptions) error { return errNoNetworks }
func (noNetwork) NetworkRemove(string) error                             { return errNoNetworks }
func (noNetwork) NetworkList(...types.FilterFunc) ([]types.Network, error) {
	return nil, nil
}
func (noNetwork) NetworkInspect(string) (types.Network, error) {
	return types.Network{}, errNoNetworks
}
func (noNetwork) Setup(string, types.SetupOptions) (map[string]types.StatusBlock, error) {
	return nil, errNoNetworks
}
func (noNetwork) Teardown(string, types.TeardownOptions) error { return nil }
func (noNetwork) RunInRootlessNetns(func() error) error        { return errNoNetworks }
func (noNetwork) RootlessNetnsInfo() (*types.RootlessNetnsInfo, error) {
	return nil, errNoNetworks
}
func (noNetwork) Drivers() []string              { return nil }
func (noNetwork) DefaultNetworkName() string     { return "none" }
func (noNetwork) NetworkInfo() types.NetworkInfo { return types.NetworkInfo{} }
