package gpu

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	specs "tags.cncf.io/container-device-interface/specs-go"
)

const (
	// Kind is the CDI kind (vendor/class) of the GPUs in generated specs.
	Kind = "nvidia.com/gpu"
	// ContainerLibDir is where the driver libraries appear in the
	// container, under their sonames: the directory CUDA base images
	// already list in LD_LIBRARY_PATH.
	ContainerLibDir = "/usr/local/nvidia/lib64"
	// ContainerSMIPath is where nvidia-smi appears in the container: a
	// directory on every image's PATH, because a CDI env edit replaces the
	// image's PATH instead of extending it.
	ContainerSMIPath = "/usr/bin/nvidia-smi"
	// SpecFileName is the name WriteSpec gives the spec in its directory.
	SpecFileName = "strata-nvidia-gpu.json"
)

// mountOptions are those of every file the spec mounts.
var mountOptions = []string{"ro", "nosuid", "nodev", "bind"}

// NodeInfo describes a device node: Type "c" (character) or "b" (block),
// and its major and minor numbers.
type NodeInfo struct {
	Type         string
	Major, Minor int64
}

// NodeStater reads device nodes. A missing node gives an error for which
// errors.Is(err, fs.ErrNotExist) holds.
type NodeStater interface {
	StatNode(path string) (NodeInfo, error)
}

// HostNodes returns the NodeStater of the host (stat(2)).
func HostNodes() NodeStater { return hostNodes{} }

type hostNodes struct{}

func (hostNodes) StatNode(path string) (NodeInfo, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return NodeInfo{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return NodeInfo{}, fmt.Errorf("%s is not a device node", path)
	}
	rdev := uint64(st.Rdev) //nolint:unconvert // Rdev is not uint64 everywhere
	return NodeInfo{Type: typ, Major: int64(unix.Major(rdev)), Minor: int64(unix.Minor(rdev))}, nil
}

// FakeNodes is a NodeStater for tests: device nodes by path.
type FakeNodes map[string]NodeInfo

// StatNode returns the node at path or an fs.ErrNotExist error.
func (f FakeNodes) StatNode(path string) (NodeInfo, error) {
	if n, ok := f[path]; ok {
		return n, nil
	}
	return NodeInfo{}, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
}

// SpecOptions describe the host for GenerateSpec.
type SpecOptions struct {
	// DriverRoot is where the driver's libraries and nvidia-smi are looked
	// up ("" means "/"). Device nodes are always under /dev: Buildah run
	// rootless bind-mounts a CDI device node from its container path, so
	// host and container paths must be the same.
	DriverRoot string
	// Nodes reads /dev/nvidia* (nil: HostNodes()).
	Nodes NodeStater
	// LibraryPathEnv also puts LD_LIBRARY_PATH=ContainerLibDir in the
	// spec's env edit, for CDI consumers that cannot add RunEnv's entries.
	// A CDI env edit replaces the image's LD_LIBRARY_PATH; with Buildah,
	// leave this off and pass RunEnv's entries in RunOptions.Env instead.
	LibraryPathEnv bool
	// Logf, if set, is told about optional files that were not found.
	Logf func(format string, args ...any)
}

// driverLib is one of the driver's user-space libraries a CUDA program
// may load; the file is <name>.so.<driver version>.
type driverLib struct {
	name string
	// soname is used when the file's ELF soname cannot be read ("": the
	// versioned file name is the soname).
	soname   string
	required bool
	// also are further container names (libcuda.so for programs that
	// dlopen or link -lcuda without a version).
	also []string
}

var driverLibs = []driverLib{
	{name: "libcuda", soname: "libcuda.so.1", required: true, also: []string{"libcuda.so"}},
	{name: "libnvidia-ml", soname: "libnvidia-ml.so.1", required: true},
	{name: "libnvidia-ptxjitcompiler", soname: "libnvidia-ptxjitcompiler.so.1"},
	{name: "libnvidia-nvvm", soname: "libnvidia-nvvm.so.4"},
	{name: "libnvidia-gpucomp"},
	{name: "libnvidia-allocator", soname: "libnvidia-allocator.so.1"},
	{name: "libnvidia-pkcs11"},
	{name: "libnvidia-pkcs11-openssl3"},
	{name: "libcudadebugger", soname: "libcudadebugger.so.1"},
}

