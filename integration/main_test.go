package integration

import (
	"archive/tar"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stratabuild/strata/builder"
)

func TestMain(m *testing.M) {
	if builder.InitReexec() {
		return
	}
	os.Exit(m.Run())
}

// requireRootless skips unless the test runs as an ordinary user inside the
// user namespace that InitReexec set up, with runc and busybox available.
func requireRootless(t *testing.T) {
	t.Helper()
	if os.Getenv("STRATA_INTEGRATION") != "1" {
		t.Skip("integration tests run through `make test` (as an unprivileged user); set STRATA_INTEGRATION=1 to run them directly")
	}
	if os.Getenv("_CONTAINERS_ROOTLESS_UID") == "" && os.Getuid() == 0 && os.Getenv("STRATA_ALLOW_ROOT") != "1" {
		t.Skip("running as real root proves nothing about rootless builds: run as an unprivileged user (make test does)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed (make setup installs it)")
	}
}

// busyboxTar writes a rootfs tarball with Debian's static busybox and its
// applet links, owned by root, and returns its path.
func busyboxTar(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
			if _, e := os.Stat(p); e == nil {
				bb = p
			}
		}
	}
	if bb == "" {
		t.Skip("busybox-static not installed (make setup installs it)")
	}
	body, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	p := filepath.Join(t.TempDir(), "busybox-rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	dir := func(name string, mode int64) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode})
	}
	dir("./", 0o755)
	dir("bin/", 0o755)
	dir("etc/", 0o755)
	dir("tmp/", 0o1777)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	for _, a := range splitLines(string(out)) {
		if a == "" || a == "busybox" {
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// openSession opens a session on a fresh store under a temp dir.
func openSession(t *testing.T) *builder.Session {
	t.Helper()
	root := t.TempDir()
	s, err := builder.Open(context.Background(), builder.WithStore(filepath.Join(root, "graph"), filepath.Join(root, "run")))
	if err != nil {
		t.Fatalf("opening session: %v", err)
	}
	t.Cleanup(func() {
		// Remove the store through its own API: files owned by sub-uids
		// cannot be removed by the test's cleanup.
		_ = s.Close()
		_ = exec.Command("rm", "-rf", root).Run()
	})
	return s
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cachedFlags(res *builder.Result) string {
	s := ""
	for _, st := range res.Steps {
		if st.Cached {
			s += "C"
		} else {
			s += "R"
		}
	}
	return s
}
