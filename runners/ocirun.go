package runners

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	buildahutil "go.podman.io/buildah/util"
	"go.podman.io/common/pkg/config"
	"go.podman.io/common/pkg/seccomp"
	"golang.org/x/sys/unix"
)

// A RUN step's command runs in the working container through one
// `runc run` with a spec strata writes (ociRun), not through Buildah's
// Run: that one starts 13 processes per command (its copier four times to
// make the working directory and the mount targets and remove them,
// chrootuser-open three times to read /etc/passwd and /etc/group, a
// runtime wrapper, runc create, init, start, state and delete), each a
// fresh start of this 50 MB binary or of runc. Here the user is looked up
// in-process, the working directory and mount targets are made and removed
// in-process, and runc starts once. The container is the one Buildah's Run
// would have made: the same capabilities, seccomp profile, masked and
// read-only paths, namespaces, rlimits, environment, hostname, /etc/hosts,
// /etc/resolv.conf, /etc/hostname and /run/.containerenv.
//
// BuildahRunEnv=1 runs every command through Buildah's Run instead (for
// comparison); a GPU step always does (its devices come from CDI specs
// that Buildah applies).
const BuildahRunEnv = "STRATA_BUILDAH_RUN"

// runDirPrefix names a command's bundle directory ("<prefix><pid>-..." in
// the temporary directory), so that the next Open removes the ones of a
// process that died.
const runDirPrefix = "strata-run-"

// runSpec is what a command's container is made of, before it is written
// as an OCI runtime spec (ociSpec).
type runSpec struct {
	Root     string   // the working container's mounted root filesystem
	Argv     []string // the command
	Env      []string // KEY=value, merged: the image's, then the step's
	Cwd      string
	User     specs.User
	Hostname string
	// NoNetwork: a network namespace of its own (only loopback), and no
	// hosts or resolv.conf from the host.
	NoNetwork bool
	// Files are bind-mounted over their targets (target -> file).
	Files  map[string]string
	Mounts []specs.Mount // the step's own mounts, last
	Caps   []string
	Rlimit []specs.POSIXRlimit
}

// ociSpec is the runtime spec of s: what Buildah's Run writes for a
// rootless step (strata runs in its own user namespace already, so the
// container gets none of its own), seccomp aside (withSeccomp).
func ociSpec(s runSpec) *specs.Spec {
	caps := slices.Clone(s.Caps)
	pc := &specs.LinuxCapabilities{Bounding: caps}
	if s.User.UID == 0 {
		// As Buildah does: a process of another user keeps only the
		// bounding set.
		pc.Effective, pc.Permitted = slices.Clone(caps), slices.Clone(caps)
	}
	env := slices.Clone(s.Env)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "HOSTNAME=") }) && s.Hostname != "" {
		env = append(env, "HOSTNAME="+s.Hostname)
	}
	spec := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User:         s.User,
			Args:         s.Argv,
			Env:          env,
			Cwd:          s.Cwd,
			Capabilities: pc,
			Rlimits:      s.Rlimit,
		},
		Root:     &specs.Root{Path: s.Root},
		Hostname: s.Hostname,
		Mounts: []specs.Mount{
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			MaskedPaths:   config.DefaultMaskedPaths(),
			ReadonlyPaths: slices.Clone(config.DefaultReadOnlyPaths),
		},
	}
	if s.NoNetwork {
		// A network namespace of its own may mount a sysfs of its own.
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}})
	} else {
		// The host's network namespace is not ours to mount a sysfs for.
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rprivate", "nosuid", "noexec", "nodev", "ro", "rbind"}})
	}
	for _, target := range slices.Sorted(maps.Keys(s.Files)) {
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: target, Type: "bind", Source: s.Files[target], Options: []string{"rbind"}})
	}
	spec.Mounts = append(spec.Mounts, s.Mounts...)
	return spec
}

