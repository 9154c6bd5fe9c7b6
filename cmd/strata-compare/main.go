// Command strata-compare builds Dockerfiles with strata and with a
// reference builder in the same run and compares what a user gets: the
// final root filesystem (file list, types, modes, owners, symlink
// targets, device numbers, content digests; never times) and the config
// (Env, WorkingDir, User, Entrypoint, Cmd, Labels without buildah's own
// version label, ExposedPorts, Volumes, StopSignal, and the Author). It
// also times a cold build and a no-change rebuild on each side, and with
// -edit a rebuild after appending an empty line to one context file (in a
// copy of the context). strata's side runs through the library (a session
// per build) or, with -cli, through the strata command (a process per
// build, as the reference's side is).
//
// The reference (-ref) is Debian's `buildah bud --layers` (buildah.go) or
// BuildKit, the reference for Dockerfile semantics: `buildkitd` under
// RootlessKit, driven by `buildctl` (buildkit.go; make buildkit-tools
// builds them, -tools names their directory).
//
// One Dockerfile:
//
//	strata-compare -dockerfile path/Dockerfile [-context DIR] [-base NAME=ROOTFS.tar]
//	    [-build-arg K=V] [-target STAGE] [-secret ID=VALUE] [-edit FILE] [-ref buildkit]
//
// A corpus (every *.Dockerfile in a directory, one shared context; "# args:
// K=V ..." and "# target: NAME" header lines are honoured, and every secret
// id a RUN mounts gets a made-up value):
//
//	strata-compare -corpus DIR -context DIR
//
// FROM names without a -base are served from a busybox rootfs made from
// the host's busybox-static (name "busybox"). Each side imports the same
// base image (strata exports it once, the reference imports that export).
// Run it as an ordinary user with subuid/subgid ranges: `make compare`
// does. The exit status is 1 when an image differs, 0 otherwise (files
// that one side refuses are reported, not counted as differences).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/imagediff"
	"github.com/stratabuild/strata/pkg/rootfs"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if builder.InitReexec() {
		return
	}
	var c config
	var bases, args, secrets listFlag
	flag.StringVar(&c.dockerfile, "dockerfile", "", "the Dockerfile to build")
	flag.StringVar(&c.corpus, "corpus", "", "a directory of *.Dockerfile files to build one by one")
	flag.StringVar(&c.context, "context", "", "build context (default: the Dockerfile's directory)")
	flag.StringVar(&c.target, "target", "", "stage to build")
	flag.StringVar(&c.edit, "edit", "", "a context file (relative to the context) to append an empty line to, in a copy of the context, before a third, timed build")
	flag.StringVar(&c.cli, "cli", "", "build strata's side with this strata command, a process per build as on the reference's side (default: the library, a session per build)")
	flag.StringVar(&c.work, "work", "/tmp/strata-compare", "scratch directory (emptied first)")
	flag.StringVar(&c.ref, "ref", "buildah", "the builder to compare with: buildah (Debian's buildah bud --layers) or buildkit (buildkitd under rootlesskit, with buildctl)")
	flag.StringVar(&c.tools, "tools", "", "directory of the buildkit reference's programs: buildkitd, buildctl, rootlesskit (default: PATH)")
	flag.BoolVar(&c.verbose, "v", false, "print each side's build output when it fails")
	flag.Var(&bases, "base", "NAME=ROOTFS.tar: FROM NAME uses this rootfs tarball (repeatable)")
	flag.Var(&args, "build-arg", "K=V (repeatable)")
	flag.Var(&secrets, "secret", "ID=VALUE for RUN --mount=type=secret,id=ID (repeatable)")
	flag.Parse()
	if (c.dockerfile == "") == (c.corpus == "") {
		fmt.Fprintln(os.Stderr, "strata-compare: give -dockerfile FILE or -corpus DIR")
		flag.Usage()
		os.Exit(2)
	}
	c.bases = kv(bases)
	c.args = kv(args)
	c.secrets = kv(secrets)
	differs, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-compare:", err)
		os.Exit(3)
	}
	if differs {
		os.Exit(1)
	}
}

