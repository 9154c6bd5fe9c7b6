package runners

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckEmulator: the host's architecture needs nothing; another needs
// an enabled qemu entry in binfmt_misc, and each missing piece is named
// with its fix.
func TestCheckEmulator(t *testing.T) {
	old := binfmtDir
	t.Cleanup(func() { binfmtDir = old })
	binfmtDir = t.TempDir()
	if err := checkEmulator(""); err != nil {
		t.Errorf("host: %v", err)
	}
	if err := checkEmulator(HostPlatform); err != nil {
		t.Errorf("%s: %v", HostPlatform, err)
	}
	foreign := "linux/s390x"
	if strings.HasSuffix(HostPlatform, "/s390x") {
		foreign = "linux/arm64"
	}
	name := "qemu-" + qemuNames[strings.Split(foreign, "/")[1]]
	if err := checkEmulator(foreign); err == nil || !strings.Contains(err.Error(), "binfmt_misc is not mounted") {
		t.Errorf("not mounted: %v", err)
	}
	os.WriteFile(filepath.Join(binfmtDir, "status"), []byte("enabled\n"), 0o644)
	if err := checkEmulator(foreign); err == nil || !strings.Contains(err.Error(), "apt-get install qemu-user-static") {
		t.Errorf("not registered: %v", err)
	}
	os.WriteFile(filepath.Join(binfmtDir, name), []byte("disabled\ninterpreter /x\n"), 0o644)
	if err := checkEmulator(foreign); err == nil || !strings.Contains(err.Error(), "update-binfmts --enable "+name) {
		t.Errorf("disabled: %v", err)
	}
	os.WriteFile(filepath.Join(binfmtDir, name), []byte("enabled\ninterpreter /x\n"), 0o644)
	if err := checkEmulator(foreign); err != nil {
		t.Errorf("enabled: %v", err)
	}
	if err := checkEmulator("linux/vax"); err == nil {
		t.Error("an architecture with no known emulator passed")
	}
}