// withSeccomp adds containers/common's default seccomp profile, as Buildah
// does (it depends on the capabilities, so it comes last). A binary built
// without seccomp support runs without a filter, as Buildah's then does.
func withSeccomp(spec *specs.Spec) error {
	if !seccomp.IsSupported() {
		return nil
	}
	prof, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		return fmt.Errorf("loading the default seccomp profile: %w", err)
	}
	if x32Off() {
		// Nothing in the container can make an x32 system call: the
		// kernel refuses them all. libseccomp builds the filter once per
		// architecture inside `runc init`, about 8 ms of every RUN step
		// for this one (x86, for 32-bit programs, stays).
		prof.Architectures = slices.DeleteFunc(prof.Architectures, func(a specs.Arch) bool { return a == specs.ArchX32 })
	}
	spec.Linux.Seccomp = prof
	return nil
}

// x32Off reports whether this kernel refuses the system calls of the x32
// ABI (amd64 only; Debian's kernels do unless booted with syscall.x32=y).
// It asks the kernel with x32's getpid, and only where no seccomp filter
// holds this process ("Seccomp: 0"): a filter without x32 might kill the
// caller for it instead of answering.
var x32Off = sync.OnceValue(func() bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil || !strings.Contains(string(st), "\nSeccomp:\t0\n") {
		return false
	}
	const x32SyscallBit = 0x40000000
	_, _, errno := unix.RawSyscall(x32SyscallBit|unix.SYS_GETPID, 0, 0, 0)
	return errno == unix.ENOSYS
})

// lookupUser resolves userspec (user, uid, user:group, uid:gid, ...; ""
// is root) against /etc/passwd and /etc/group of the root filesystem
// root, as Buildah does: a numeric user missing from /etc/passwd runs with
// group 0; a user given without a group also gets the supplementary groups
// /etc/group lists it in. It returns the user and its home directory ("/"
// when none is known).
func lookupUser(root, userspec string) (specs.User, string, error) {
	name, group, hasGroup := strings.Cut(userspec, ":")
	if name == "" {
		name = "0"
	}
	passwd := readPasswd(root)
	var u specs.User
	home := "/"
	var entry *user.User
	if uid, err := strconv.ParseUint(name, 10, 32); err == nil {
		u.UID = uint32(uid)
		for i := range passwd {
			if passwd[i].Uid == int(uid) {
				entry = &passwd[i]
				break
			}
		}
		if entry != nil && !hasGroup {
			u.GID = uint32(entry.Gid)
		}
	} else {
		for i := range passwd {
			if passwd[i].Name == name {
				entry = &passwd[i]
				break
			}
		}
		if entry == nil {
			return u, home, fmt.Errorf("determining run uid: user %q is not in the image's /etc/passwd", name)
		}
		u.UID, u.GID = uint32(entry.Uid), uint32(entry.Gid)
	}
	if entry != nil && entry.Home != "" {
		home = entry.Home
	}
	groups := readGroups(root)
	if hasGroup {
		if gid, err := strconv.ParseUint(group, 10, 32); err == nil {
			u.GID = uint32(gid)
		} else {
			found := false
			for _, g := range groups {
				if g.Name == group {
					u.GID, found = uint32(g.Gid), true
					break
				}
			}
			if !found {
				return u, home, fmt.Errorf("determining run gid: group %q is not in the image's /etc/group", group)
			}
		}
	}
	u.AdditionalGids = []uint32{u.GID}
	if !hasGroup && entry != nil {
		for _, g := range groups {
			if slices.Contains(g.List, entry.Name) && !slices.Contains(u.AdditionalGids, uint32(g.Gid)) {
				u.AdditionalGids = append(u.AdditionalGids, uint32(g.Gid))
			}
		}
	}
	return u, home, nil
}

func readPasswd(root string) []user.User {
	f, err := openInRoot(root, "/etc/passwd")
	if err != nil {
		return nil
	}
	defer f.Close()
	us, _ := user.ParsePasswd(f)
	return us
}

func readGroups(root string) []user.Group {
	f, err := openInRoot(root, "/etc/group")
	if err != nil {
		return nil
	}
	defer f.Close()
	gs, _ := user.ParseGroup(f)
	return gs
}

// openInRoot opens p inside root, symbolic links resolved within it.
func openInRoot(root, p string) (*os.File, error) {
	full, err := securejoin.SecureJoin(root, p)
	if err != nil {
		return nil, err
	}
	return os.Open(full)
}

