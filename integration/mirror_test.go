package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/imagediff"
)

// fixtureLayers is how many layers pushMultiLayer's images have: containers/image
// copies up to six at once, so their "Copying blob" lines come from several
// goroutines.
const fixtureLayers = 6

// pushMultiLayer builds a busybox image of at least fixtureLayers layers
// (the base and five RUN steps, each writing 256 KiB) plus the steps in
// extra, pushes it to each of refs
// ("127.0.0.1:PORT/library/python:3.11-slim-bookworm") and returns its
// layer count.
func pushMultiLayer(t *testing.T, busybox string, extra func(builder.Image) builder.Image, refs ...string) int {
	t.Helper()
	img := builder.FromArchive(busybox)
	for i := 1; i < fixtureLayers; i++ {
		img = img.RunCommands([]string{fmt.Sprintf("head -c 262144 /dev/urandom > /layer-%d && echo layer %d > /layer-%d.txt", i, i, i)})
	}
	img = img.Env(map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin"})
	if extra != nil {
		img = extra(img)
	}
	s := openSession(t, builder.WithInsecureRegistries())
	var opts []builder.BuildOption
	for _, r := range refs {
		opts = append(opts, builder.Push(r))
	}
	if _, err := s.Build(context.Background(), img, opts...); err != nil {
		t.Fatalf("pushing the fixture image: %v", err)
	}
	n := 0
	for _, r := range refs {
		if n = registryLayers(t, r); n < fixtureLayers {
			t.Fatalf("fixture %s has %d layers, want at least %d", r, n, fixtureLayers)
		}
	}
	return n
}

// registryLayers returns the layer count of the image ref
// ("127.0.0.1:PORT/name:tag") in a plain-HTTP registry.
func registryLayers(t *testing.T, ref string) int {
	t.Helper()
	host, rest, _ := strings.Cut(ref, "/")
	name, tag, _ := strings.Cut(rest, ":")
	var m ociManifest
	registryGet(t, host, "/v2/"+name+"/manifests/"+tag, "", "", &m)
	return len(m.Layers)
}

// layoutLayers returns the layer count of the only image in an OCI layout
// (besides it, index.json lists its attestations' referrers index).
func layoutLayers(t *testing.T, dir string) int {
	t.Helper()
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	readJSONFile(t, filepath.Join(dir, "index.json"), &idx)
	idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m struct {
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	}) bool {
		return strings.HasPrefix(m.Annotations["org.opencontainers.image.ref.name"], "sha256-")
	})
	if len(idx.Manifests) != 1 {
		t.Fatalf("%s: %d images, want 1", dir, len(idx.Manifests))
	}
	var m ociManifest
	readJSONFile(t, filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:")), &m)
	return len(m.Layers)
}

func readJSONFile(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// TestMultiLayerBaseProgress pulls a base of six layers from a registry,
// exports it and pushes it with progress on, in this race-built test
// binary: containers/image writes its "Copying blob" lines from a goroutine
// per layer into strata's progress writer (a data race there panicked
// pulls).
func TestMultiLayerBaseProgress(t *testing.T) {
	requireRootless(t)
	reg := startRegistry(t)
	n := pushMultiLayer(t, busyboxTar(t), nil, reg+"/fixture/multi:latest")

	s := openSession(t, builder.WithInsecureRegistries())
	layout := filepath.Join(t.TempDir(), "layout")
	var out bytes.Buffer
	var events []builder.ProgressEvent
	img := builder.FromRegistry(reg + "/fixture/multi:latest").RunCommands([]string{"cat /layer-*.txt > /all.txt"})
	res, err := s.Build(context.Background(), img, builder.WithOutput(&out),
		builder.WithProgressFunc(func(e builder.ProgressEvent) { events = append(events, e) }),
		builder.ExportTo("oci:"+layout+":latest"), builder.Push(reg+"/out/multi:1"))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	// One line per layer of the pull under the base step, and per layer
	// of the export and the push as notes; none of containers/image's own
	// lines ("Copying blob", "Writing manifest to image destination").
	pulled := strings.Count(out.String(), "FromRegistry | layer sha256:")
	exported := strings.Count(out.String(), "[export] layer sha256:")
	if pulled != n || exported != 2*(n+1) {
		t.Errorf("%d pull and %d export/push layer lines, want %d and %d:\n%s", pulled, exported, n, 2*(n+1), out.String())
	}
	if strings.Contains(out.String(), "Copying") || strings.Contains(out.String(), "Writing manifest") {
		t.Errorf("containers/image's lines reach the user:\n%s", out.String())
	}
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if strings.Count(l, "layer sha256:") > 1 || (strings.Contains(l, "layer sha256:") && !strings.HasPrefix(l, "[")) {
			t.Errorf("interleaved line: %q", l)
		}
	}
	if len(events) == 0 || len(res.Steps) != 2 {
		t.Fatalf("%d events, %d steps", len(events), len(res.Steps))
	}
	if got := readFromImage(t, s, res.ImageID, "all.txt"); !strings.HasPrefix(got, "layer 1\n") || strings.Count(got, "\n") != fixtureLayers-1 {
		t.Errorf("/all.txt = %q", got)
	}
	if got := layoutLayers(t, layout); got != n+1 {
		t.Errorf("exported layout has %d layers, want %d", got, n+1)
	}
	if _, err := imagediff.Load(layout, "latest"); err != nil {
		t.Errorf("exported layout does not read back: %v", err)
	}
	if got := registryLayers(t, reg+"/out/multi:1"); got != n+1 {
		t.Errorf("pushed image has %d layers, want %d", got, n+1)
	}
}

