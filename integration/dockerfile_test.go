package integration

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stratabuild/strata/builder"
)

const multiStageDockerfile = `# A builder stage makes the program; the final stage copies it.
FROM busybox AS build
WORKDIR /src
COPY src/ ./
RUN --mount=type=cache,target=/cache \
    echo run >> /cache/runs && \
    sed 's/VERSION/v1/' main.sh > /src/app && chmod 755 /src/app

FROM busybox AS unused
RUN exit 3

FROM busybox
COPY --from=build /src/app /usr/local/bin/app
ENV GREETING=hello
LABEL org.example.kind=test
EXPOSE 8080
USER 1000:1000
CMD ["/usr/local/bin/app"]
`

// TestDockerfileMultiStage builds a two-stage Dockerfile rootless: the
// unused stage never runs, a rebuild runs nothing, editing a file that
// .dockerignore excludes runs nothing, editing an included file re-runs
// from the COPY that uses it, and the cache mount keeps its content
// between builds without entering any layer.
func TestDockerfileMultiStage(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	mounts := t.TempDir()
	s := openSession(t, builder.WithCacheMountDir(mounts))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), multiStageDockerfile)
	writeFile(t, filepath.Join(dir, ".dockerignore"), "src/*.md\n")
	writeFile(t, filepath.Join(dir, "src", "main.sh"), "#!/bin/sh\necho app VERSION\n")
	writeFile(t, filepath.Join(dir, "src", "notes.md"), "notes\n")
	bb := builder.FromArchive(busyboxTar(t))
	img := builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb))

	var out strings.Builder
	res, err := s.Build(ctx, img, builder.WithOutput(&out))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "exit 3") {
		t.Errorf("the unused stage ran:\n%s", out.String())
	}
	got := readFromImage(t, s, res.ImageID, "usr/local/bin/app")
	if got != "#!/bin/sh\necho app v1\n" {
		t.Errorf("app = %q", got)
	}
	if hasFile(t, s, res.ImageID, "src/notes.md") || hasFile(t, s, res.ImageID, "cache/runs") {
		t.Error("the final image holds files of the builder stage or the cache mount")
	}
	runs := func() int {
		n := 0
		filepath.Walk(filepath.Join(mounts, "cache-mounts"), func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Name() == "runs" {
				c, _ := os.ReadFile(p)
				n = strings.Count(string(c), "run\n")
			}
			return nil
		})
		return n
	}
	if n := runs(); n != 1 {
		t.Errorf("cache mount holds %d runs after the first build, want 1", n)
	}
	// No layer of any stage holds the cache mount's content or its target.
	for _, st := range res.Steps {
		if st.ImageID == "" {
			continue
		}
		eachEntry(t, s, st.ImageID, func(name string, _ *tar.Header, _ io.Reader) bool {
			if name == "cache" || strings.HasPrefix(name, "cache/") {
				t.Errorf("%s (step %d %s) holds %s", st.ImageID[:12], st.Index, st.Method, name)
			}
			return true
		})
	}

	// Config.
	cfg := imageConfig(t, s, res.ImageID)
	if cfg.User != "1000:1000" || !contains(cfg.Env, "GREETING=hello") || cfg.Labels["org.example.kind"] != "test" {
		t.Errorf("config = %+v", cfg)
	}
	if _, ok := cfg.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports = %v", cfg.ExposedPorts)
	}

	rebuild := func(what string) *builder.Result {
		t.Helper()
		out.Reset()
		r, err := s.Build(ctx, img, builder.WithOutput(&out))
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out.String())
		}
		return r
	}
	ran := func(r *builder.Result) []string {
		var names []string
		for _, st := range r.Steps {
			if !st.Cached {
				names = append(names, st.Description)
			}
		}
		return names
	}
	if r := rebuild("rebuild"); len(ran(r)) != 0 || r.ImageID != res.ImageID {
		t.Errorf("rebuild ran %q (image %s, was %s)", ran(r), r.ImageID, res.ImageID)
	}
	writeFile(t, filepath.Join(dir, "src", "notes.md"), "edited notes\n")
	if r := rebuild("after editing an ignored file"); len(ran(r)) != 0 {
		t.Errorf("editing a .dockerignore'd file ran %q", ran(r))
	}
	writeFile(t, filepath.Join(dir, "src", "main.sh"), "#!/bin/sh\necho app VERSION edited\n")
	r := rebuild("after editing main.sh")
	// Everything from the COPY that reads main.sh on runs again (later
	// keys chain from it); the WORKDIR before it and the bases do not.
	want := []string{"[build] COPY src/ ./", "[build] RUN --mount=type=cache,target=/cache ...",
		"COPY --from=build /src/app /usr/local/bin/app", "ENV GREETING=hello", "LABEL org.example.kind=test",
		"EXPOSE 8080", "USER 1000:1000", `CMD ["/usr/local/bin/app"]`}
	if strings.Join(ran(r), "|") != strings.Join(want, "|") {
		t.Errorf("after editing main.sh ran %q, want %q", ran(r), want)
	}
	if got := readFromImage(t, s, r.ImageID, "usr/local/bin/app"); got != "#!/bin/sh\necho app v1 edited\n" {
		t.Errorf("app after the edit = %q", got)
	}
	if n := runs(); n != 2 {
		t.Errorf("cache mount holds %d runs after the second RUN, want 2 (its content is kept between builds)", n)
	}
}