// libDirs are the directories under the driver root searched, in order.
func libDirs() []string {
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[runtime.GOARCH]
	var dirs []string
	for _, prefix := range []string{"/usr/lib", "/lib"} {
		if triplet != "" {
			dirs = append(dirs, prefix+"/"+triplet)
		}
		dirs = append(dirs, prefix+"64", prefix)
	}
	return dirs
}

var smiDirs = []string{"/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"}

// CDIName is the fully-qualified CDI name of the device in a spec made by
// GenerateSpec: "nvidia.com/gpu=<index>".
func CDIName(d Device) string { return Kind + "=" + strconv.Itoa(d.Index) }

// CDINames maps CDIName over devs.
func CDINames(devs []Device) []string {
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = CDIName(d)
	}
	return names
}

// GenerateSpec makes a CDI spec (kind nvidia.com/gpu) for all GPUs of inv:
// one device per GPU, named by its index, with its /dev/nvidia<minor> node;
// and, for the spec as a whole, the control nodes (/dev/nvidiactl, and
// /dev/nvidia-uvm and /dev/nvidia-uvm-tools where they exist), the driver
// libraries of inv.DriverVersion found under the driver root mounted
// read-only under their sonames in ContainerLibDir, nvidia-smi (if found)
// at ContainerSMIPath, and NVIDIA_VISIBLE_DEVICES=void. The spec has no
// hooks and no additional GIDs.
func GenerateSpec(inv Inventory, opts SpecOptions) (*specs.Spec, error) {
	if len(inv.Devices) == 0 {
		return nil, errors.New("gpu: no GPUs to describe in a CDI spec")
	}
	if inv.DriverVersion == "" {
		return nil, errors.New("gpu: the driver version is unknown: cannot find the driver's libraries")
	}
	root := opts.DriverRoot
	if root == "" {
		root = "/"
	}
	nodes := opts.Nodes
	if nodes == nil {
		nodes = HostNodes()
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	spec := &specs.Spec{Kind: Kind}
	for _, d := range inv.Devices {
		path := fmt.Sprintf("/dev/nvidia%d", d.Minor)
		n, err := deviceNode(nodes, path)
		if err != nil {
			return nil, fmt.Errorf("gpu: GPU %d (%s): %w (the driver creates it when a privileged process such as nvidia-smi, run as root, first uses the GPU)", d.Index, d.Name, err)
		}
		spec.Devices = append(spec.Devices, specs.Device{
			Name:           strconv.Itoa(d.Index),
			ContainerEdits: specs.ContainerEdits{DeviceNodes: []*specs.DeviceNode{n}},
		})
	}

	edits := &spec.ContainerEdits
	for _, path := range []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"} {
		n, err := deviceNode(nodes, path)
		switch {
		case err == nil:
			edits.DeviceNodes = append(edits.DeviceNodes, n)
		case errors.Is(err, fs.ErrNotExist) && path != "/dev/nvidiactl":
			logf("gpu: %s does not exist; not passed to GPU steps (CUDA needs /dev/nvidia-uvm: run nvidia-modprobe -u -c=0 as root)", path)
		default:
			return nil, fmt.Errorf("gpu: %w", err)
		}
	}

	for _, lib := range driverLibs {
		host, err := findFile(root, libDirs(), lib.name+".so."+inv.DriverVersion)
		if err != nil {
			return nil, err
		}
		if host == "" {
			if lib.required {
				return nil, fmt.Errorf("gpu: %s.so.%s not found in %s under %s: is the driver root right, and does the driver's version match the loaded kernel module?",
					lib.name, inv.DriverVersion, strings.Join(libDirs(), ", "), root)
			}
			logf("gpu: %s.so.%s not found; not passed to GPU steps", lib.name, inv.DriverVersion)
			continue
		}
		names := append([]string{sonameOf(host, lib)}, lib.also...)
		for _, name := range names {
			edits.Mounts = append(edits.Mounts, bindMount(host, ContainerLibDir+"/"+name))
		}
	}

	smi, err := findFile(root, smiDirs, "nvidia-smi")
	if err != nil {
		return nil, err
	}
	if smi != "" {
		edits.Mounts = append(edits.Mounts, bindMount(smi, ContainerSMIPath))
	} else {
		logf("gpu: nvidia-smi not found under %s; not passed to GPU steps", root)
	}

	edits.Env = []string{"NVIDIA_VISIBLE_DEVICES=void"}
	if opts.LibraryPathEnv {
		edits.Env = append(edits.Env, "LD_LIBRARY_PATH="+ContainerLibDir)
	}

	v, err := specs.MinimumRequiredVersion(spec)
	if err != nil {
		return nil, fmt.Errorf("gpu: CDI spec version: %w", err)
	}
	spec.Version = v
	return spec, nil
}