// closedAddr returns a 127.0.0.1 address nothing listens on: a mirror that
// is down.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// mirrorConf is a registries.conf that sends docker.io to mirrors, in
// order, and lets reg (where the test pushes) speak plain HTTP.
func mirrorConf(reg string, mirrors ...string) string {
	var b strings.Builder
	b.WriteString("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n")
	for _, m := range mirrors {
		fmt.Fprintf(&b, "[[registry.mirror]]\nlocation = %q\ninsecure = true\n", m)
	}
	fmt.Fprintf(&b, "\n[[registry]]\nlocation = %q\ninsecure = true\n", reg)
	return b.String()
}

// runCLIEnv is runCLI with env added to the environment (later entries
// win); an entry without "=" removes that variable.
func runCLIEnv(t *testing.T, bin string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for _, e := range env {
		k, _, set := strings.Cut(e, "=")
		cmd.Env = slices.DeleteFunc(cmd.Env, func(v string) bool { return strings.HasPrefix(v, k+"=") })
		if set {
			cmd.Env = append(cmd.Env, e)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return cliResult{ee.ExitCode(), stdout.String(), stderr.String()}
	} else if err != nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return cliResult{0, stdout.String(), stderr.String()}
}

// mirrorBuild runs the race-built CLI on a spec file with base and one
// run_commands step, a fresh store, HOME set to home, env added; it writes
// the image to an OCI layout (returned) and pushes it to push when set.
func mirrorBuild(t *testing.T, home string, env []string, base, run, push string) (cliResult, string) {
	t.Helper()
	bin := strataRaceCLI(t)
	dir := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", dir).Run() })
	spec := filepath.Join(dir, "strata.yaml")
	writeFile(t, spec, fmt.Sprintf("base: %s\nsteps:\n  - run_commands: [%q]\n", base, run))
	layout := filepath.Join(dir, "layout")
	args := []string{"build", "--spec", spec, "--progress=plain", "--store", filepath.Join(dir, "graph"), "--runroot", filepath.Join(dir, "run"),
		"--output", "oci:" + layout + ":latest"}
	if push != "" {
		args = append(args, "--push", push)
	}
	env = append([]string{"HOME=" + home, "XDG_CONFIG_HOME", "CONTAINERS_REGISTRIES_CONF"}, env...)
	r := runCLIEnv(t, bin, env, args...)
	if strings.Contains(r.stderr, "DATA RACE") {
		t.Fatalf("the race-built strata found a data race:\n%s", r.stderr)
	}
	return r, layout
}

// strataRaceCLI returns strata built with the race detector:
// $STRATA_CLI_RACE (make integration builds it), or one built now.
func strataRaceCLI(t *testing.T) string {
	t.Helper()
	return tool(t, "STRATA_CLI_RACE", "./cmd/strata", "-race")
}

// fileDigest is the content digest imagediff gives a regular file.
func fileDigest(content string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(content)))
}

