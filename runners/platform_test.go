package runners

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestArchiveDigestKeptBetweenProcesses: an archive base's digest is read
// from the digest file by a new resolver (another process) while the file
// is unchanged, and hashed again once it changes.
func TestArchiveDigestKeptBetweenProcesses(t *testing.T) {
	dir := t.TempDir()
	arch := filepath.Join(dir, "base.tar")
	if err := os.WriteFile(arch, []byte("first content"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(arch, old, old)
	time.Sleep(1100 * time.Millisecond) // its change time is then over a second old
	df := filepath.Join(dir, "digests.json")
	first, err := (&Resolver{DigestFile: df}).Resolve(context.Background(), Base{Kind: BaseArchive, Ref: arch})
	if err != nil {
		t.Fatal(err)
	}
	// Poison the kept entry: a new resolver must take it without hashing.
	b, _ := os.ReadFile(df)
	if !strings.Contains(string(b), first) {
		t.Fatalf("the digest file does not hold %s: %s", first, b)
	}
	os.WriteFile(df, []byte(strings.ReplaceAll(string(b), first, "sha256:kept")), 0o600)
	if d, _ := (&Resolver{DigestFile: df}).Resolve(context.Background(), Base{Kind: BaseArchive, Ref: arch}); d != "sha256:kept" {
		t.Errorf("a new resolver hashed again (%s) instead of reading the kept digest", d)
	}
	// A change (same size, new content): hashed again.
	if err := os.WriteFile(arch, []byte("other content"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := (&Resolver{DigestFile: df}).Resolve(context.Background(), Base{Kind: BaseArchive, Ref: arch})
	if err != nil || d == "sha256:kept" || d == first {
		t.Errorf("after a change: %s, %v", d, err)
	}
}

// TestArchiveKindKeptBetweenProcesses: whether an archive is a rootfs
// tarball (which takes a read of the whole archive to tell) is kept in the
// digest file beside its digest, read back by a new resolver while the
// file is unchanged, and found again once it changes.
func TestArchiveKindKeptBetweenProcesses(t *testing.T) {
	dir := t.TempDir()
	arch := filepath.Join(dir, "rootfs.tar")
	writeTar := func(name string) {
		t.Helper()
		f, err := os.Create(arch)
		if err != nil {
			t.Fatal(err)
		}
		tw := tar.NewWriter(f)
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte("x"))
		_ = tw.Close()
		_ = f.Close()
		old := time.Now().Add(-time.Hour)
		_ = os.Chtimes(arch, old, old)
	}
	writeTar("etc/hostname")
	time.Sleep(1100 * time.Millisecond) // its change time is then over a second old
	df := filepath.Join(dir, "digests.json")
	r := &Resolver{DigestFile: df}
	d, err := r.Resolve(context.Background(), Base{Kind: BaseArchive, Ref: arch})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := r.archiveKind(arch); err != nil || k != "tarball" {
		t.Fatalf("archiveKind = %q, %v", k, err)
	}
	b, _ := os.ReadFile(df)
	if !strings.Contains(string(b), d) || !strings.Contains(string(b), `"tarball"`) {
		t.Fatalf("the digest file does not hold both the digest and the kind: %s", b)
	}
	// Poisoned: a new resolver takes the kept kind without reading.
	_ = os.WriteFile(df, []byte(strings.ReplaceAll(string(b), `"tarball"`, `"docker-archive"`)), 0o600)
	if k, _ := (&Resolver{DigestFile: df}).archiveKind(arch); k != "docker-archive" {
		t.Errorf("a new resolver read the archive again (%q) instead of the kept kind", k)
	}
	// Changed (another rootfs): read again, so the poisoned entry goes.
	writeTar("etc/hosts")
	if k, err := (&Resolver{DigestFile: df}).archiveKind(arch); err != nil || k != "tarball" {
		t.Errorf("after a change: %q, %v", k, err)
	}
}