func kv(l []string) map[string]string {
	m := map[string]string{}
	for _, s := range l {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return m
}

type config struct {
	dockerfile, corpus, context, target, edit, work, cli, ref, tools string
	verbose                                                          bool
	bases, args, secrets                                             map[string]string
}

// job is one Dockerfile to build on both sides.
type job struct {
	name       string
	dockerfile string
	context    string
	args       map[string]string
	target     string
	secrets    map[string]string
}

// outcome is what happened to one job.
type outcome struct {
	job
	strataErr, refErr error
	// refFirstErr is the reference's error on a first try that a second
	// try got past (see run).
	refFirstErr error
	diffs       []imagediff.Difference
	strata, ref timings
}

type timings struct{ cold, warm, edit time.Duration }

func run(c config) (bool, error) {
	// A store left by an earlier run holds files of sub-uids that only
	// the reference's own user namespace can remove.
	cleanOldReference(c.work)
	_ = exec.Command("rm", "-rf", c.work).Run()
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return false, err
	}
	if _, ok := c.bases["busybox"]; !ok {
		p := filepath.Join(c.work, "busybox-rootfs.tar")
		if err := rootfs.WriteBusyboxFile(p); err != nil {
			return false, err
		}
		c.bases["busybox"] = p
	}
	jobs, err := c.jobs()
	if err != nil {
		return false, err
	}
	ctx := context.Background()
	st := strataSide{ctx: ctx, cli: c.cli, graph: filepath.Join(c.work, "strata", "graph"), runroot: filepath.Join(c.work, "strata", "run"),
		mounts: filepath.Join(c.work, "strata", "mounts"), bases: c.bases, images: map[string]builder.Image{}}
	s, err := st.open()
	if err != nil {
		return false, err
	}
	defer s.Close()
	ref, err := newReference(c)
	if err != nil {
		return false, err
	}
	defer ref.remove()
	// The same base image on both sides: strata exports it, the
	// reference imports that export (buildah names what it pulls from an
	// OCI layout after the layout's path, which must then be lower case:
	// the layout lives in its own temp dir).
	layout, err := os.MkdirTemp("", "strata-compare-bases-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(layout)
	for _, name := range slices.Sorted(maps.Keys(c.bases)) {
		img := builder.FromArchive(c.bases[name])
		if _, err := s.Build(ctx, img, builder.ExportTo("oci:"+layout+":"+name)); err != nil {
			return false, fmt.Errorf("base %s: %w", name, err)
		}
		st.images[name] = builder.FromOCILayout(layout + ":" + name)
		if err := ref.base(layout, name); err != nil {
			return false, fmt.Errorf("%s: base %s: %w", ref.name(), name, err)
		}
	}

	var outs []outcome
	for i, j := range jobs {
		o := outcome{job: j}
		dir := filepath.Join(c.work, "out", fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, err
		}
		o.strataErr = st.build(j, dir, &o.strata, c.edit)
		o.refErr = ref.build(j, dir, &o.ref, c.edit)
		if o.strataErr == nil && o.refErr != nil {
			// A reference that fails where strata built gets one more
			// try: the outcome is about Dockerfile semantics, and a
			// refusal is one when it holds (Debian's buildah failed
			// once in CI on a file it builds every other time).
			o.ref = timings{}
			if err := ref.build(j, dir, &o.ref, c.edit); err == nil {
				o.refFirstErr, o.refErr = o.refErr, nil
			}
		}
		if o.strataErr == nil && o.refErr == nil {
			o.diffs, err = compare(dir, ref.name())
			if err != nil {
				return false, fmt.Errorf("%s: %w", j.name, err)
			}
		}
		report(os.Stdout, o, ref.name(), c.verbose, c.edit != "")
		outs = append(outs, o)
	}
	return summary(os.Stdout, outs, ref.name()), nil
}

var secretID = regexp.MustCompile(`type=secret[^ ]*?id=([A-Za-z0-9_.-]+)|id=([A-Za-z0-9_.-]+)[^ ]*?type=secret`)

func (c config) jobs() ([]job, error) {
	if c.dockerfile != "" {
		ctxDir := c.context
		if ctxDir == "" {
			ctxDir = filepath.Dir(c.dockerfile)
		}
		if c.edit != "" {
			// Edits go to a copy: the caller's files are never changed.
			cp := filepath.Join(c.work, "context")
			if err := os.MkdirAll(cp, 0o755); err != nil {
				return nil, err
			}
			if out, err := exec.Command("cp", "-a", ctxDir+"/.", cp+"/").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("copying the context: %v: %s", err, out)
			}
			ctxDir = cp
		}
		return []job{{name: c.dockerfile, dockerfile: c.dockerfile, context: ctxDir, args: c.args, target: c.target, secrets: c.secrets}}, nil
	}
	if c.context == "" {
		return nil, errors.New("-corpus needs -context")
	}
	// The corpus's context is copied, with tar archives (plain and gzip)
	// for ADD to unpack.
	ctxDir := filepath.Join(c.work, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.Command("cp", "-a", c.context+"/.", ctxDir+"/").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying the context: %v: %s", err, out)
	}
	if err := writeFilesTar(filepath.Join(ctxDir, "files.tar")); err != nil {
		return nil, err
	}
	gz := exec.Command("sh", "-c", "gzip -n -c files.tar > files.tar.gz")
	gz.Dir = ctxDir
	if out, err := gz.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("gzip: %v: %s", err, out)
	}
	files, err := filepath.Glob(filepath.Join(c.corpus, "*.Dockerfile"))
	if err != nil {
		return nil, err
	}
	var jobs []job
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		j := job{name: filepath.Base(f), dockerfile: f, context: ctxDir, args: map[string]string{}, secrets: map[string]string{}}
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "# args:"); ok {
				for _, a := range strings.Fields(v) {
					k, val, _ := strings.Cut(a, "=")
					j.args[k] = val
				}
			}
			if v, ok := strings.CutPrefix(l, "# target:"); ok {
				j.target = strings.TrimSpace(v)
			}
			for _, m := range secretID.FindAllStringSubmatch(l, -1) {
				id := m[1] + m[2]
				j.secrets[id] = "compare-secret-" + id
			}
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// strataSide builds jobs with strata: through the library (one session per
// build on one store) or, with -cli, through the strata command (a process
// per build, as on the reference's side).
type strataSide struct {
	ctx     context.Context
	cli     string
	graph   string
	runroot string
	mounts  string
	bases   map[string]string        // FROM name -> rootfs tarball (for the command)
	images  map[string]builder.Image // FROM name -> image (for the library)
}

