package runners

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/common/pkg/seccomp"
	"golang.org/x/sys/unix"
)

func writeRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLookupUser(t *testing.T) {
	root := writeRootfs(t, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\naudio:x:29:app\n",
	})
	tests := []struct {
		spec    string
		want    specs.User
		home    string
		wantErr string
	}{
		{"", specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}, "/root", ""},
		{"root", specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}, "/root", ""},
		{"app", specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001, 10, 29}}, "/home/app", ""},
		{"1000", specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001, 10, 29}}, "/home/app", ""},
		{"app:wheel", specs.User{UID: 1000, GID: 10, AdditionalGids: []uint32{10}}, "/home/app", ""},
		{"1000:5", specs.User{UID: 1000, GID: 5, AdditionalGids: []uint32{5}}, "/home/app", ""},
		{"4242", specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}, "/", ""},
		{"nobody", specs.User{}, "", `user "nobody" is not in the image's /etc/passwd`},
		{"app:nogroup", specs.User{}, "", `group "nogroup" is not in the image's /etc/group`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			u, home, err := lookupUser(root, tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("lookupUser(%q) error %v, want one saying %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.UID != tt.want.UID || u.GID != tt.want.GID || !slices.Equal(u.AdditionalGids, tt.want.AdditionalGids) || home != tt.home {
				t.Errorf("lookupUser(%q) = %+v home %q, want %+v home %q", tt.spec, u, home, tt.want, tt.home)
			}
		})
	}
}

func TestLookupUserNoPasswd(t *testing.T) {
	root := t.TempDir()
	u, home, err := lookupUser(root, "")
	if err != nil || u.UID != 0 || u.GID != 0 || home != "/" {
		t.Errorf("lookupUser on an image without /etc/passwd = %+v %q %v; want root, /", u, home, err)
	}
	if _, _, err := lookupUser(root, "app"); err == nil {
		t.Error("a user name on an image without /etc/passwd: no error")
	}
}

func TestLookupUserSymlinkStaysInRoot(t *testing.T) {
	// /etc/passwd as an absolute symbolic link is resolved inside the
	// image, never on the host.
	root := writeRootfs(t, map[string]string{"real/passwd": "app:x:7:7::/h:/bin/sh\n"})
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/real/passwd", filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	u, _, err := lookupUser(root, "app")
	if err != nil || u.UID != 7 {
		t.Errorf("lookupUser through a symlink = %+v, %v; want uid 7", u, err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "A=1"}, []string{"A=2", "B=3"}, []string{"PATH=/usr/bin", "C="})
	want := []string{"PATH=/usr/bin", "A=2", "B=3", "C="}
	if !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}

func TestNoteTargetsUndo(t *testing.T) {
	root := writeRootfs(t, map[string]string{"etc/passwd": "x", "etc/hosts": "image's own\n"})
	old := time.Unix(1000, 0)
	if err := os.Chtimes(filepath.Join(root, "etc"), old, old); err != nil {
		t.Fatal(err)
	}
	c := noteTargets(root, "", []string{"/etc/hostname", "/etc/hosts", "/run/.containerenv", "/run/other"})
	// What the runtime does: create the missing targets.
	for _, p := range []string{"etc/hostname", "run/.containerenv", "run/other"} {
		full := filepath.Join(root, p)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// ... and the step writes a file of its own beside one.
	if err := os.WriteFile(filepath.Join(root, "run/kept"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.undo()
	for _, gone := range []string{"etc/hostname", "run/.containerenv", "run/other"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s is still there after undo", gone)
		}
	}
	for _, kept := range []string{"etc/hosts", "etc/passwd", "run/kept"} {
		if _, err := os.Lstat(filepath.Join(root, kept)); err != nil {
			t.Errorf("%s is gone after undo: %v", kept, err)
		}
	}
	fi, err := os.Stat(filepath.Join(root, "etc"))
	if err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("/etc mtime after undo: %v, %v; want %v", fi.ModTime(), err, old)
	}
}

func TestOCISpec(t *testing.T) {
	s := runSpec{
		Root: "/r", Argv: []string{"/bin/sh", "-c", "true"}, Env: []string{"PATH=/bin"}, Cwd: "/w",
		User: specs.User{UID: 1000, GID: 1000}, Hostname: "h1",
		Files:  map[string]string{"/etc/hosts": "/b/hosts", "/etc/hostname": "/b/hostname"},
		Mounts: []specs.Mount{{Destination: "/cache", Type: "bind", Source: "/c", Options: []string{"rbind", "rw"}}},
		Caps:   defaultCapabilities,
	}
	spec := ociSpec(s)
	if !slices.Contains(spec.Process.Env, "HOSTNAME=h1") {
		t.Errorf("env %q lacks HOSTNAME", spec.Process.Env)
	}
	if len(spec.Process.Capabilities.Effective) != 0 || len(spec.Process.Capabilities.Bounding) != len(defaultCapabilities) {
		t.Errorf("a non-root user's capabilities: %+v; want the bounding set only", spec.Process.Capabilities)
	}
	var dests []string
	for _, m := range spec.Mounts {
		dests = append(dests, m.Destination)
	}
	// The step's own mounts come last, after the runtime's and the files.
	if dests[len(dests)-1] != "/cache" || !slices.Contains(dests, "/etc/hosts") || !slices.Contains(dests, "/proc") {
		t.Errorf("mounts %q", dests)
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace || ns.Type == specs.UserNamespace {
			t.Errorf("host network step has a %s namespace", ns.Type)
		}
	}
	s.NoNetwork, s.User = true, specs.User{}
	spec = ociSpec(s)
	if !slices.ContainsFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace }) {
		t.Error("a no-network step shares the host's network namespace")
	}
	if len(spec.Process.Capabilities.Effective) != len(defaultCapabilities) {
		t.Errorf("root's effective capabilities: %q", spec.Process.Capabilities.Effective)
	}
	if err := withSeccomp(spec); err != nil {
		t.Fatal(err)
	}
}

