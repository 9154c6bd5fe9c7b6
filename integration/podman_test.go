package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPodmanSharesTheStore: a user whose podman already has a store (vfs,
// as Debian 12's podman picks for a new user here; or overlay, as their
// storage.conf says) builds with strata build and no store flags; podman
// images lists the image, podman history reads what each step did, and
// podman run runs it.
func TestPodmanSharesTheStore(t *testing.T) {
	requireRootless(t)
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("the podman command is needed (make setup installs it)")
	}
	bin := strataCLI(t)
	busybox := busyboxTar(t)
	for _, c := range []struct{ name, conf, driver string }{
		{"vfs-chosen-by-podman", "", "vfs"},
		{"overlay-in-storage.conf", "[storage]\ndriver = \"overlay\"\n", "overlay"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
			home, xdg := filepath.Join(root, "home"), filepath.Join(root, "xdg")
			if err := os.MkdirAll(xdg, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(home, 0o755); err != nil {
				t.Fatal(err)
			}
			if c.conf != "" {
				writeFile(t, filepath.Join(home, ".config", "containers", "storage.conf"), c.conf)
			}
			env := []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + xdg}
			for _, kv := range os.Environ() {
				k, _, _ := strings.Cut(kv, "=")
				switch k {
				case "HOME", "XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "CONTAINERS_STORAGE_CONF", "STORAGE_DRIVER", "STORAGE_OPTS":
				default:
					env = append(env, kv)
				}
			}
			run := func(name string, args ...string) string {
				t.Helper()
				cmd := exec.Command(name, args...)
				cmd.Env, cmd.Dir = env, root
				start := time.Now()
				out, err := cmd.CombinedOutput()
				t.Logf("%s %s: %.1fs", filepath.Base(name), args[len(args)-1], time.Since(start).Seconds())
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			pm := func(args ...string) string {
				return run(podman, append([]string{"--cgroup-manager=cgroupfs", "--runtime=runc", "--events-backend=file"}, args...)...)
			}
			// podman makes its store first, as on the user's machine.
			if got := strings.TrimSpace(pm("info", "--format", "{{.Store.GraphDriverName}}")); got != c.driver {
				t.Fatalf("podman chose the %s driver, want %s", got, c.driver)
			}
			ctx := filepath.Join(root, "ctx")
			writeFile(t, filepath.Join(ctx, "Dockerfile"), "FROM busybox\nRUN echo hello-from-strata > /hello\nCMD [\"cat\", \"/hello\"]\n")
			id := strings.TrimSpace(run(bin, "build", "-q", "-t", "app:1", "--build-context", "busybox=archive:"+busybox, ctx))
			if !imageIDLine.MatchString(id + "\n") {
				t.Fatalf("strata build printed %q", id)
			}
			if _, err := os.Stat(filepath.Join(home, ".local", "share", "containers", "storage", c.driver+"-images")); err != nil {
				t.Errorf("strata did not use podman's %s store: %v", c.driver, err)
			}
			if images := pm("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"); !strings.Contains(images, "localhost/app:1 "+id[:12]) {
				t.Errorf("podman images does not list localhost/app:1 %s:\n%s", id[:12], images)
			}
			hist := pm("history", "--no-trunc", "--format", "{{.CreatedBy}}", "localhost/app:1")
			for _, want := range []string{`CMD ["cat","/hello"]`, "RUN /bin/sh -c echo hello-from-strata > /hello"} {
				if !strings.Contains(hist, want) {
					t.Errorf("podman history lacks %q:\n%s", want, hist)
				}
			}
			if strings.Contains(hist, "strata-cache") {
				t.Errorf("podman history names a cache image:\n%s", hist)
			}
			// Inside this test's user namespace podman notices the exit
			// only at its 20 s conmon timeout ("Exceeded conmon timeout
			// waiting for container to exit"; 0.2 s outside it), attached
			// or not.
			pm("run", "-d", "--name", "strata-test-run", "--network=none", "localhost/app:1")
			if code := strings.TrimSpace(pm("wait", "strata-test-run")); code != "0" {
				t.Errorf("podman run: the container exited %s", code)
			}
			if out := pm("logs", "strata-test-run"); !strings.Contains(out, "hello-from-strata") {
				t.Errorf("podman run printed %q", out)
			}
			pm("rm", "strata-test-run")
			// Out and back into the same store through podman: the copy
			// finds the image's layers by the IDs containers/image
			// derives for them (a layer a step worked in is named so),
			// and the image, same ID, as its own.
			archive := filepath.Join(root, "app.oci.tar")
			pm("save", "--format", "oci-archive", "-o", archive, "localhost/app:1")
			pm("load", "-i", archive)
			if got := strings.TrimSpace(pm("image", "inspect", "--format", "{{.Id}}", "localhost/app:1")); got != id {
				t.Errorf("after podman load, localhost/app:1 is %s, want %s", got, id)
			}
		})
	}
}
