package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// readmeScript returns the shell block that follows the marker line in
// README.md.
func readmeScript(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker+"\n```sh\n")
	if !ok {
		t.Fatalf("README.md has no %s followed by a sh block", marker)
	}
	script, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatal("the README's script block does not end")
	}
	return script
}

// TestCLIPodmanScript runs the README's CI script, written for podman
// build with the command name changed, against the strata binary: -f -,
// -q, -t, --no-cache, --pull, --label, --build-arg K, --secret
// id=,src=, --network=none and --iidfile each do what podman's do. Then
// --metadata-file and the single-dash spelling strata took before.
func TestCLIPodmanScript(t *testing.T) {
	requireRootless(t)
	bin := strataCLI(t)
	busybox := busyboxTar(t)
	root := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
	graph, run := filepath.Join(root, "graph"), filepath.Join(root, "run")
	pathDir := filepath.Join(root, "bin")
	if err := os.MkdirAll(pathDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(pathDir, "strata")); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(root, "work")
	const secret = "npm-s3cret-token-value"
	writeFile(t, filepath.Join(work, "npmrc.txt"), secret)
	writeFile(t, filepath.Join(work, "ci-build.sh"), readmeScript(t, "<!-- ci-script -->"))
	cmd := exec.Command("bash", "ci-build.sh", "--build-context", "busybox=archive:"+busybox, "--store", graph, "--runroot", run)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+pathDir+":"+os.Getenv("PATH"))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ci-build.sh: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !imageIDLine.MatchString(stdout.String()) {
		t.Fatalf("-q: stdout is not one image ID: %q", stdout.String())
	}
	if steps := stepLine.FindAllString(stderr.String(), -1); len(steps) > 0 {
		t.Errorf("-q: progress on stderr:\n%s", stderr.String())
	}
	id := strings.TrimSpace(stdout.String())
	if b, err := os.ReadFile(filepath.Join(work, "iid.txt")); err != nil || string(b) != "sha256:"+id {
		t.Errorf("--iidfile: %q, %v; want sha256:%s", b, err, id)
	}

	s, err := builder.Open(context.Background(), builder.WithStore(graph, run))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := readFromImage(t, s, id, "version"); got != "1.4.2\n" {
		t.Errorf("--build-arg VERSION (from the environment): /version = %q", got)
	}
	// /proc/net/dev: two header lines and the loopback interface.
	if got := readFromImage(t, s, id, "netdev"); got != "3\n" {
		t.Errorf("--network=none: the RUN saw %q lines of /proc/net/dev, want 3 (lo only)", got)
	}
	if l := imageConfig(t, s, id).Labels; l["org.opencontainers.image.revision"] != "0123abc" {
		t.Errorf("--label: labels %v", l)
	}
	assertNotInImage(t, s, id, secret)
	img, err := s.Store().Image("localhost/app:ci")
	if err != nil || img.ID != id {
		t.Errorf("-t app:ci: %v, %v", img, err)
	}
	s.Close()

	// --metadata-file, with the single-dash spelling of before; the
	// rebuild takes every step from the cache and says so.
	writeFile(t, filepath.Join(work, "Dockerfile"), "FROM busybox\nRUN echo hi > /hi\n")
	meta := filepath.Join(work, "meta.json")
	var md struct {
		Digest       string `json:"containerimage.digest"`
		ConfigDigest string `json:"containerimage.config.digest"`
		Name         string `json:"image.name"`
		Steps        []struct {
			Method, Key, Cache string
		} `json:"strata.steps"`
	}
	for i, want := range []string{"miss", "hit"} {
		r := runCLI(t, bin, "build", "-build-context", "busybox=archive:"+busybox, "-store", graph, "-runroot", run,
			"-tag", "meta:1", "--metadata-file", meta, "--progress=plain",
			"--annotation", "org.opencontainers.image.source=https://example.com/app", "--annotation", "manifest:org.example.note=two words",
			"--output", "oci:"+filepath.Join(work, "layout")+":meta", "--secret", "id=npmrc,src="+filepath.Join(work, "npmrc.txt"), work)
		if r.code != 0 {
			t.Fatalf("build %d exited %d\n%s", i, r.code, r.stderr)
		}
		b, err := os.ReadFile(meta)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &md); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if holdsSecret(string(b), secret) || holdsSecret(r.stderr, secret) {
			t.Errorf("build %d: the metadata file or the progress holds the secret", i)
		}
		if md.ConfigDigest != "sha256:"+strings.TrimSpace(r.stdout) || !strings.HasPrefix(md.Digest, "sha256:") || md.Name != "localhost/meta:1" {
			t.Errorf("build %d: metadata %s", i, b)
		}
		run := md.Steps[len(md.Steps)-2]
		if run.Cache != want || !strings.HasPrefix(run.Key, "sha256:") || run.Method != "RUN" {
			t.Errorf("build %d: the RUN step %+v, want cache %s\n%s", i, run, want, b)
		}
		if last := md.Steps[len(md.Steps)-1]; last.Method != "Annotations" || last.Cache != want {
			t.Errorf("build %d: last step %+v, want the annotations, cache %s", i, last, want)
		}
	}
	// --annotation: on the manifest written to the layout.
	layout := filepath.Join(work, "layout")
	var idx struct{ Manifests []struct{ Digest string } }
	readJSONFile(t, filepath.Join(layout, "index.json"), &idx)
	var man struct{ Annotations map[string]string }
	readJSONFile(t, filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:")), &man)
	if man.Annotations["org.opencontainers.image.source"] != "https://example.com/app" || man.Annotations["org.example.note"] != "two words" {
		t.Errorf("--annotation: manifest annotations %v", man.Annotations)
	}
	if idx.Manifests[0].Digest != md.Digest {
		t.Errorf("the layout holds %s, the metadata says %s", idx.Manifests[0].Digest, md.Digest)
	}
}
