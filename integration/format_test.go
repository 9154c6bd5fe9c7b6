package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
)

// TestDockerFormat: with Format("docker") (--format docker), HEALTHCHECK,
// SHELL and ONBUILD are in the native fields of the config skopeo reads
// back from a pushed-style (docker-archive) output, the manifest is
// Docker's, and a child build inherits the shell and runs the trigger. In
// the OCI format the same file keeps none of them and says so in a note.
func TestDockerFormat(t *testing.T) {
	requireRootless(t)
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("the skopeo command is needed (make setup installs it)")
	}
	ctx := context.Background()
	s := openSession(t)
	bb := builder.FromArchive(busyboxTar(t))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), `FROM busybox
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=5s --retries=2 CMD test -f /ok
ONBUILD RUN echo from-trigger > /child
RUN touch /ok
`)
	df := builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", bb))
	type config struct {
		Config struct {
			Healthcheck *struct {
				Test     []string
				Interval time.Duration
				Retries  int
			}
			Shell   []string
			OnBuild []string
		} `json:"config"`
	}
	inspect := func(ref string, raw bool) []byte {
		t.Helper()
		// --config --raw: the config blob as written (without --raw,
		// skopeo shows it converted to OCI, which has no Docker fields).
		args := []string{"inspect", "--config", "--raw", ref}
		if raw {
			args = []string{"inspect", "--raw", ref}
		}
		out, err := exec.Command(skopeo, args...).Output()
		if err != nil {
			t.Fatalf("skopeo %s: %v", strings.Join(args, " "), err)
		}
		return out
	}

	archive := filepath.Join(t.TempDir(), "img.tar")
	out := &lockedWriter{w: &strings.Builder{}}
	res, err := s.Build(ctx, df, builder.Format("docker"), builder.ExportTo("docker-archive:"+archive+":app:1"), builder.WithOutput(out))
	if err != nil {
		t.Fatal(err)
	}
	var c config
	if err := json.Unmarshal(inspect("docker-archive:"+archive, false), &c); err != nil {
		t.Fatal(err)
	}
	h := c.Config.Healthcheck
	if h == nil || !reflect.DeepEqual(h.Test, []string{"CMD-SHELL", "test -f /ok"}) || h.Interval != 5*time.Second || h.Retries != 2 {
		t.Errorf("Healthcheck %+v", h)
	}
	if !reflect.DeepEqual(c.Config.Shell, []string{"/bin/sh", "-ec"}) {
		t.Errorf("Shell %q", c.Config.Shell)
	}
	if !reflect.DeepEqual(c.Config.OnBuild, []string{"RUN echo from-trigger > /child"}) {
		t.Errorf("OnBuild %q", c.Config.OnBuild)
	}
	if m := string(inspect("docker-archive:"+archive, true)); !strings.Contains(m, "application/vnd.docker.distribution.manifest.v2+json") {
		t.Errorf("not a Docker manifest:\n%s", m)
	}
	if strings.Contains(out.String(), "HEALTHCHECK is kept only") {
		t.Errorf("the docker format still notes HEALTHCHECK as dropped:\n%s", out.String())
	}

	// A child: the parent's shell (errexit) and its trigger.
	writeFile(t, filepath.Join(dir, "child", "Dockerfile"), "FROM parent\nRUN echo \"$-\" > /flags\n")
	child, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(dir, "child", "Dockerfile"),
		builder.BuildContext("parent", builder.FromID(res.ImageID))), builder.Format("docker"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, child.ImageID, "child"); got != "from-trigger\n" {
		t.Errorf("the trigger wrote %q", got)
	}
	if got := readFromImage(t, s, child.ImageID, "flags"); !strings.Contains(got, "e") {
		t.Errorf("the child's RUN did not get the parent's SHELL (-ec): $- = %q", got)
	}

	// The OCI format: none of the Docker fields, and a note.
	out = &lockedWriter{w: &strings.Builder{}}
	layout := filepath.Join(t.TempDir(), "layout")
	if _, err := s.Build(ctx, df, builder.ExportTo("oci:"+layout+":app"), builder.WithOutput(out)); err != nil {
		t.Fatal(err)
	}
	var oc config
	if err := json.Unmarshal(inspect("oci:"+layout+":app", false), &oc); err != nil {
		t.Fatal(err)
	}
	if oc.Config.Healthcheck != nil || oc.Config.Shell != nil || oc.Config.OnBuild != nil {
		t.Errorf("the OCI config holds Docker fields: %+v", oc.Config)
	}
	if !strings.Contains(out.String(), "HEALTHCHECK is kept only in Docker-format images") {
		t.Errorf("no note on HEALTHCHECK:\n%s", out.String())
	}
}
