package strata

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the architecture: layers, mount, gpu, cloudauth
// and pkg/ never import Buildah; pkg/ imports nothing from strata;
// dockerfile/ (a pure translation) imports nothing from strata but mount/;
// builder reaches Buildah only through runners/, never importing it
// itself; nothing imports cmd/.
func TestDependencies(t *testing.T) {
	const mod = "github.com/stratabuild/strata/"
	deps := func(t *testing.T, pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs seccomp", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, pkg := range []string{"./layers/...", "./mount/...", "./pkg/...", "./gpu/...", "./cloudauth/...", "./attest/..."} {
		for _, d := range deps(t, pkg) {
			if strings.HasPrefix(d, "go.podman.io/buildah") {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
	for _, d := range deps(t, "./pkg/...") {
		if strings.HasPrefix(d, mod) && !strings.HasPrefix(d, mod+"pkg/") {
			t.Errorf("pkg/ depends on %s", d)
		}
	}
	for _, d := range deps(t, "./dockerfile/...") {
		if strings.HasPrefix(d, mod) && !strings.HasPrefix(d, mod+"dockerfile") && !strings.HasPrefix(d, mod+"mount") {
			t.Errorf("dockerfile/ depends on %s", d)
		}
	}
	out, err := exec.Command("go", "list", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs seccomp",
		"-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod+"cmd/") {
				t.Errorf("%s imports %s", f[0], imp)
			}
			if strings.HasPrefix(f[0], mod+"builder") && strings.HasPrefix(imp, "go.podman.io/buildah") {
				t.Errorf("%s imports %s: builder reaches Buildah through runners/", f[0], imp)
			}
		}
	}
}