func TestStepFiles(t *testing.T) {
	dir := t.TempDir()
	files, err := stepFiles(dir, "abc", false, "engine=\"strata\"\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run/.containerenv"} {
		if _, ok := files[target]; !ok {
			t.Errorf("no file for %s", target)
		}
	}
	hosts, _ := os.ReadFile(files["/etc/hosts"])
	if !strings.Contains(string(hosts), "abc\n") || !strings.Contains(string(hosts), "localhost") {
		t.Errorf("hosts:\n%s", hosts)
	}
	files, err = stepFiles(t.TempDir(), "abc", true, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["/etc/hosts"]; ok {
		t.Error("a no-network step gets the host's /etc/hosts")
	}
}

// A command's bundle directory is kept for the next command of the
// process when its command ran, removed when it failed, and every kept
// one is removed by dropRunDirs (Close); two commands at once never share
// one.
func TestRunDirsReused(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	r := &Runtime{}
	a, err := r.takeRunDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.takeRunDir()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two commands at once got the same directory %s", a)
	}
	for _, d := range []string{a, b} {
		if !strings.HasPrefix(filepath.Base(d), fmt.Sprintf("%s%d-", runDirPrefix, os.Getpid())) {
			t.Errorf("%s is not named for this process (the reap finds a dead process's by name)", d)
		}
	}
	r.giveRunDir(a, true)
	r.giveRunDir(b, false)
	if _, err := os.Stat(b); !os.IsNotExist(err) {
		t.Errorf("the directory of a failed command is still there (%v)", err)
	}
	c, err := r.takeRunDir()
	if err != nil {
		t.Fatal(err)
	}
	if c != a {
		t.Errorf("the next command got %s, want the kept %s", c, a)
	}
	r.giveRunDir(c, true)
	r.dropRunDirs()
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Errorf("dropRunDirs left %s (%v)", a, err)
	}
}

// TestSeccompArchitectures: the filter covers this host's architecture and,
// on amd64, 32-bit x86 programs; x32 only where the kernel runs x32
// programs (asked the same way as x32Off, from a process no filter holds).
func TestSeccompArchitectures(t *testing.T) {
	if !seccomp.IsSupported() {
		t.Skip("built without seccomp support (the seccomp build tag)")
	}
	spec := ociSpec(runSpec{Root: "/", Argv: []string{"true"}, Caps: defaultCapabilities})
	if err := withSeccomp(spec); err != nil {
		t.Fatal(err)
	}
	if spec.Linux.Seccomp == nil {
		t.Fatal("no seccomp filter in the spec")
	}
	arches := spec.Linux.Seccomp.Architectures
	if runtime.GOARCH != "amd64" {
		t.Skipf("architectures on %s: %q (the x32 check is amd64's)", runtime.GOARCH, arches)
	}
	for _, want := range []specs.Arch{specs.ArchX86_64, specs.ArchX86} {
		if !slices.Contains(arches, want) {
			t.Errorf("the filter leaves out %s: %q", want, arches)
		}
	}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), "\nSeccomp:\t0\n") {
		if !slices.Contains(arches, specs.ArchX32) {
			t.Errorf("under a seccomp filter, x32 must stay in: %q", arches)
		}
		t.Skip("this test runs under a seccomp filter: the kernel cannot be asked about x32")
	}
	_, _, errno := unix.RawSyscall(0x40000000|unix.SYS_GETPID, 0, 0, 0)
	kernelX32, listed := errno != unix.ENOSYS, slices.Contains(arches, specs.ArchX32)
	if kernelX32 != listed {
		t.Errorf("kernel runs x32: %v, the filter lists x32: %v (%q)", kernelX32, listed, arches)
	}
	t.Logf("architectures: %q", arches)
}
