package builder

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/runners"
)

func emptyRootfs(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// TestDockerfileStepsShareGoKeys: a Dockerfile RUN, ENV, CMD and COPY of a
// whole context are the same cache entries as the equivalent Go steps. A
// Dockerfile stage on a base without PATH gets Docker's default PATH first
// (an Env step); commands added to an image leave its config alone.
func TestDockerfileStepsShareGoKeys(t *testing.T) {
	ctx := context.Background()
	base := FromArchive(emptyRootfs(t))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM base\nRUN echo hi > /hi\nENV A=1\nCMD [\"/bin/sh\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	df, err := FromDockerfile(filepath.Join(dir, "Dockerfile"), BuildContext("base", base)).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := base.Env(map[string]string{"PATH": dockerfile.DefaultPath}).
		RunCommands([]string{"echo hi > /hi"}).Env(map[string]string{"A": "1"}).Cmd([]string{"/bin/sh"}).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(df.Steps) != len(gp.Steps) {
		t.Fatalf("Dockerfile plan has %d steps, Go plan %d", len(df.Steps), len(gp.Steps))
	}
	for i := range df.Steps {
		if df.Steps[i].Key != gp.Steps[i].Key {
			t.Errorf("step %d: Dockerfile %s key %s, Go %s key %s", i, df.Steps[i].Method, df.Steps[i].Key.Short(), gp.Steps[i].Method, gp.Steps[i].Key.Short())
		}
	}
	// DockerfileCommands on a Go chain gives the same keys too.
	dc, err := base.DockerfileCommands([]string{"RUN echo hi > /hi", "ENV A=1", `CMD ["/bin/sh"]`}).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gp, err = base.RunCommands([]string{"echo hi > /hi"}).Env(map[string]string{"A": "1"}).Cmd([]string{"/bin/sh"}).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.Steps) != len(gp.Steps) {
		t.Fatalf("DockerfileCommands plan has %d steps, Go plan %d", len(dc.Steps), len(gp.Steps))
	}
	for i := range dc.Steps {
		if dc.Steps[i].Key != gp.Steps[i].Key {
			t.Errorf("DockerfileCommands step %d: key %s, Go %s", i, dc.Steps[i].Key.Short(), gp.Steps[i].Key.Short())
		}
	}
}

// TestDockerfileInputsKeyed: only the files a COPY names enter its key, and
// .dockerignore'd files none.
func TestDockerfileInputsKeyed(t *testing.T) {
	ctx := context.Background()
	base := FromArchive(emptyRootfs(t))
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM base\nCOPY a.txt /a.txt\nCOPY app /app\n")
	write(".dockerignore", "app/*.log\n")
	write("a.txt", "a")
	write("b.txt", "b")
	write("app/main.py", "print(1)")
	write("app/debug.log", "x")
	img := FromDockerfile(filepath.Join(dir, "Dockerfile"), BuildContext("base", base))
	keys := func() []string {
		p, err := img.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var k []string
		for _, s := range p.Steps {
			k = append(k, s.Key.Short())
		}
		return k
	}
	k0 := keys()
	write("b.txt", "b2")
	write("app/debug.log", "y")
	if k := keys(); strings.Join(k, " ") != strings.Join(k0, " ") {
		t.Errorf("editing an unused and an ignored file changed keys %v -> %v", k0, k)
	}
	write("app/main.py", "print(2)")
	k := keys()
	// Steps: the base, ENV PATH (the base sets none), COPY a.txt, COPY app.
	if len(k) != 4 || k[2] != k0[2] || k[3] == k0[3] {
		t.Errorf("editing app/main.py: keys %v -> %v, want only step 3 (COPY app) changed", k0, k)
	}
	// A syntax error is reported by Err, with its line.
	write("Bad", "FROM base\nCOPY\n")
	if err := FromDockerfile(filepath.Join(dir, "Bad")).Err(); err == nil || !strings.Contains(err.Error(), "Bad:2:1") {
		t.Errorf("Err() = %v, want the position Bad:2:1", err)
	}
}

// TestCacheMountOption: CacheMount on a Go step mounts a persistent
// directory (keyed by its target, never by content) and makes pip and apt
// keep their downloads there.
func TestCacheMountOption(t *testing.T) {
	ctx := context.Background()
	base := FromArchive(emptyRootfs(t))
	root := t.TempDir()
	pe := newPlanEnv(&runners.Resolver{}, nil, root)
	p, err := plan(ctx, base.PipInstall([]string{"numpy"}, CacheMount("/root/.cache/pip")).
		AptInstall([]string{"git"}, LockedCacheMount("/var/cache/apt")), pe)
	if err != nil {
		t.Fatal(err)
	}
	pip, apt := p.Steps[1], p.Steps[2]
	if !strings.Contains(pip.run.Commands[0], "pip install --cache-dir /root/.cache/pip") {
		t.Errorf("pip command = %q", pip.run.Commands[0])
	}
	if !strings.Contains(apt.run.Commands[0], "-o Dir::Cache::Archives=/var/cache/apt") {
		t.Errorf("apt command = %q", apt.run.Commands[0])
	}
	if len(pip.run.Mounts) != 1 || pip.run.Mounts[0].Dest != "/root/.cache/pip" || !pip.run.Mounts[0].Writable ||
		!strings.HasPrefix(pip.run.Mounts[0].Src, filepath.Join(root, "cache-mounts")) {
		t.Errorf("pip mounts = %+v", pip.run.Mounts)
	}
	if len(apt.run.Locks) != 1 {
		t.Errorf("apt locks = %v, want one (locked sharing)", apt.run.Locks)
	}
	if pip.Spec.Options["mount.0"] != "type=cache,target=/root/.cache/pip,id=/root/.cache/pip,sharing=shared" {
		t.Errorf("pip key options = %v", pip.Spec.Options)
	}
	if err := base.RunCommands([]string{"true"}, CacheMount("relative")).Err(); err == nil {
		t.Error("a relative cache mount target was accepted")
	}
}

// TestIgnoreFileOrder: the Dockerfile's own ignore file wins, then the
// context's .containerignore, then its .dockerignore.
func TestIgnoreFileOrder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files []string // ignore files present; each holds its own name as the pattern
		want  string
	}{
		{"none", nil, ""},
		{"dockerignore", []string{".dockerignore"}, ".dockerignore"},
		{"containerignore wins", []string{".dockerignore", ".containerignore"}, ".containerignore"},
		{"beside the file wins", []string{".dockerignore", ".containerignore", "Dockerfile.dockerignore"}, "Dockerfile.dockerignore"},
		{"beside, containerignore", []string{".dockerignore", "Dockerfile.containerignore"}, "Dockerfile.containerignore"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, f := range c.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(f+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, from, err := readDockerignore(filepath.Join(dir, "Dockerfile"), dir, true)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != c.want {
				t.Errorf("patterns %q, want [%s]", got, c.want)
			}
			if c.want != "" && filepath.Base(from) != c.want {
				t.Errorf("read from %s, want %s", from, c.want)
			}
		})
	}
}