func deviceNode(nodes NodeStater, path string) (*specs.DeviceNode, error) {
	n, err := nodes.StatNode(path)
	if err != nil {
		return nil, err
	}
	if n.Type != "c" {
		return nil, fmt.Errorf("%s is not a character device (type %q)", path, n.Type)
	}
	return &specs.DeviceNode{Path: path, Type: n.Type, Major: n.Major, Minor: n.Minor, Permissions: "rw"}, nil
}

func bindMount(host, container string) *specs.Mount {
	return &specs.Mount{HostPath: host, ContainerPath: container, Type: "bind", Options: slices.Clone(mountOptions)}
}

// findFile returns the first root/dir/name that is a regular file (after
// symbolic links), or "".
func findFile(root string, dirs []string, name string) (string, error) {
	for _, dir := range dirs {
		p := filepath.Join(root, dir, name)
		st, err := os.Stat(p)
		switch {
		case err == nil && st.Mode().IsRegular():
			return p, nil
		case err == nil, errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		default:
			return "", fmt.Errorf("gpu: %w", err)
		}
	}
	return "", nil
}

// sonameOf reads the library's ELF soname; failing that it uses the table.
func sonameOf(path string, lib driverLib) string {
	if f, err := elf.Open(path); err == nil {
		defer f.Close()
		if names, err := f.DynString(elf.DT_SONAME); err == nil && len(names) == 1 &&
			names[0] != "" && !strings.ContainsRune(names[0], '/') {
			return names[0]
		}
	}
	if lib.soname != "" {
		return lib.soname
	}
	return filepath.Base(path)
}

// WriteSpec writes spec as JSON into dir (created 0700 if missing; the file
// is 0600, replaced atomically), checks that it loads into a CDI cache, and
// returns the fully-qualified names of its devices, e.g. "nvidia.com/gpu=0".
func WriteSpec(dir string, spec *specs.Spec) ([]string, error) {
	if spec == nil {
		return nil, errors.New("gpu: no CDI spec to write")
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("gpu: encoding the CDI spec: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	// A name the CDI scanner ignores until the rename.
	tmp, err := os.CreateTemp(dir, ".spec-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("gpu: writing the CDI spec: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("gpu: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("gpu: writing the CDI spec: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, SpecFileName)); err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	if err := CheckSpecDirs(dir); err != nil {
		return nil, err
	}
	names := make([]string, len(spec.Devices))
	for i, d := range spec.Devices {
		names[i] = spec.Kind + "=" + d.Name
	}
	return names, nil
}

// CheckSpecDirs loads the CDI specs of dirs, as Buildah will, and returns
// their errors. Buildah (run_linux.go, cdiSetupDevicesInSpec) skips all CDI
// injection when any spec in any of its directories fails to load or two
// specs of one directory define the same device; the step then fails with
// a confusing "setting up device" error. Check the directories it will scan
// (containers.conf's cdi_spec_dirs, by default /etc/cdi and /var/run/cdi,
// and the CDIConfigDir) beforehand to report the real cause.
func CheckSpecDirs(dirs ...string) error {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return fmt.Errorf("gpu: CDI cache: %w", err)
	}
	return specErrors(cache)
}

func specErrors(cache *cdi.Cache) error {
	byPath := cache.GetErrors()
	if len(byPath) == 0 {
		return nil
	}
	var msgs []string
	for _, path := range slices.Sorted(maps.Keys(byPath)) {
		for _, err := range byPath[path] {
			msgs = append(msgs, fmt.Sprintf("%s: %v", path, err))
		}
	}
	return fmt.Errorf("gpu: CDI specs with errors (Buildah then injects no CDI device at all): %s", strings.Join(msgs, "; "))
}

// RunEnv returns the environment entries to add to a GPU step's run (with
// Buildah: RunOptions.Env) so that programs find the driver libraries in
// ContainerLibDir: LD_LIBRARY_PATH with ContainerLibDir appended to the
// value env (the step's environment: image config plus step env) already
// has, or nothing if it already lists it, as CUDA base images do. Nothing
// of it is committed.
func RunEnv(env []string) []string {
	var cur string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "LD_LIBRARY_PATH="); ok {
			cur = v
		}
	}
	if slices.Contains(filepath.SplitList(cur), ContainerLibDir) {
		return nil
	}
	if cur == "" {
		return []string{"LD_LIBRARY_PATH=" + ContainerLibDir}
	}
	return []string{"LD_LIBRARY_PATH=" + cur + ":" + ContainerLibDir}
}

