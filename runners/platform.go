package runners

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"
	"go.podman.io/buildah"
)

// HostPlatform is this machine's platform as images name it
// ("linux/amd64").
var HostPlatform = platforms.Format(platforms.Normalize(platforms.DefaultSpec()))

// binfmtDir is where the kernel lists the emulators registered with
// binfmt_misc.
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// qemuNames are the names qemu-user-static registers (qemu-NAME) for an
// image architecture.
var qemuNames = map[string]string{
	"arm64": "aarch64", "arm": "arm", "386": "i386", "amd64": "x86_64", "ppc64le": "ppc64le",
	"s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el", "mips64": "mips64", "loong64": "loongarch64",
}

// SplitPlatform returns the parts of an "os/arch[/variant]" platform
// (missing parts empty).
func SplitPlatform(platform string) (osName, arch, variant string) {
	parts := strings.SplitN(platform, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

// checkEmulator returns an error that names the fix when steps for
// platform ("os/arch[/variant]") cannot run here: another architecture
// needs an emulator registered with binfmt_misc (qemu-user-static).
func checkEmulator(platform string) error {
	if platform == "" {
		return nil
	}
	_, arch, _ := SplitPlatform(platform)
	_, host, _ := SplitPlatform(HostPlatform)
	if arch == "" || arch == host || host == "amd64" && arch == "386" {
		return nil
	}
	name, ok := qemuNames[arch]
	if !ok {
		return fmt.Errorf("no emulator is known for %s on this %s host", platform, HostPlatform)
	}
	if _, err := os.Stat(filepath.Join(binfmtDir, "status")); err != nil {
		return fmt.Errorf("steps for %s need an emulator, and binfmt_misc is not mounted: as root, mount -t binfmt_misc binfmt_misc %s and apt-get install qemu-user-static binfmt-support", platform, binfmtDir)
	}
	b, err := os.ReadFile(filepath.Join(binfmtDir, "qemu-"+name))
	if err != nil {
		return fmt.Errorf("steps for %s need an emulator and none is registered for %s: as root, apt-get install qemu-user-static binfmt-support (it registers qemu-%s)", platform, arch, name)
	}
	if !strings.HasPrefix(string(b), "enabled") {
		return fmt.Errorf("steps for %s need an emulator: qemu-%s is registered but disabled (as root: update-binfmts --enable qemu-%s)", platform, name, name)
	}
	return nil
}

// setPlatform writes platform into the working container's config.
func setPlatform(b *buildah.Builder, platform string) {
	if platform == "" {
		return
	}
	osName, arch, variant := SplitPlatform(platform)
	b.SetOS(osName)
	b.SetArchitecture(arch)
	b.SetVariant(variant)
}