// TestIgnoredSourceNamesItsFile: COPY of a file the ignore file excludes
// fails naming that file (Dockerfile.dockerignore here, not .dockerignore).
func TestIgnoredSourceNamesItsFile(t *testing.T) {
	dir := tempTree(t, map[string]string{"secret.env": "x", "Dockerfile": "FROM scratch\nCOPY secret.env /\n", "Dockerfile.dockerignore": "*.env\n"})
	_, err := FromDockerfile(filepath.Join(dir, "Dockerfile")).Plan(context.Background())
	if err == nil || !strings.Contains(err.Error(), "secret.env is excluded by "+filepath.Join(dir, "Dockerfile.dockerignore")) {
		t.Errorf("error %v", err)
	}
}

// TestDockerfileRefusesRunOnlyOptions: WithEnv and CacheMount, which a
// Dockerfile spells with ENV/ARG and RUN --mount, are errors naming the
// step and the option, not silently dropped; GPU and WithSecrets apply.
func TestDockerfileRefusesRunOnlyOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte("FROM scratch\nENV A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := Scratch()
	for _, tc := range []struct {
		name string
		img  Image
		want string
	}{
		{"FromDockerfile WithEnv", FromDockerfile(df, WithEnv(map[string]string{"A": "1"})), "step 0 (FromDockerfile): WithEnv does not apply to a Dockerfile"},
		{"FromDockerfile CacheMount", FromDockerfile(df, CacheMount("/root/.cache")), "step 0 (FromDockerfile): CacheMount does not apply to a Dockerfile"},
		{"DockerfileCommands WithEnv", base.DockerfileCommands([]string{"RUN true"}, ContextDir(dir), WithEnv(map[string]string{"A": "1"})),
			"step 1 (DockerfileCommands): WithEnv does not apply to a Dockerfile"},
		{"DockerfileCommands LockedCacheMount", base.DockerfileCommands([]string{"RUN true"}, LockedCacheMount("/var/cache/apt")),
			"step 1 (DockerfileCommands): LockedCacheMount does not apply to a Dockerfile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.img.Plan(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Plan: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := base.DockerfileCommands([]string{"ENV B=2"}, GPU("any"), WithSecrets(SecretFromMap("s", map[string]string{"K": "v"}))).Plan(context.Background()); err != nil {
		t.Fatalf("GPU and WithSecrets on DockerfileCommands: %v", err)
	}
}

// TestFromPlatformOnContextsAndStages: FROM --platform=P on a named context
// that is an image builds it for P (and leaves the context as it was for
// the other stages); on a stage, the stage keeps the platform of the stage
// it starts from, as BuildKit does; on a context with steps it is refused.
func TestFromPlatformOnContextsAndStages(t *testing.T) {
	ctx := context.Background()
	base := FromArchive(emptyRootfs(t))
	dir := t.TempDir()
	write := func(df string) string {
		p := filepath.Join(dir, "Dockerfile")
		if err := os.WriteFile(p, []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	platformOf := func(p *Plan) string { return p.Steps[0].Spec.Options["platform"] }
	p, err := FromDockerfile(write("FROM --platform=linux/arm64 base AS a\nRUN echo a > /a\nFROM base\nCOPY --from=a /a /a\n"), BuildContext("base", base)).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := platformOf(p); got != hostPlatform() {
		t.Errorf("the final stage on the context is for %s, want the host's", got)
	}
	var dep *Plan
	for _, st := range p.Steps {
		for _, d := range st.deps {
			dep = d
		}
	}
	if dep == nil || platformOf(dep) != "linux/arm64" {
		t.Fatalf("the stage FROM --platform=linux/arm64 base is not for linux/arm64: %+v", dep)
	}

	arm, err := FromDockerfile(write("FROM --platform=linux/arm64 base AS a\nRUN echo a > /a\nFROM --platform=linux/amd64 a\nRUN echo b > /b\n"), BuildContext("base", base)).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := platformOf(arm); got != "linux/arm64" {
		t.Errorf("FROM --platform=linux/amd64 on an arm64 stage: %s, want linux/arm64 (the stage's)", got)
	}

	_, err = FromDockerfile(write("FROM --platform=linux/arm64 base\n"), BuildContext("base", base.RunCommands([]string{"true"}))).Plan(ctx)
	if err == nil || !strings.Contains(err.Error(), `named context "base", which has steps of its own`) {
		t.Errorf("FROM --platform on a context with steps: %v", err)
	}
}
