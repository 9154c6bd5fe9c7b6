package builder

import (
	"archive/tar"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/runners"
)

var update = flag.Bool("update", false, "rewrite builder/testdata/plankeys.golden")

// lowerFixture is a build context and a set of images that, between
// them, use every step kind and every Dockerfile instruction strata
// plans, each with its options.
type lowerFixture struct {
	dir    string
	images map[string]Image
}

var lowerFn = RegisterFunction("lower-test-fn", "v1", func(context.Context, []string) error { return nil })

const lowerDockerfile = `# syntax=docker/dockerfile:1
ARG TAG=one
FROM base AS deps
ARG TAG
ENV APP=/app PORT=8080
LABEL org.example.a=1 org.example.b="two words"
MAINTAINER someone@example.com
WORKDIR $APP/src
RUN echo $TAG > tag && mkdir -p /out
RUN ["/bin/sh", "-c", "echo exec > /out/exec"]
RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked echo cached
RUN --mount=type=tmpfs,target=/scratch --network=none echo tmpfs
RUN --mount=type=secret,id=tok,env=TOKEN test -n "$TOKEN"
RUN --mount=type=bind,source=conf,target=/conf cat /conf
RUN <<EOF
echo heredoc > /out/here
EOF
COPY --chown=1000:1000 --chmod=640 conf /etc/conf
COPY src/*.txt /txt/
COPY --exclude=*.tmp src/ /src/
COPY <<EOF /etc/inline.txt
inline file
EOF
ADD files.tar /unpacked/

FROM base
COPY --from=deps /out /out
RUN --mount=type=bind,from=deps,source=/out,target=/mnt/out cat /mnt/out/exec
USER 1000:1000
STOPSIGNAL SIGTERM
EXPOSE 8080 53/udp
VOLUME /data
SHELL ["/bin/sh", "-ec"]
RUN echo shell form
ONBUILD RUN echo triggered
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/app"]
CMD ["--serve"]
`