// TestDockerfileErrorsBeforeAnyContainer: a COPY source outside the
// context and a symlink that leads out of it fail at plan time, naming the
// Dockerfile line, and leave no container.
func TestDockerfileErrorsBeforeAnyContainer(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	bb := builder.FromArchive(busyboxTar(t))
	dir := t.TempDir()
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret"), "x")
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"FROM busybox\nRUN true\nCOPY link /x\n":        "Dockerfile:3",
		"FROM busybox\nRUN true\nCOPY missing.txt /x\n": "missing.txt",
	}
	for df, want := range cases {
		writeFile(t, filepath.Join(dir, "Dockerfile"), df)
		_, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb)))
		if err == nil {
			t.Errorf("%q built", df)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %q does not name %q", df, err, want)
		}
	}
	if c, _ := counts(t, s.Store()); c != 0 {
		t.Errorf("%d working containers left", c)
	}
}

// imageConfig reads an image's OCI config from the store.
func imageConfig(t *testing.T, s *builder.Session, id string) v1.ImageConfig {
	t.Helper()
	raw, err := s.Store().ImageBigData(id, "sha256:"+id)
	if err != nil {
		t.Fatalf("reading the config of %s: %v", id, err)
	}
	var img v1.Image
	if err := json.Unmarshal(raw, &img); err != nil {
		t.Fatal(err)
	}
	return img.Config
}

// TestDockerfileStaticC: a builder stage on the Debian minbase installs gcc
// from the mirror and compiles a static C program; the final stage, from
// scratch, holds only the program, which runs; the rebuild is fully cached.
func TestDockerfileStaticC(t *testing.T) {
	requireRootless(t)
	if testing.Short() {
		t.Skip("installs gcc from the mirror")
	}
	ctx := context.Background()
	s := openSession(t)
	debian := builder.FromArchive(minbaseTar(t))
	// The example make compare-buildah is pointed at for its figures.
	dir := filepath.Join(repoRoot(), "examples", "static-c")
	img := builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("debian", debian))
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	// The final image is the program alone.
	var names []string
	eachEntry(t, s, res.ImageID, func(name string, _ *tar.Header, _ io.Reader) bool {
		names = append(names, name)
		return true
	})
	if strings.Join(names, ",") != "hello" {
		t.Errorf("final image holds %q, want only hello", names)
	}
	// It runs: a step on top of it executes it (no shell in the image).
	run := builder.FromID(res.ImageID).DockerfileCommands([]string{`RUN ["/hello"]`})
	var out strings.Builder
	if _, err := s.Build(ctx, run, builder.WithOutput(&out)); err != nil {
		t.Fatalf("running the program: %v", err)
	}
	if !strings.Contains(out.String(), "hello from a static C program built by strata") {
		t.Errorf("the program's output is missing:\n%s", out.String())
	}
	res2, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range res2.Steps {
		if !st.Cached {
			t.Errorf("rebuild ran %s %s", st.Method, st.Description)
		}
	}
}