func (st strataSide) open() (*builder.Session, error) {
	return builder.Open(st.ctx, builder.WithStore(st.graph, st.runroot), builder.WithCacheMountDir(st.mounts))
}

// once runs one build of j, exporting the image to export when it is set.
func (st strataSide) once(j job, export string, out *bytes.Buffer) error {
	if st.cli != "" {
		args := []string{"build", "--store", st.graph, "--runroot", st.runroot, "--progress=plain", "-f", j.dockerfile}
		for _, name := range slices.Sorted(maps.Keys(st.bases)) {
			args = append(args, "--build-context", name+"=archive:"+st.bases[name])
		}
		for _, k := range slices.Sorted(maps.Keys(j.args)) {
			args = append(args, "--build-arg", k+"="+j.args[k])
		}
		if j.target != "" {
			args = append(args, "--target", j.target)
		}
		env := os.Environ()
		for i, id := range slices.Sorted(maps.Keys(j.secrets)) {
			v := fmt.Sprintf("STRATA_COMPARE_SECRET_%d", i)
			args = append(args, "--secret", "id="+id+",env="+v)
			env = append(env, v+"="+j.secrets[id])
		}
		if export != "" {
			args = append(args, "--output", export)
		}
		cmd := exec.Command(st.cli, append(args, j.context)...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("strata build: %w", err)
		}
		return nil
	}
	opts := []builder.DockerfileOption{builder.ContextDir(j.context), builder.BuildArgs(j.args)}
	if j.target != "" {
		opts = append(opts, builder.Target(j.target))
	}
	for name, img := range st.images {
		opts = append(opts, builder.BuildContext(name, img))
	}
	if len(j.secrets) > 0 {
		opts = append(opts, builder.WithSecrets(builder.SecretFromMap("compare", j.secrets)))
	}
	bo := []builder.BuildOption{builder.WithOutput(out)}
	if export != "" {
		bo = append(bo, builder.ExportTo(export))
	}
	s, err := st.open()
	if err != nil {
		return err
	}
	_, err = s.Build(st.ctx, builder.FromDockerfile(j.dockerfile, opts...), bo...)
	if cerr := s.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing the session: %w", cerr)
	}
	return err
}