// mergeEnv is base with each KEY=value of over replacing base's KEY or
// added after it, as Buildah's Run merges the environment (its
// util.MergeEnv, entries without "=" left out).
func mergeEnv(base []string, over ...[]string) []string {
	out := base
	for _, list := range over {
		out = buildahutil.MergeEnv(out, list)
	}
	return slices.DeleteFunc(out, func(e string) bool { return !strings.Contains(e, "=") })
}

// createdTargets notes, before a run, which of the mount targets (paths in
// the container) do not exist in root, with every missing parent: the
// runtime creates them to mount over, and they are not the step's output.
// undo removes what is still empty afterwards, deepest first, and gives
// the nearest existing parent back its times.
//
// Making a target copies its existing parents (/etc for /etc/hosts) up
// into the container's upper directory, upper, where the commit would
// find them: those not there before the run are noted as copiedUp, for
// dropCopiedUp to remove once the container is unmounted.
type createdTargets struct {
	root     string
	created  []string // full paths, parents before children
	parents  map[string]fs.FileInfo
	copiedUp []copiedDir
}

// copiedDir is a directory of the image (rel to the root) that was not in
// the container's upper directory before a run, with its metadata then.
type copiedDir struct {
	rel string
	fi  fs.FileInfo
}

func noteTargets(root, upper string, targets []string) *createdTargets {
	c := &createdTargets{root: root, parents: map[string]fs.FileInfo{}}
	for _, t := range targets {
		full, err := securejoin.SecureJoin(root, t)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(root, full)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		parts := strings.Split(rel, string(filepath.Separator))
		parent := root
		for i := range parts {
			p := filepath.Join(root, filepath.Join(parts[:i+1]...))
			if _, err := os.Lstat(p); err == nil {
				parent = p
				continue
			}
			if _, ok := c.parents[parent]; !ok {
				if fi, err := os.Lstat(parent); err == nil {
					c.parents[parent] = fi
				}
				c.noteCopiedUp(upper, parts[:i])
			}
			for j := i; j < len(parts); j++ {
				q := filepath.Join(root, filepath.Join(parts[:j+1]...))
				if !slices.Contains(c.created, q) {
					c.created = append(c.created, q)
				}
			}
			break
		}
	}
	return c
}

// noteCopiedUp notes the existing directories parts[:1], parts[:2], ...
// that upper does not hold yet.
func (c *createdTargets) noteCopiedUp(upper string, parts []string) {
	if upper == "" {
		return
	}
	for i := range parts {
		rel := filepath.Join(parts[:i+1]...)
		if slices.ContainsFunc(c.copiedUp, func(d copiedDir) bool { return d.rel == rel }) {
			continue
		}
		if _, err := os.Lstat(filepath.Join(upper, rel)); err == nil {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(c.root, rel)); err == nil && fi.IsDir() {
			c.copiedUp = append(c.copiedUp, copiedDir{rel: rel, fi: fi})
		}
	}
}

func (c *createdTargets) undo() {
	for i := len(c.created) - 1; i >= 0; i-- {
		p := c.created[i]
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() && fi.Size() != 0 {
			continue // the step wrote it (outside the mount): keep it
		}
		_ = os.Remove(p) // a directory the step filled stays
	}
	for p, fi := range c.parents {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			at := time.Unix(st.Atim.Sec, st.Atim.Nsec)
			_ = os.Chtimes(p, at, fi.ModTime())
		}
	}
}

// dropCopiedUp removes from the upper directory upper, deepest first, each
// directory of dirs that the runs left as the image has it: empty in upper,
// not opaque, with the mode, owner and modification time it had. Call it
// with the container unmounted: the layer is then as if the targets had
// never been made.
func dropCopiedUp(upper string, dirs []copiedDir) {
	slices.SortFunc(dirs, func(a, b copiedDir) int { return strings.Count(b.rel, "/") - strings.Count(a.rel, "/") })
	for _, d := range dirs {
		p := filepath.Join(upper, d.rel)
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() || fi.Mode() != d.fi.Mode() || !fi.ModTime().Equal(d.fi.ModTime()) {
			continue
		}
		st, ok1 := fi.Sys().(*syscall.Stat_t)
		was, ok2 := d.fi.Sys().(*syscall.Stat_t)
		if !ok1 || !ok2 || st.Uid != was.Uid || st.Gid != was.Gid {
			continue
		}
		if opaque(p) {
			continue
		}
		_ = os.Remove(p) // fails, and keeps it, when not empty
	}
}