// HostSpecNames maps devices to the names of an administrator's CDI specs
// (made by "nvidia-ctk cdi generate") in dirs (default: /etc/cdi and
// /var/run/cdi), matching a device's UUID, index, or "gpu<index>" name, and
// returns their fully-qualified names for RunOptions.DeviceSpecs (leave
// RunOptions.CDIConfigDir empty when dirs are the defaults). warnings
// describe what such specs contain that GenerateSpec's avoid: hooks (with
// OCI isolation they run, and NVIDIA's update-ldcache hook writes into the
// container's rootfs, so into the committed layer) and additional GIDs
// (which cannot be mapped in a rootless user namespace).
func HostSpecNames(devices []Device, dirs ...string) (names, warnings []string, err error) {
	if len(dirs) == 0 {
		dirs = cdi.DefaultSpecDirs
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return nil, nil, fmt.Errorf("gpu: CDI cache: %w", err)
	}
	if err := specErrors(cache); err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, d := range devices {
		var dev *cdi.Device
		for _, n := range []string{d.UUID, strconv.Itoa(d.Index), "gpu" + strconv.Itoa(d.Index)} {
			if n == "" {
				continue
			}
			if dev = cache.GetDevice(Kind + "=" + n); dev != nil {
				break
			}
		}
		if dev == nil {
			var have []string
			for _, n := range cache.ListDevices() {
				if strings.HasPrefix(n, Kind+"=") {
					have = append(have, n)
				}
			}
			if len(have) == 0 {
				return nil, nil, fmt.Errorf("gpu: no %s devices in the CDI specs of %s (run nvidia-ctk cdi generate, or let strata generate its own spec)", Kind, strings.Join(dirs, ", "))
			}
			return nil, nil, fmt.Errorf("gpu: GPU %d (%s) is not in the CDI specs of %s, which have %s", d.Index, d.UUID, strings.Join(dirs, ", "), strings.Join(have, ", "))
		}
		names = append(names, dev.GetQualifiedName())
		spec := dev.GetSpec()
		for _, e := range []struct {
			where string
			ed    *specs.ContainerEdits
		}{{spec.GetPath(), &spec.ContainerEdits}, {dev.GetQualifiedName(), &dev.ContainerEdits}} {
			if seen[e.where] {
				continue
			}
			seen[e.where] = true
			for _, h := range e.ed.Hooks {
				warnings = append(warnings, fmt.Sprintf("%s: %s hook %s %s: runs with OCI isolation and may write into the committed layer",
					e.where, h.HookName, h.Path, strings.Join(h.Args, " ")))
			}
			if len(e.ed.AdditionalGIDs) > 0 {
				warnings = append(warnings, fmt.Sprintf("%s: additional GIDs %v cannot be mapped in a rootless user namespace", e.where, e.ed.AdditionalGIDs))
			}
		}
	}
	return names, warnings, nil
}
