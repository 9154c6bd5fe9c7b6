package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/rootfs"
)

// childMain, when set by a test file, runs instead of the tests in a copy
// of this binary that a test started as a child process (it reads its
// orders from the environment).
var childMain func() (int, bool)

func TestMain(m *testing.M) {
	if outsideNS {
		// The signal tests (signals_test.go) start their builds from
		// outside the user namespace, as a CI runner does.
		os.Exit(m.Run())
	}
	if builder.InitReexec() {
		return
	}
	if childMain != nil {
		if code, ok := childMain(); ok {
			os.Exit(code)
		}
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
	if outsideNS {
		t.Skip("this run stays outside the user namespace (STRATA_TEST_OUTSIDE_NS=1) for the signal tests; make integration runs the rest inside it")
	}
	if os.Getenv("_CONTAINERS_ROOTLESS_UID") == "" && os.Getuid() == 0 && os.Getenv("STRATA_ALLOW_ROOT") != "1" {
		t.Skip("running as real root proves nothing about rootless builds: run as an unprivileged user (make test does)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed (make setup installs it)")
	}
}

// busyboxTar writes a busybox rootfs tarball and returns its path.
func busyboxTar(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "busybox-rootfs.tar")
	if err := rootfs.WriteBusyboxFile(p); err != nil {
		if errors.Is(err, rootfs.ErrNoBusybox) {
			t.Skip("busybox-static not installed (make setup installs it)")
		}
		t.Fatal(err)
	}
	return p
}

// openSession opens a session with opts on a fresh store under a temp dir.
func openSession(t *testing.T, opts ...builder.Option) *builder.Session {
	t.Helper()
	root := t.TempDir()
	opts = append(opts, builder.WithStore(filepath.Join(root, "graph"), filepath.Join(root, "run")))
	s, err := builder.Open(context.Background(), opts...)
	if err != nil {
		t.Fatalf("opening session: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		// The test runs inside the user namespace, where files owned by
		// sub-uids are ours to remove; Go's TempDir cleanup alone fails on
		// the read-only directories that images contain.
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