// TestDockerfileSecretMountStaysOut: a secret reached through RUN
// --mount=type=secret (as a file and as env=) is readable by the command,
// redacted from its output and from a failing step's error, and absent from
// every layer, the config, the history, the cache keys and the recipes.
func TestDockerfileSecretMountStaysOut(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	const value = "df-s3cr3t-mount-value"
	sec := builder.SecretFromMap("ci", map[string]string{"NPM_TOKEN": value})
	bb := builder.FromArchive(busyboxTar(t))
	dir := t.TempDir()
	df := "FROM busybox\n" +
		"RUN --mount=type=secret,id=NPM_TOKEN,mode=0400 test \"$(cat /run/secrets/NPM_TOKEN)\" = \"$NPM_TOKEN\" && echo \"file says $(cat /run/secrets/NPM_TOKEN)\" && echo ok > /ok\n" +
		"RUN --mount=type=secret,id=NPM_TOKEN,env=AUTH,target=/etc/npmrc-token echo \"env says $AUTH\"; test -s /etc/npmrc-token\n"
	writeFile(t, filepath.Join(dir, "Dockerfile"), df)
	img := builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb), builder.WithSecrets(sec))
	var out strings.Builder
	res, err := s.Build(ctx, img, builder.WithOutput(&lockedWriter{w: &out}))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "file says ***") || !strings.Contains(out.String(), "env says ***") || holdsSecret(out.String(), value) {
		t.Errorf("output not redacted:\n%s", out.String())
	}
	if hasFile(t, s, res.ImageID, "run/secrets/NPM_TOKEN") || hasFile(t, s, res.ImageID, "etc/npmrc-token") {
		t.Error("a secret mount target was committed")
	}
	assertNotInImage(t, s, res.ImageID, value)
	// A failing step that prints the secret file.
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN --mount=type=secret,id=NPM_TOKEN cat /run/secrets/NPM_TOKEN; exit 4\n")
	_, err = s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb), builder.WithSecrets(sec)))
	if err == nil || holdsSecret(err.Error(), value) {
		t.Errorf("failing step error: %v", err)
	}
	// A required secret that is not given fails naming it.
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN --mount=type=secret,id=MISSING,required=true true\n")
	_, err = s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb)))
	if err == nil || !strings.Contains(err.Error(), `secret "MISSING" is required`) {
		t.Errorf("missing required secret: %v", err)
	}
	// Keys and recipes.
	filepath.Walk(s.Store().GraphRoot(), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && strings.Contains(p, "strata-recipes") {
			if b, _ := os.ReadFile(p); holdsSecret(string(b), value) {
				t.Errorf("recipe %s holds the secret", p)
			}
		}
		return nil
	})
}

// TestDockerfileBindFromStage: RUN --mount=type=bind,from=<stage> reads a
// stage's files without copying them into the layer.
func TestDockerfileBindFromStage(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	bb := builder.FromArchive(busyboxTar(t))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox AS tools\n"+
		"RUN mkdir -p /opt/tool && echo 'echo tool-ran' > /opt/tool/run.sh\n"+
		"FROM busybox\n"+
		"RUN --mount=type=bind,from=tools,source=/opt/tool,target=/mnt/tool sh /mnt/tool/run.sh > /out\n")
	img := builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb))
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "out"); got != "tool-ran\n" {
		t.Errorf("/out = %q", got)
	}
	if hasFile(t, s, res.ImageID, "mnt/tool/run.sh") || hasFile(t, s, res.ImageID, "opt/tool/run.sh") {
		t.Error("the mounted stage's files reached the layer")
	}
	res2, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res2); strings.Contains(f, "R") {
		t.Errorf("rebuild ran steps: %s", f)
	}

	// rw, from a stage and from the context: the step writes there, the
	// writes are discarded (as in BuildKit), and neither the stage's files
	// nor the context change.
	writeFile(t, filepath.Join(dir, "ctxfile"), "from the context\n")
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox AS tools\n"+
		"RUN mkdir -p /opt/tool && echo 'echo tool-ran' > /opt/tool/run.sh\n"+
		"FROM busybox\n"+
		"RUN --mount=type=bind,from=tools,source=/opt/tool,target=/mnt/tool,rw echo true >> /mnt/tool/run.sh && echo new > /mnt/tool/new && sh /mnt/tool/run.sh > /out\n"+
		"RUN --mount=type=bind,source=.,target=/ctx,rw echo changed > /ctx/ctxfile && touch /ctx/added && cat /ctx/ctxfile > /ctx-out\n"+
		"COPY --from=tools /opt/tool /after/\n")
	res3, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb)))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res3.ImageID, "ctx-out"); got != "changed\n" {
		t.Errorf("the rw context mount read back %q", got)
	}
	if got := readFromImage(t, s, res3.ImageID, "after/run.sh"); got != "echo tool-ran\n" {
		t.Errorf("the stage's file after an rw mount wrote to it: %q", got)
	}
	if hasFile(t, s, res3.ImageID, "after/new") {
		t.Error("a write to the rw mount reached the stage")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ctxfile")); string(b) != "from the context\n" {
		t.Errorf("the context file was changed to %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "added")); err == nil {
		t.Error("the step added a file to the context")
	}
}