// build builds j as timed says, exporting the image to dir/strata.
func (st strataSide) build(j job, dir string, t *timings, edit string) error {
	var out bytes.Buffer
	once := func(export string) error {
		if err := st.once(j, export, &out); err != nil {
			return fmt.Errorf("%w\n%s", err, tail(out.String()))
		}
		return nil
	}
	return timed(t, j, edit, func() error { return once("") },
		func() error { return once("oci:" + filepath.Join(dir, "strata") + ":out") })
}

// timed is the sequence both sides run: a cold build and a no-change
// rebuild, timed; the export, untimed; and with edit, a rebuild after
// editing that context file, timed.
func timed(t *timings, j job, edit string, build, export func() error) error {
	run := func(d *time.Duration) error {
		t0 := time.Now()
		err := build()
		*d = time.Since(t0)
		return err
	}
	if err := run(&t.cold); err != nil {
		return err
	}
	if err := run(&t.warm); err != nil {
		return err
	}
	if err := export(); err != nil {
		return err
	}
	if edit == "" {
		return nil
	}
	undo, err := edited(filepath.Join(j.context, edit))
	if err != nil {
		return err
	}
	defer undo()
	return run(&t.edit)
}

// edited appends an empty line to a context file (a change no language
// minds) and returns what puts it back.
func edited(p string) (func(), error) {
	old, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("-edit: %w", err)
	}
	if err := os.WriteFile(p, append(slices.Clone(old), '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("-edit: %w", err)
	}
	return func() { _ = os.WriteFile(p, old, 0o644) }, nil
}

func tail(s string) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > 15 {
		l = l[len(l)-15:]
	}
	return strings.Join(l, "\n")
}

// compare loads the two images a job made (dir/strata and dir/<ref>,
// both named "out") and lists their differences.
func compare(dir, ref string) ([]imagediff.Difference, error) {
	a, err := imagediff.Load(filepath.Join(dir, "strata"), "out")
	if err != nil {
		return nil, fmt.Errorf("strata's image: %w", err)
	}
	b, err := imagediff.Load(filepath.Join(dir, ref), "out")
	if err != nil {
		return nil, fmt.Errorf("%s's image: %w", ref, err)
	}
	dropStubs(a, b)
	return imagediff.Compare(a, b, imagediff.Options{IgnoreLabels: []string{"io.buildah."}}), nil
}

// runStubs are the mount points a RUN needs. Buildah 1.28 leaves them in
// the layer of every RUN as empty files and directories where the image
// had none; strata (like BuildKit) removes them.
var runStubs = []string{"dev", "proc", "sys", "run", "etc/hostname", "etc/hosts", "etc/resolv.conf"}

// dropStubs removes from the reference's image the empty stubs strata's
// image does not have.
func dropStubs(strata, ref *imagediff.Image) {
	for _, p := range runStubs {
		f, ok := ref.Files[p]
		if _, inStrata := strata.Files[p]; !ok || inStrata {
			continue
		}
		empty := f.Type == 'f' && f.Size == 0 || f.Type == 'd'
		for n := range ref.Files {
			if strings.HasPrefix(n, p+"/") {
				empty = false
			}
		}
		if empty {
			delete(ref.Files, p)
		}
	}
}