// writeTestTar writes a tar of files (fixed modes and times) at p.
func writeTestTar(t *testing.T, p string, files map[string]string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, name := range []string{"f1", "d/f2"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func newLowerFixture(t *testing.T) lowerFixture {
	t.Helper()
	dir := tempTree(t, map[string]string{
		"conf": "key=value\n", "src/a.txt": "a", "src/b.txt": "b", "src/c.tmp": "c",
		"requirements.txt": "requests==2.31.0\n", "app/main.py": "print('hi')\n",
		"Dockerfile": lowerDockerfile,
	})
	writeTestTar(t, filepath.Join(dir, "files.tar"), map[string]string{"f1": "one", "d/f2": "two"})
	base := FromArchive(emptyRootfs(t))
	tok := SecretFromMap("tok", map[string]string{"TOKEN": "s3cret"})
	goChain := base.Shell([]string{"/bin/bash", "-c"}).
		Env(map[string]string{"A": "1", "B": "2"}).
		Workdir("/work").
		RunCommands([]string{"echo hi > /hi", "true"}, WithEnv(map[string]string{"R": "1"}), WithSecrets(tok)).
		RunCommands([]string{"nvidia-smi"}, GPU("H100:2")).
		AptInstall([]string{"git", "curl", "git"}).
		PipInstall([]string{"numpy==2.0.0", "requests"}, IndexURL("http://127.0.0.1:1/simple")).
		PipInstallFromRequirements(filepath.Join(dir, "requirements.txt")).
		UvPipInstall([]string{"rich"}).
		RunFunction(lowerFn, []string{"x", "y z"}).
		AddLocalDir(filepath.Join(dir, "app"), "/app", Copy(), Ignore("*.pyc")).
		AddLocalFile(filepath.Join(dir, "conf"), "/etc/late.conf").
		Entrypoint([]string{"/bin/app"}).
		Cmd([]string{"serve"})
	df := FromDockerfile(filepath.Join(dir, "Dockerfile"), ContextDir(dir), BuildContext("base", base),
		BuildArgs(map[string]string{"TAG": "two"}), WithSecrets(tok))
	cmds := base.DockerfileCommands([]string{"ENV X=1", "RUN echo $X", "COPY conf /conf", `CMD ["sh"]`}, ContextDir(dir))
	return lowerFixture{dir: dir, images: map[string]Image{"go": goChain, "dockerfile": df, "commands": cmds}}
}

// planFor plans img as a session with these settings would.
func planFor(t *testing.T, img Image, sde *time.Time, cleanup, force bool) *Plan {
	t.Helper()
	pe := newPlanEnv(&runners.Resolver{}, sde, t.TempDir())
	pe.cleanup, pe.forceAll = cleanup, force
	p, err := plan(context.Background(), img, pe)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

// writePlanKeys writes a line per step of p, and then of the plans its
// steps copy from or mount.
func writePlanKeys(b *strings.Builder, prefix string, p *Plan) {
	for _, st := range p.Steps {
		fmt.Fprintf(b, "%s %d %s %s %s\n", prefix, st.Index, st.Method, st.Spec.Kind, st.Key)
	}
	for _, st := range p.Steps {
		for i, dp := range st.deps {
			writePlanKeys(b, fmt.Sprintf("%s/step%d-dep%d", prefix, st.Index, i), dp)
		}
	}
}

// TestPlanKeysGolden pins the key of every step the fixture plans, with
// and without the session settings that enter keys: a change to how a
// step is lowered must not change a user's cache (RecipeVersion says
// when it must).
func TestPlanKeysGolden(t *testing.T) {
	fx := newLowerFixture(t)
	sde := time.Unix(1700000000, 0).UTC()
	var b strings.Builder
	for _, name := range []string{"go", "dockerfile", "commands"} {
		for _, mode := range []string{"default", "reproducible"} {
			var p *Plan
			if mode == "default" {
				p = planFor(t, fx.images[name], nil, false, false)
			} else {
				p = planFor(t, fx.images[name], &sde, true, false)
			}
			writePlanKeys(&b, name+"/"+mode, p)
		}
	}
	golden := filepath.Join("testdata", "plankeys.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestPlanKeysGolden -update to write it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("planned keys changed (a user's cache would miss); if on purpose, bump layers.RecipeVersion and run with -update.\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestPlanWritesNothing: planning names the host directories of cache
// mounts and heredoc files but makes them only when the step runs.
func TestPlanWritesNothing(t *testing.T) {
	fx := newLowerFixture(t)
	root := t.TempDir()
	pe := newPlanEnv(&runners.Resolver{}, nil, root)
	p, err := plan(context.Background(), fx.images["dockerfile"], pe)
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(root); err != nil || len(ents) != 0 {
		t.Fatalf("planning wrote %v into the mount root (%v)", ents, err)
	}
	var cache, inline int
	var walk func(*Plan)
	walk = func(p *Plan) {
		for _, st := range p.Steps {
			cache += len(st.cacheMounts)
			inline += len(st.inlines)
			for _, dp := range st.deps {
				walk(dp)
			}
		}
	}
	walk(p)
	if cache == 0 || inline == 0 {
		t.Fatalf("the fixture plans %d cache mounts and %d heredoc files; want some of each", cache, inline)
	}
}

// runView is what the runner is given for a step, as text, with host
// paths made relative to the places they come from: commands, shell,
// environment, mounts, copies, config changes, the images it reads
// (by key), the secrets it gets (by name, never value) and what the
// build makes on the host for it. Left out: the proxy variables
// (unkeyedEnv, deliberately unkeyed, as in BuildKit), Force, and the name
// and history entry, which describe the step (TestHistoryGolden).
func runView(t *testing.T, st PlannedStep, dirs ...string) string {
	t.Helper()
	rs := st.run
	rs.Name, rs.Output, rs.History = "", nil, ""
	var deps []string
	for _, dp := range st.deps {
		deps = append(deps, string(dp.Steps[len(dp.Steps)-1].Key))
	}
	var secrets []string
	for _, sec := range st.secrets {
		for _, k := range sec.keys() {
			secrets = append(secrets, sec.name+"/"+k)
		}
	}
	var secretMounts []string
	for _, m := range st.secretMounts {
		// required only decides whether a missing secret fails the step
		// before it runs: it changes no result, and is not keyed.
		secretMounts = append(secretMounts, fmt.Sprintf("%s %s %s", m.id, m.target, m.env))
	}
	var cache []string
	for _, c := range st.cacheMounts {
		cache = append(cache, fmt.Sprintf("%s %s uid=%s gid=%s mode=%s", c.id, c.dir, optUint(c.uid), optUint(c.gid), optUint(c.mode)))
	}
	var inlines []string
	for _, in := range st.inlines {
		inlines = append(inlines, in.name+"="+in.data)
	}
	v := fmt.Sprintf("%#v\nbase=%#v deps=%q fromDep=%v mountDep=%v secrets=%q secretMounts=%q cache=%q inline=%q",
		rs, st.base, deps, st.fromDep, st.mountDep, secrets, secretMounts, cache, inlines)
	for _, d := range dirs {
		v = strings.ReplaceAll(v, d, "<dir>")
	}
	// Pointers print as addresses: show what they point to.
	v = ptrRE.ReplaceAllString(v, "(ptr)")
	return v + "\n" + configView(rs.Config)
}

var ptrRE = regexp.MustCompile(`\(\*[a-z.\[\]]+\)\(0x[0-9a-f]+\)`)

func configView(c runners.ConfigChange) string {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	l := func(p *[]string) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", *p)
	}
	return fmt.Sprintf("workdir=%s entrypoint=%s cmd=%s user=%s stopsignal=%s author=%s", s(c.Workdir), l(c.Entrypoint), l(c.Cmd), s(c.User), s(c.StopSignal), s(c.Author))
}

// TestLoweringKeysWhatRuns: for every step kind, variants that each
// change one thing about the step; for any two steps on the same parent,
// the keys differ exactly when what the runner is given differs. A key
// that misses something the runner uses would reuse a wrong layer; a key
// that covers something the runner never sees would miss for nothing.
func TestLoweringKeysWhatRuns(t *testing.T) {
	fx := newLowerFixture(t)
	dir := fx.dir
	base := FromArchive(emptyRootfs(t))
	tok := SecretFromMap("tok", map[string]string{"TOKEN": "s3cret"})
	tok2 := SecretFromMap("tok", map[string]string{"TOKEN": "other value"})
	other := SecretFromMap("other", map[string]string{"OTHER": "x"})
	dc := func(lines ...string) Image { return base.DockerfileCommands(lines, ContextDir(dir)) }
	variants := map[string]Image{
		// run
		"run":                base.RunCommands([]string{"echo a"}),
		"run/commands":       base.RunCommands([]string{"echo b"}),
		"run/two":            base.RunCommands([]string{"echo a", "true"}),
		"run/shell":          base.Shell([]string{"/bin/bash", "-c"}).RunCommands([]string{"echo a"}),
		"run/env":            base.RunCommands([]string{"echo a"}, WithEnv(map[string]string{"E": "1"})),
		"run/env2":           base.RunCommands([]string{"echo a"}, WithEnv(map[string]string{"E": "2"})),
		"run/gpu":            base.RunCommands([]string{"echo a"}, GPU("any")),
		"run/secret":         base.RunCommands([]string{"echo a"}, WithSecrets(tok)),
		"run/secret-value":   base.RunCommands([]string{"echo a"}, WithSecrets(tok2)),
		"run/secret-other":   base.RunCommands([]string{"echo a"}, WithSecrets(other)),
		"run/force":          base.RunCommands([]string{"echo a"}, ForceBuild()),
		"run/cache":          base.RunCommands([]string{"echo a"}, CacheMount("/root/.cache")),
		"run/cache-locked":   base.RunCommands([]string{"echo a"}, LockedCacheMount("/root/.cache")),
		"run/volume":         base.RunCommands([]string{"echo a"}, Volumes(map[string]string{"/data": "v1"})),
		"run/volume-name":    base.RunCommands([]string{"echo a"}, Volumes(map[string]string{"/data": "v2"})),
		"run/volume-target":  base.RunCommands([]string{"echo a"}, Volumes(map[string]string{"/other": "v1"})),
		"run/secret-file":    base.RunCommands([]string{"echo a"}, SecretFile(tok, "TOKEN", "/run/t")),
		"run/secret-file2":   base.RunCommands([]string{"echo a"}, SecretFile(tok, "TOKEN", "/run/u")),
		"run/input":          base.PipInstallFromRequirements(filepath.Join(dir, "requirements.txt")),
		"run/apt":            base.AptInstall([]string{"git"}),
		"run/apt2":           base.AptInstall([]string{"git", "curl"}),
		"df/run":             dc("RUN echo a"),
		"df/exec":            dc(`RUN ["echo", "a"]`),
		"df/exec2":           dc(`RUN ["echo", "b"]`),
		"df/arg":             dc("ARG V=1", "RUN echo a"),
		"df/arg2":            dc("ARG V=2", "RUN echo a"),
		"df/network":         dc("RUN --network=none echo a"),
		"df/tmpfs":           dc("RUN --mount=type=tmpfs,target=/t echo a"),
		"df/cache":           dc("RUN --mount=type=cache,target=/c echo a"),
		"df/cache-id":        dc("RUN --mount=type=cache,target=/c,id=other echo a"),
		"df/cache-ro":        dc("RUN --mount=type=cache,target=/c,ro echo a"),
		"df/cache-uid":       dc("RUN --mount=type=cache,target=/c,uid=1000 echo a"),
		"df/cache-mode":      dc("RUN --mount=type=cache,target=/c,mode=0700 echo a"),
		"df/cache-locked":    dc("RUN --mount=type=cache,target=/c,sharing=locked echo a"),
		"df/bind":            dc("RUN --mount=type=bind,source=conf,target=/conf echo a"),
		"df/bind-target":     dc("RUN --mount=type=bind,source=conf,target=/other echo a"),
		"df/secret":          dc("RUN --mount=type=secret,id=tok echo a"),
		"df/secret-env":      dc("RUN --mount=type=secret,id=tok,env=TOKEN echo a"),
		"df/secret-required": dc("RUN --mount=type=secret,id=tok,required echo a"),
		"function":           base.RunFunction(lowerFn, []string{"a"}),
		"function/args":      base.RunFunction(lowerFn, []string{"b"}),
		"function/env":       base.RunFunction(lowerFn, []string{"a"}, WithEnv(map[string]string{"E": "1"})),
		// config
		"env":           base.Env(map[string]string{"A": "1"}),
		"env/value":     base.Env(map[string]string{"A": "2"}),
		"workdir":       base.Workdir("/w"),
		"workdir/df":    dc("WORKDIR /w"),
		"user":          base.DockerfileCommands([]string{"USER 1000"}),
		"label":         dc("LABEL a=1"),
		"entrypoint":    base.Entrypoint([]string{"/app"}),
		"entrypoint/df": dc(`ENTRYPOINT ["/app"]`),
		"cmd":           base.Cmd([]string{"serve"}),
		"expose":        dc("EXPOSE 80"),
		"volume":        dc("VOLUME /data"),
		"stopsignal":    dc("STOPSIGNAL SIGINT"),
		"maintainer":    dc("MAINTAINER me"),
		"onbuild":       dc("ONBUILD RUN true"),
		// copy
		"copy":          dc("COPY conf /etc/conf"),
		"copy/dest":     dc("COPY conf /etc/other"),
		"copy/chown":    dc("COPY --chown=1:1 conf /etc/conf"),
		"copy/chmod":    dc("COPY --chmod=600 conf /etc/conf"),
		"copy/glob":     dc("COPY src/*.txt /txt/"),
		"copy/dir":      dc("COPY src/ /src/"),
		"copy/exclude":  dc("COPY --exclude=*.tmp src/ /src/"),
		"copy/parents":  dc("COPY --parents src/a.txt /p/"),
		"copy/add":      dc("ADD conf /etc/conf"),
		"copy/add-tar":  dc("ADD files.tar /x/"),
		"copy/heredoc":  dc("COPY <<EOF /etc/h\none\nEOF"),
		"copy/heredoc2": dc("COPY <<EOF /etc/h\ntwo\nEOF"),
		"add":           base.AddLocalDir(filepath.Join(dir, "src"), "/src", Copy()),
		"add/dest":      base.AddLocalDir(filepath.Join(dir, "src"), "/other", Copy()),
		"add/ignore":    base.AddLocalDir(filepath.Join(dir, "src"), "/src", Copy(), Ignore("*.tmp")),
		"add/file":      base.AddLocalFile(filepath.Join(dir, "conf"), "/etc/conf", Copy()),
	}
	type planned struct {
		name string
		st   PlannedStep
		view string
	}
	var steps []planned
	sde := time.Unix(1700000000, 0).UTC()
	mountRoot := t.TempDir()
	for name, img := range variants {
		for _, mode := range []string{"", "+sde", "+cleanup"} {
			if mode != "" && !strings.HasPrefix(name, "run") && name != "env" && name != "copy" {
				continue
			}
			pe := newPlanEnv(&runners.Resolver{}, nil, mountRoot)
			switch mode {
			case "+sde":
				pe.sde = &sde
			case "+cleanup":
				pe.cleanup = true
			}
			p, err := plan(context.Background(), img, pe)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			st := p.Steps[len(p.Steps)-1]
			steps = append(steps, planned{name + mode, st, runView(t, st, dir, mountRoot)})
		}
	}
	for i := range steps {
		for j := i + 1; j < len(steps); j++ {
			a, b := steps[i], steps[j]
			sameKey := a.st.Key == b.st.Key
			sameView := a.view == b.view
			switch {
			case sameKey && !sameView:
				t.Errorf("%s and %s have one key but the runner is given different things:\n%s\n---\n%s", a.name, b.name, a.view, b.view)
			case !sameKey && sameView && a.st.Spec.Kind == b.st.Spec.Kind:
				t.Errorf("%s and %s have different keys but the runner is given the same:\n%s", a.name, b.name, a.view)
			}
		}
	}
}

// TestHistoryGolden pins the history entry (created_by) of every step the
// fixture plans, and checks that none names a secret value, a host path
// or a cache image.
func TestHistoryGolden(t *testing.T) {
	fx := newLowerFixture(t)
	var b strings.Builder
	var write func(prefix string, p *Plan)
	write = func(prefix string, p *Plan) {
		for _, st := range p.Steps {
			if st.Index == 0 {
				continue // the base: its history is its own
			}
			fmt.Fprintf(&b, "%s %d %s: %s\n", prefix, st.Index, st.Method, st.run.History)
			for _, bad := range []string{"s3cret", fx.dir, "strata-cache"} {
				if strings.Contains(st.run.History, bad) {
					t.Errorf("%s step %d: history %q names %q", prefix, st.Index, st.run.History, bad)
				}
			}
			if st.run.History == "" {
				t.Errorf("%s step %d (%s): no history", prefix, st.Index, st.Method)
			}
		}
		for _, st := range p.Steps {
			for i, dp := range st.deps {
				write(fmt.Sprintf("%s/step%d-dep%d", prefix, st.Index, i), dp)
			}
		}
	}
	for _, name := range []string{"go", "dockerfile", "commands"} {
		write(name, planFor(t, fx.images[name], nil, false, false))
	}
	// The docker format records HEALTHCHECK and SHELL as steps.
	pe := newPlanEnv(&runners.Resolver{}, nil, t.TempDir())
	pe.format = "docker"
	p, err := plan(context.Background(), fx.images["dockerfile"], pe)
	if err != nil {
		t.Fatal(err)
	}
	write("dockerfile/docker-format", p)
	golden := filepath.Join("testdata", "history.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestHistoryGolden -update to write it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("history changed; if on purpose, run with -update.\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestIgnoreFunc: AddLocalDir with IgnoreFunc is keyed by the files it
// leaves in: the same key as a directory holding only those files; names
// with glob characters are excluded exactly; the runner gets excludes that
// name them.
func TestIgnoreFunc(t *testing.T) {
	files := map[string]string{"app.py": "print(1)\n", "app.pyc": "x", "a[1]*.txt": "glob", "a1x.txt": "kept",
		"cache/big.bin": "zzz", "sub/keep.py": "k\n", "sub/drop.pyc": "y"}
	dir := tempTree(t, files)
	drop := func(p string) bool {
		return strings.HasSuffix(p, ".pyc") || p == "cache" || p == "a[1]*.txt"
	}
	kept := tempTree(t, map[string]string{"app.py": "print(1)\n", "a1x.txt": "kept", "sub/keep.py": "k\n"})
	base := FromArchive(emptyRootfs(t))
	withFunc := planFor(t, base.AddLocalDir(dir, "/app", Copy(), IgnoreFunc(drop)), nil, false, false)
	plain := planFor(t, base.AddLocalDir(kept, "/app", Copy()), nil, false, false)
	if a, b := withFunc.Steps[1].Key, plain.Steps[1].Key; a != b {
		t.Errorf("IgnoreFunc key %s, the same files alone %s", a, b)
	}
	var names []string
	for _, f := range withFunc.Steps[1].trees[0].Files {
		names = append(names, f.Path)
	}
	for _, bad := range []string{"app.pyc", "a[1]*.txt", "cache", "cache/big.bin", "sub/drop.pyc"} {
		if slices.Contains(names, bad) {
			t.Errorf("%s is keyed: %q", bad, names)
		}
	}
	if !slices.Contains(names, "a1x.txt") {
		t.Errorf("a1x.txt (which the glob a[1]*.txt would match) was dropped: %q", names)
	}
	ex := withFunc.Steps[1].run.Copies[0].Excludes
	for _, want := range []string{`a\[1\]\*.txt`, "cache", "app.pyc", "sub/drop.pyc"} {
		if !slices.Contains(ex, want) {
			t.Errorf("runner excludes %q lack %q", ex, want)
		}
	}
	if err := base.AddLocalFile(filepath.Join(dir, "app.py"), "/app.py", IgnoreFunc(drop)).Err(); err == nil || !strings.Contains(err.Error(), "IgnoreFunc does not apply to AddLocalFile") {
		t.Errorf("IgnoreFunc on a file: %v", err)
	}
}

// TestPlatformsKeys: Platforms normalizes its argument, refuses several
// (for now), and the platform enters every key: the host's build keeps
// its keys when the host platform is named.
func TestPlatformsKeys(t *testing.T) {
	var bo buildOptions
	Platforms("arm64").applyBuild(&bo)
	if bo.err != nil || bo.platform != "linux/arm64" {
		t.Errorf("Platforms(arm64): %q, %v", bo.platform, bo.err)
	}
	bo = buildOptions{}
	Platforms("linux/arm64", hostPlatform(), "arm64").applyBuild(&bo)
	if bo.err != nil || !slices.Equal(bo.platforms, []string{"linux/arm64", ""}) {
		t.Errorf("two platforms (one named twice): %q, %v", bo.platforms, bo.err)
	}
	bo = buildOptions{}
	Platforms("linux/arm64", "nonsense/////").applyBuild(&bo)
	if bo.err == nil {
		t.Error("a malformed platform accepted")
	}
	bo = buildOptions{}
	Platforms(hostPlatform()).applyBuild(&bo)
	if bo.err != nil || bo.platform != "" {
		t.Errorf("the host platform: %q, %v", bo.platform, bo.err)
	}
	img := Scratch().Env(map[string]string{"A": "1"})
	keys := func(platform string) []string {
		pe := newPlanEnv(&runners.Resolver{}, nil, t.TempDir())
		pe.platform = platform
		p, err := plan(context.Background(), img, pe)
		if err != nil {
			t.Fatal(err)
		}
		return []string{string(p.Steps[0].Key), string(p.Steps[1].Key)}
	}
	pe := newPlanEnv(&runners.Resolver{}, nil, t.TempDir())
	pe.platform = "linux/arm64"
	if hostPlatform() != "linux/arm64" {
		if _, err := plan(context.Background(), Scratch().RunCommands([]string{"nvidia-smi"}, GPU("any")), pe); err == nil || !strings.Contains(err.Error(), "no emulated GPU") {
			t.Errorf("a GPU step on an emulated platform: %v", err)
		}
	}
	host, arm := keys(""), keys("linux/arm64")
	if host[0] == arm[0] || host[1] == arm[1] {
		t.Errorf("the same keys for the host and linux/arm64: %q %q", host, arm)
	}
}

// TestPlatformBaseOption: Platform applies to the bases that can say or be
// told a platform, and is an error naming it elsewhere.
func TestPlatformBaseOption(t *testing.T) {
	for name, img := range map[string]Image{
		"FromRegistry":  FromRegistry("debian:bookworm", Platform("linux/arm64")),
		"FromArchive":   FromArchive("/x.tar", Platform("linux/arm64")),
		"FromOCILayout": FromOCILayout("/layout", Platform("arm64")),
		"DebianMirror":  DebianMirror("bookworm", Platform("linux/arm64")),
		"Arch":          DebianMirror("bookworm", Arch("arm64")),
	} {
		if err := img.Err(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if b := img.root().base; !b.platformSet || b.platform != "linux/arm64" {
			t.Errorf("%s: platform %v %q", name, b.platformSet, b.platform)
		}
	}
	if err := DebianSlim("3.11", Platform("linux/arm64")).Err(); err == nil || !strings.Contains(err.Error(), "option Platform does not apply to DebianSlim") {
		t.Errorf("DebianSlim: %v", err)
	}
	if err := FromArchive("/x.tar", Platform("not//a platform")).Err(); err == nil {
		t.Error("a malformed platform accepted")
	}
	if b := DebianMirror("bookworm", Arch("armhf")).root().base; b.platform != "linux/arm/v7" {
		t.Errorf("Arch(armhf) is %q, want linux/arm/v7", b.platform)
	}
	for _, tc := range []struct {
		img  Image
		want string
	}{
		{DebianMirror("bookworm", Arch("aarch64")), `Arch: "aarch64" is not a Debian architecture (amd64, arm64, armel, armhf, i386, mips64el, ppc64el, riscv64, s390x)`},
		{DebianMirror("bookworm", Arch("arm64"), Platform("linux/arm64")), "give Arch or Platform, not both"},
		{FromArchive("/x.tar", Arch("arm64")), "option Arch does not apply to FromArchive"},
	} {
		if err := tc.img.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// TestPlanTakesAPlatform: Plan (Image's and Session's) plans for the
// platform named, with its own keys; several platforms, or an option a
// plan does not read, are errors naming it.
func TestPlanTakesAPlatform(t *testing.T) {
	ctx := context.Background()
	img := Scratch().Env(map[string]string{"A": "1"})
	host, err := img.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	arm, err := img.Plan(ctx, Platforms("linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if got := arm.Steps[0].Spec.Options["platform"]; got != "linux/arm64" {
		t.Errorf("the base is planned for %q", got)
	}
	if host.Steps[1].Key == arm.Steps[1].Key {
		t.Error("the host's and linux/arm64's plans have the same keys")
	}
	if _, err := img.Plan(ctx, Platforms("linux/arm64", "linux/amd64")); err == nil || !strings.Contains(err.Error(), "plan one platform at a time") {
		t.Errorf("two platforms: %v", err)
	}
	if _, err := img.Plan(ctx, WithTag("x")); err == nil || !strings.Contains(err.Error(), "WithTag does not apply to Plan") {
		t.Errorf("WithTag: %v", err)
	}
}