// TestDockerfileCopyParents: COPY --parents keeps the sources' directories,
// from the "/./" pivot when there is one.
func TestDockerfileCopyParents(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	bb := builder.FromArchive(busyboxTar(t))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a", "b", "one.txt"), "one\n")
	writeFile(t, filepath.Join(dir, "x", "y", "two.txt"), "two\n")
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nCOPY --parents a/b/one.txt x/./y/two.txt /dest/\n")
	res, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb)))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "dest/a/b/one.txt"); got != "one\n" {
		t.Errorf("dest/a/b/one.txt = %q", got)
	}
	if got := readFromImage(t, s, res.ImageID, "dest/y/two.txt"); got != "two\n" {
		t.Errorf("dest/y/two.txt = %q", got)
	}
}

// TestDockerfileOnBuild: ONBUILD triggers are recorded in the image (in the
// label runners.OnBuildLabel) and run first when the image is a base, from
// a later Dockerfile or a later stage; the child does not pass them on.
func TestDockerfileOnBuild(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	bb := builder.FromArchive(busyboxTar(t))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "parent", "Dockerfile"), "FROM busybox\nONBUILD COPY note.txt /from-child/\nONBUILD RUN echo triggered > /trig\n")
	parent, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "parent", "Dockerfile"), builder.BuildContext("busybox", bb)))
	if err != nil {
		t.Fatal(err)
	}
	if hasFile(t, s, parent.ImageID, "trig") {
		t.Fatal("the parent ran its own trigger")
	}
	writeFile(t, filepath.Join(dir, "child", "note.txt"), "child's note\n")
	writeFile(t, filepath.Join(dir, "child", "Dockerfile"), "FROM parent\nRUN cat /trig /from-child/note.txt > /both\n")
	child, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "child", "Dockerfile"),
		builder.BuildContext("parent", builder.FromID(parent.ImageID))))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, child.ImageID, "both"); got != "triggered\nchild's note\n" {
		t.Errorf("/both = %q", got)
	}
	if l := imageConfig(t, s, child.ImageID).Labels; l["org.stratabuild.onbuild"] != "" {
		t.Errorf("the child passes the triggers on: %v", l)
	}
	if l := imageConfig(t, s, parent.ImageID).Labels; !strings.Contains(l["org.stratabuild.onbuild"], "echo triggered") {
		t.Errorf("the parent does not record its triggers: %v", l)
	}
}

// TestDockerfileCacheFromStage: RUN --mount=type=cache,from=STAGE starts a
// new cache with the stage's files (BuildKit's from= for cache mounts);
// the cache then persists as any cache does, and is not seeded again.
func TestDockerfileCacheFromStage(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t, builder.WithCacheMountDir(t.TempDir()))
	bb := builder.FromArchive(busyboxTar(t))
	dir := t.TempDir()
	df := func(run string) builder.Image {
		writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox AS deps\n"+
			"RUN mkdir -p /seed && echo seeded > /seed/a.txt\n"+
			"FROM busybox\n"+
			"RUN --mount=type=cache,target=/cache,id=c1,from=deps,source=/seed "+run+"\n")
		return builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb))
	}
	res, err := s.Build(ctx, df("cat /cache/a.txt > /out && echo kept > /cache/b.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "out"); got != "seeded\n" {
		t.Errorf("the new cache held %q, want the stage's file", got)
	}
	if hasFile(t, s, res.ImageID, "cache/a.txt") || hasFile(t, s, res.ImageID, "seed/a.txt") {
		t.Error("the cache or the stage's files reached the layer")
	}
	res2, err := s.Build(ctx, df("cat /cache/b.txt /cache/a.txt > /out2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res2.ImageID, "out2"); got != "kept\nseeded\n" {
		t.Errorf("the second build's cache held %q", got)
	}
}