func report(w io.Writer, o outcome, ref string, verbose, edit bool) {
	state := "same"
	switch {
	case o.strataErr != nil && o.refErr != nil:
		state = "both refused"
	case o.strataErr != nil:
		state = "strata refused"
	case o.refErr != nil:
		state = ref + " refused"
	case len(o.diffs) > 0:
		state = fmt.Sprintf("DIFFERENT (%d)", len(o.diffs))
	}
	fmt.Fprintf(w, "== %s: %s\n", o.name, state)
	firstLine := func(err error) string {
		l, _, _ := strings.Cut(err.Error(), "\n")
		return l
	}
	for _, side := range []struct {
		name string
		err  error
	}{{"strata", o.strataErr}, {ref, o.refErr}} {
		if side.err == nil {
			continue
		}
		fmt.Fprintf(w, "   %-8s %s\n", side.name+":", firstLine(side.err))
		if verbose {
			fmt.Fprintln(w, indent(side.err.Error()))
		}
	}
	if o.refFirstErr != nil {
		fmt.Fprintf(w, "   %s failed on its first try, built on its second: %s\n", ref, firstLine(o.refFirstErr))
		if verbose {
			fmt.Fprintln(w, indent(o.refFirstErr.Error()))
		}
	}
	for _, d := range o.diffs {
		fmt.Fprintf(w, "   %s   (strata | %s)\n", d, ref)
	}
	if o.strataErr == nil && o.refErr == nil {
		fmt.Fprintf(w, "   %-22s %9s %9s %7s\n", "time", "strata", ref, "ratio")
		row := func(name string, s, b time.Duration) {
			fmt.Fprintf(w, "   %-22s %8.3fs %8.3fs %6.2fx\n", name, s.Seconds(), b.Seconds(), b.Seconds()/s.Seconds())
		}
		row("cold build", o.strata.cold, o.ref.cold)
		row("no-change rebuild", o.strata.warm, o.ref.warm)
		if edit {
			row("one-file-edit rebuild", o.strata.edit, o.ref.edit)
		}
	}
}

func indent(s string) string {
	return "      " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n      ")
}

func summary(w io.Writer, outs []outcome, ref string) bool {
	var same, differ, both, strataOnly, refOnly int
	for _, o := range outs {
		switch {
		case o.strataErr != nil && o.refErr != nil:
			both++
		case o.strataErr != nil:
			strataOnly++
		case o.refErr != nil:
			refOnly++
		case len(o.diffs) > 0:
			differ++
		default:
			same++
		}
	}
	fmt.Fprintf(w, "\n%d Dockerfiles: %d built by both and the same, %d built by both and different, "+
		"%d refused by both, %d refused by strata only, %d refused by %s only\n",
		len(outs), same, differ, both, strataOnly, refOnly, ref)
	fmt.Fprintf(w, "(ratio = %s time / strata time; above 1 means strata is faster)\n", ref)
	return differ > 0
}

// writeFilesTar writes the archive that the corpus's ADD instructions
// unpack: a directory, two files (one executable, one owned by 1000), and
// a symlink.
func writeFilesTar(p string) error {
	src, err := os.MkdirTemp("", "strata-compare-tar-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	files := map[string]string{"f/one.txt": "one\n", "f/two/two.txt": "two\n", "f/tool.sh": "#!/bin/sh\necho tool\n"}
	for n, body := range files {
		fp := filepath.Join(src, n)
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(n, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(fp, []byte(body), mode); err != nil {
			return err
		}
	}
	if err := os.Symlink("one.txt", filepath.Join(src, "f", "link")); err != nil {
		return err
	}
	out, err := exec.Command("tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0",
		"-C", src, "-cf", p, "f").CombinedOutput()
	if err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	return nil
}