// TestRegistryMirror resolves DebianSlim("3.11") and Micromamba("3.11"),
// whose images live on Docker Hub, through a mirror of docker.io named in
// the user's registries.conf and in $CONTAINERS_REGISTRIES_CONF (the
// fixtures are pushed under Docker Hub's names to a local registry; this
// machine cannot reach Docker Hub). The first mirror is down: the pull
// falls back to the next. With every mirror down, the build fails with an
// error that names the base and each place tried. The CLI is race-built and
// goes through pull, build, export and push.
func TestRegistryMirror(t *testing.T) {
	requireRootless(t)
	mirror := startRegistry(t)
	busybox := busyboxTar(t)
	n := pushMultiLayer(t, busybox, nil, mirror+"/library/python:3.11-slim-bookworm")
	// A micromamba that records what it was asked to do.
	fakeMamba := func(img builder.Image) builder.Image {
		return img.RunCommands([]string{`printf '#!/bin/sh\necho "micromamba $*" >> /micromamba.log\n' > /bin/micromamba && chmod 755 /bin/micromamba`})
	}
	pushMultiLayer(t, busybox, fakeMamba, mirror+"/"+strings.TrimPrefix(builder.MicromambaImage, "docker.io/"))

	t.Run("user registries.conf", func(t *testing.T) {
		home := t.TempDir()
		writeFile(t, filepath.Join(home, ".config", "containers", "registries.conf"), mirrorConf(mirror, closedAddr(t), mirror))
		r, layout := mirrorBuild(t, home, nil, `{debian_slim: "3.11"}`, "cat /layer-*.txt > /all.txt", mirror+"/out/python-app:1")
		if r.code != 0 {
			t.Fatalf("build exited %d:\n%s", r.code, r.stderr)
		}
		// The pull, the export and the push: a line per layer each.
		if got := strings.Count(r.stderr, "layer sha256:"); got != n+2*(n+1) {
			t.Errorf("%d layer lines, want %d:\n%s", got, n+2*(n+1), r.stderr)
		}
		img, err := imagediff.Load(layout, "latest")
		if err != nil {
			t.Fatal(err)
		}
		if got := img.Files["all.txt"]; got.Digest != fileDigest("layer 1\nlayer 2\nlayer 3\nlayer 4\nlayer 5\n") {
			t.Errorf("/all.txt is %+v", got)
		}
		if got := registryLayers(t, mirror+"/out/python-app:1"); got != n+1 {
			t.Errorf("pushed image has %d layers, want %d", got, n+1)
		}
	})

	t.Run("CONTAINERS_REGISTRIES_CONF", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "mirrors.conf")
		writeFile(t, conf, mirrorConf(mirror, closedAddr(t), mirror))
		// The user's own file would send docker.io nowhere: the variable wins.
		home := t.TempDir()
		writeFile(t, filepath.Join(home, ".config", "containers", "registries.conf"), mirrorConf(mirror, closedAddr(t)))
		r, layout := mirrorBuild(t, home, []string{"CONTAINERS_REGISTRIES_CONF=" + conf}, `{micromamba: "3.11"}`, "echo done > /done", "")
		if r.code != 0 {
			t.Fatalf("build exited %d:\n%s", r.code, r.stderr)
		}
		img, err := imagediff.Load(layout, "latest")
		if err != nil {
			t.Fatal(err)
		}
		want := "micromamba install -y -n base -c conda-forge python=3.11\nmicromamba clean --all --yes\n"
		if got := img.Files["micromamba.log"]; got.Digest != fileDigest(want) {
			t.Errorf("/micromamba.log is %+v, want the digest of %q", got, want)
		}
	})

	t.Run("every mirror down", func(t *testing.T) {
		home := t.TempDir()
		down1, down2 := closedAddr(t), closedAddr(t)
		writeFile(t, filepath.Join(home, ".config", "containers", "registries.conf"), mirrorConf(mirror, down1, down2))
		r, _ := mirrorBuild(t, home, nil, `{debian_slim: "3.11"}`, "true", "")
		if r.code == 0 {
			t.Fatalf("build through mirrors that are down succeeded:\n%s", r.stderr)
		}
		for _, want := range []string{"step 0 (DebianSlim)", "python:3.11-slim-bookworm", down1, down2, "docker.io", "registries.conf"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("the error does not name %q:\n%s", want, r.stderr)
			}
		}
	})
}

// The drop-in that make setup writes (as root) for TestSystemRegistryMirror:
// a mirror on a fixed port for a registry name only that test uses.
const (
	systemMirrorDropIn = "/etc/containers/registries.conf.d/50-strata-test-mirror.conf"
	systemMirrorName   = "mirror-test.strata.invalid"
	systemMirrorAddr   = "127.0.0.1:5959"
)

// TestSystemRegistryMirror: a mirror named in the system's registries.conf.d
// serves a registry name that does not resolve.
func TestSystemRegistryMirror(t *testing.T) {
	requireRootless(t)
	if b, err := os.ReadFile(systemMirrorDropIn); err != nil || !strings.Contains(string(b), systemMirrorAddr) {
		t.Skipf("%s with a mirror on %s is missing: make setup (as root) writes it", systemMirrorDropIn, systemMirrorAddr)
	}
	startRegistryAt(t, systemMirrorAddr)
	pushMultiLayer(t, busyboxTar(t), nil, systemMirrorAddr+"/team/base:1")
	home := t.TempDir() // no user registries.conf: the system's is read
	r, layout := mirrorBuild(t, home, nil, fmt.Sprintf("{from_registry: %q}", systemMirrorName+"/team/base:1"), "cat /layer-1.txt > /one", "")
	if r.code != 0 {
		t.Fatalf("build exited %d:\n%s", r.code, r.stderr)
	}
	img, err := imagediff.Load(layout, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if img.Files["one"].Digest != fileDigest("layer 1\n") {
		t.Errorf("/one is %+v", img.Files["one"])
	}
}
