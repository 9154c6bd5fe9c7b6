package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// minbaseTar returns a Debian bookworm minbase rootfs tarball made with
// `mmdebstrap --mode=unshare` as the test user, cached between runs in
// $STRATA_TEST_CACHE (default /var/tmp/strata-test-cache).
func minbaseTar(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("mmdebstrap not installed (make setup installs it)")
	}
	dir := os.Getenv("STRATA_TEST_CACHE")
	if dir == "" {
		dir = "/var/tmp/strata-test-cache"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "minbase-bookworm-v2.tar")
	if st, err := os.Stat(p); err == nil && st.Size() > 0 {
		return p
	}
	mirror := os.Getenv("STRATA_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	tmp := strings.TrimSuffix(p, ".tar") + ".partial.tar"
	_ = os.RemoveAll(tmp) // left by an interrupted run
	t.Logf("making the minbase once with mmdebstrap (about a minute): %s", p)
	// The mirror here serves a dated snapshot whose Release files have
	// expired: the base carries the apt options that accept them.
	cmd := exec.Command("mmdebstrap", "--mode=unshare", "--variant=minbase", "--format=tar", "--quiet",
		`--aptopt=Acquire::Check-Valid-Until "false"`, `--aptopt=Acquire::Check-Date "false"`, "bookworm", tmp, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMinbaseAptInstall(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	base := minbaseTar(t)
	s := openSession(t)
	img := builder.FromArchive(base).
		// The mirror here serves a dated snapshot whose Release files have
		// expired, hence the Check-Valid-Until/Check-Date overrides.
		RunCommands([]string{
			"stat -c '%U %a' /var/lib/apt/lists/partial > /owner",
			"apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false update -q",
			"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends hello",
			"rm -rf /var/lib/apt/lists/*",
		}).
		RunCommands([]string{"hello > /greeting"})
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build on minbase: %v", err)
	}
	// Ownership from the tarball survives the rootless import.
	if got := strings.TrimSpace(readFromImage(t, s, res.ImageID, "owner")); got != "_apt 700" {
		t.Fatalf("/var/lib/apt/lists/partial is %q, want \"_apt 700\"", got)
	}
	if got := readFromImage(t, s, res.ImageID, "greeting"); !strings.Contains(got, "Hello, world!") {
		t.Fatalf("/greeting = %q", got)
	}
	res2, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res2); f != "CCC" {
		t.Fatalf("rebuild: %s, want CCC", f)
	}
}