// opaque says whether the overlay directory p hides its lower directories.
func opaque(p string) bool {
	buf := make([]byte, 8)
	for _, name := range []string{"user.overlay.opaque", "trusted.overlay.opaque"} {
		if n, err := unix.Lgetxattr(p, name, buf); err == nil && n > 0 {
			return true
		}
	}
	return false
}

// stepFiles writes the files a command's container gets bound over
// /etc/hostname, /etc/hosts, /etc/resolv.conf and /run/.containerenv into
// dir, as Buildah's Run does: hosts and resolv.conf are the host's when the
// step shares the host's network (and absent with no network, leaving the
// image's own).
func stepFiles(dir, hostname string, noNetwork bool, containerenv string) (map[string]string, error) {
	files := map[string]string{}
	write := func(target, name string, data []byte) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		files[target] = p
		return nil
	}
	if err := write("/etc/hostname", "hostname", []byte(hostname+"\n")); err != nil {
		return nil, err
	}
	if !noNetwork {
		hosts, _ := os.ReadFile("/etc/hosts")
		if len(hosts) == 0 {
			hosts = []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		}
		if len(hosts) > 0 && hosts[len(hosts)-1] != '\n' {
			hosts = append(hosts, '\n')
		}
		hosts = append(hosts, []byte("127.0.1.1\t"+hostname+"\n")...)
		if err := write("/etc/hosts", "hosts", hosts); err != nil {
			return nil, err
		}
		resolv, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := write("/etc/resolv.conf", "resolv.conf", resolv); err != nil {
			return nil, err
		}
	}
	if err := write("/run/.containerenv", "containerenv", []byte(containerenv)); err != nil {
		return nil, err
	}
	return files, nil
}

// rlimits are the limits a command runs with: the open-file limit this
// process has (Buildah asks for more than an unprivileged process can
// grant) and the process limit this process has.
func rlimits() []specs.POSIXRlimit {
	var out []specs.POSIXRlimit
	for _, l := range []struct {
		name string
		res  int
	}{{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE}, {"RLIMIT_NPROC", unix.RLIMIT_NPROC}} {
		var r unix.Rlimit
		if unix.Getrlimit(l.res, &r) == nil {
			out = append(out, specs.POSIXRlimit{Type: l.name, Hard: r.Max, Soft: r.Cur})
		}
	}
	return out
}

// ociRun runs spec as the container id through one `runc run` of the
// runtime at runtime, bundle in dir, the command's output to out. When ctx
// ends first, the container is killed and ctx's error returned. A command
// that exits non-zero gives an *exec.ExitError with its code.
func ociRun(ctx context.Context, runtime, dir, id string, spec *specs.Spec, out io.Writer) error {
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600); err != nil {
		return err
	}
	cmd := exec.Command(runtime, "run", "--bundle", dir, "--no-new-keyring", id)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", runtime, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// runc may still be creating the container: kill it through the
		// runtime until runc returns (it does once the container's init
		// is gone), then its own record.
		for {
			_ = exec.Command(runtime, "kill", id, "KILL").Run()
			select {
			case <-done:
				_ = exec.Command(runtime, "delete", "--force", id).Run()
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// containerenvFor is /run/.containerenv's content for a step's container
// (tools look for the file to tell that they run in a container).
func containerenvFor(name, id string) string {
	return fmt.Sprintf("engine=%q\nname=%q\nid=%q\nrootless=1\n", "strata", name, id)
}

// mkdirOwned makes the directory p inside root (symbolic links resolved
// within it) with every missing parent, each new one mode 0755 and owned
// by uid:gid, as Buildah makes a command's missing working directory.
func mkdirOwned(root, p string, uid, gid int) error {
	full, err := securejoin.SecureJoin(root, p)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(full); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
		return nil
	}
	rel, err := filepath.Rel(root, full)
	if err != nil {
		return err
	}
	cur := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		if _, err := os.Lstat(cur); err == nil {
			continue
		}
		if err := os.Mkdir(cur, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(cur, 0o755); err != nil {
			return err
		}
		if err := os.Lchown(cur, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
