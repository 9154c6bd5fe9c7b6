package gpu

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	oci "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	specs "tags.cncf.io/container-device-interface/specs-go"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const driverVersion = "550.54.15"

// fakeDriverRoot makes a driver root with fake (not ELF) versioned driver
// libraries and nvidia-smi. libs maps a library name to the directory it
// goes in (libDirs()[0] when ""); smi says whether to make nvidia-smi.
func fakeDriverRoot(t *testing.T, libs map[string]string, smi bool) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("fake "+filepath.Base(rel)+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, dir := range libs {
		if dir == "" {
			dir = libDirs()[0]
		}
		write(filepath.Join(dir, name+".so."+driverVersion))
	}
	if smi {
		write("usr/bin/nvidia-smi")
	}
	return root
}

// fullHost has every library (libnvidia-ml in the second directory,
// libnvidia-allocator in the last behind a directory of its name, decoy
// libcudas of another version and in a later directory) and nvidia-smi.
func fullHost(t *testing.T) string {
	libs := map[string]string{}
	for _, l := range driverLibs {
		libs[l.name] = ""
	}
	libs["libnvidia-ml"] = libDirs()[1]
	libs["libnvidia-allocator"] = "usr/lib"
	root := fakeDriverRoot(t, libs, true)
	for _, decoy := range []string{
		filepath.Join(libDirs()[0], "libcuda.so.535.161.08"),
		filepath.Join("usr/lib", "libcuda.so."+driverVersion),
	} {
		if err := os.WriteFile(filepath.Join(root, decoy), []byte("decoy"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A directory named like a library is skipped: libnvidia-allocator
	// comes from usr/lib.
	if err := os.MkdirAll(filepath.Join(root, libDirs()[0], "libnvidia-allocator.so."+driverVersion), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func control() FakeNodes {
	return FakeNodes{
		"/dev/nvidiactl":        {Type: "c", Major: 195, Minor: 255},
		"/dev/nvidia-uvm":       {Type: "c", Major: 508, Minor: 0},
		"/dev/nvidia-uvm-tools": {Type: "c", Major: 508, Minor: 1},
	}
}

// nodesFor adds the GPUs' nodes (major 195) to control nodes.
func nodesFor(inv Inventory, n FakeNodes) FakeNodes {
	for _, d := range inv.Devices {
		n[fmt.Sprintf("/dev/nvidia%d", d.Minor)] = NodeInfo{Type: "c", Major: 195, Minor: int64(d.Minor)}
	}
	return n
}

func checkGolden(t *testing.T, name string, spec *specs.Spec, root string) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("golden files list amd64's library directories")
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(string(data), root, "$DRIVER_ROOT") + "\n"
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("spec differs from %s (go test ./gpu -run %s -update to rewrite):\n%s", path, t.Name(), got)
	}
}

func TestGenerateSpecGolden(t *testing.T) {
	t.Run("mixed host, everything present", func(t *testing.T) {
		inv := mixedInventory()
		root := fullHost(t)
		var logs []string
		spec, err := GenerateSpec(inv, SpecOptions{
			DriverRoot: root,
			Nodes:      nodesFor(inv, control()),
			Logf:       func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
		})
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "spec-mixed.golden.json", spec, root)
		if len(logs) != 0 {
			t.Errorf("logged %q", logs)
		}
	})
	t.Run("dgxh100, only what is required", func(t *testing.T) {
		inv := discover(t, dgxH100())
		root := fakeDriverRoot(t, map[string]string{"libcuda": "", "libnvidia-ml": "usr/lib"}, false)
		var logs []string
		spec, err := GenerateSpec(inv, SpecOptions{
			DriverRoot:     root,
			Nodes:          nodesFor(inv, FakeNodes{"/dev/nvidiactl": {Type: "c", Major: 195, Minor: 255}}),
			LibraryPathEnv: true,
			Logf:           func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
		})
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "spec-dgxh100-minimal.golden.json", spec, root)
		joined := strings.Join(logs, "\n")
		for _, want := range []string{"/dev/nvidia-uvm does not exist", "/dev/nvidia-uvm-tools does not exist",
			"libnvidia-ptxjitcompiler.so." + driverVersion + " not found", "nvidia-smi not found"} {
			if !strings.Contains(joined, want) {
				t.Errorf("logs do not say %q:\n%s", want, joined)
			}
		}
	})
}

func TestGenerateSpecErrors(t *testing.T) {
	inv := mixedInventory()
	root := fullHost(t)
	for _, tc := range []struct {
		name  string
		inv   func(*Inventory)
		nodes func(FakeNodes)
		root  string
		says  string
	}{
		{name: "no nvidiactl", nodes: func(n FakeNodes) { delete(n, "/dev/nvidiactl") }, says: "/dev/nvidiactl"},
		{name: "no GPU node", nodes: func(n FakeNodes) { delete(n, "/dev/nvidia7") }, says: "GPU 2 (Tesla T4): stat /dev/nvidia7"},
		{name: "GPU node is a block device", nodes: func(n FakeNodes) { n["/dev/nvidia0"] = NodeInfo{Type: "b", Major: 8} }, says: "not a character device"},
		{name: "no libcuda", root: fakeDriverRoot(t, map[string]string{"libnvidia-ml": ""}, true), says: "libcuda.so." + driverVersion + " not found"},
		{name: "other driver version", inv: func(inv *Inventory) { inv.DriverVersion = "560.35.03" }, says: "libcuda.so.560.35.03 not found"},
		{name: "no driver version", inv: func(inv *Inventory) { inv.DriverVersion = "" }, says: "driver version is unknown"},
		{name: "no GPUs", inv: func(inv *Inventory) { inv.Devices = nil }, says: "no GPUs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := inv
			inv.Devices = slices.Clone(inv.Devices)
			if tc.inv != nil {
				tc.inv(&inv)
			}
			nodes := nodesFor(mixedInventory(), control())
			if tc.nodes != nil {
				tc.nodes(nodes)
			}
			r := root
			if tc.root != "" {
				r = tc.root
			}
			_, err := GenerateSpec(inv, SpecOptions{DriverRoot: r, Nodes: nodes})
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want one that says %q", err, tc.says)
			}
		})
	}
}

// writeMixedSpec generates the mixed host's spec and writes it.
func writeMixedSpec(t *testing.T, opts SpecOptions) (dir string, names []string, root string) {
	t.Helper()
	inv := mixedInventory()
	root = fullHost(t)
	opts.DriverRoot = root
	opts.Nodes = nodesFor(inv, control())
	spec, err := GenerateSpec(inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "build-1", "cdi")
	names, err = WriteSpec(dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	return dir, names, root
}

func TestWriteSpec(t *testing.T) {
	dir, names, _ := writeMixedSpec(t, SpecOptions{})
	if want := []string{"nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=2"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	if want := CDINames(mixedInventory().Devices); !slices.Equal(names, want) {
		t.Errorf("WriteSpec's names %v differ from CDINames %v", names, want)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("spec dir mode %v, want 0700", st.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != SpecFileName {
		t.Errorf("spec dir holds %v, want only %s", entries, SpecFileName)
	}
	st, err = os.Stat(filepath.Join(dir, SpecFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("spec file mode %v, want 0600", st.Mode().Perm())
	}
	// Writing again replaces the file.
	if _, err := WriteSpec(dir, &specs.Spec{Version: "0.5.0", Kind: Kind, Devices: []specs.Device{{Name: "9",
		ContainerEdits: specs.ContainerEdits{DeviceNodes: []*specs.DeviceNode{{Path: "/dev/nvidia9", Type: "c", Major: 195, Minor: 9}}}}}}); err != nil {
		t.Fatal(err)
	}
	cache, _ := cdi.NewCache(cdi.WithSpecDirs(dir), cdi.WithAutoRefresh(false))
	if got := cache.ListDevices(); !slices.Equal(got, []string{"nvidia.com/gpu=9"}) {
		t.Errorf("after rewriting: devices %v", got)
	}
	// An invalid spec is refused.
	if _, err := WriteSpec(t.TempDir(), &specs.Spec{Version: "0.5.0", Kind: Kind, Devices: []specs.Device{{Name: "bad name!"}}}); err == nil {
		t.Error("an invalid spec was written without error")
	}
}

func TestSpecLoadsAndInjects(t *testing.T) {
	dir, names, root := writeMixedSpec(t, SpecOptions{})
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dir), cdi.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	if errs := cache.GetErrors(); len(errs) != 0 {
		t.Fatalf("CDI cache errors: %v", errs)
	}
	if got := cache.ListDevices(); !slices.Equal(got, names) {
		t.Fatalf("cache devices %v, want %v", got, names)
	}

	lib := func(host, soname string) oci.Mount {
		return oci.Mount{Source: filepath.Join(root, host), Destination: ContainerLibDir + "/" + soname, Type: "bind",
			Options: []string{"ro", "nosuid", "nodev", "bind"}}
	}
	d0, d1 := libDirs()[0], libDirs()[1]
	v := "." + driverVersion
	wantMounts := []oci.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Source: filepath.Join(root, "usr/bin/nvidia-smi"), Destination: ContainerSMIPath, Type: "bind", Options: []string{"ro", "nosuid", "nodev", "bind"}},
		lib(d0+"/libcuda.so"+v, "libcuda.so.1"),
		lib(d0+"/libcuda.so"+v, "libcuda.so"),
		lib(d1+"/libnvidia-ml.so"+v, "libnvidia-ml.so.1"),
		lib(d0+"/libnvidia-ptxjitcompiler.so"+v, "libnvidia-ptxjitcompiler.so.1"),
		lib(d0+"/libnvidia-nvvm.so"+v, "libnvidia-nvvm.so.4"),
		lib(d0+"/libnvidia-gpucomp.so"+v, "libnvidia-gpucomp.so"+v),
		lib("usr/lib/libnvidia-allocator.so"+v, "libnvidia-allocator.so.1"),
		lib(d0+"/libnvidia-pkcs11.so"+v, "libnvidia-pkcs11.so"+v),
		lib(d0+"/libnvidia-pkcs11-openssl3.so"+v, "libnvidia-pkcs11-openssl3.so"+v),
		lib(d0+"/libcudadebugger.so"+v, "libcudadebugger.so.1"),
	}
	node := func(path string, major, minor int64) oci.LinuxDevice {
		return oci.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor}
	}
	rule := func(major, minor int64) oci.LinuxDeviceCgroup {
		return oci.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rw"}
	}
	controlNodes := []oci.LinuxDevice{node("/dev/nvidiactl", 195, 255), node("/dev/nvidia-uvm", 508, 0), node("/dev/nvidia-uvm-tools", 508, 1)}
	controlRules := []oci.LinuxDeviceCgroup{rule(195, 255), rule(508, 0), rule(508, 1)}

	for _, tc := range []struct {
		name      string
		req       string
		wantNames []string
		wantNodes []oci.LinuxDevice
		wantRules []oci.LinuxDeviceCgroup
	}{
		{"one H100 at minor 3", "H100", []string{"nvidia.com/gpu=0"},
			append(slices.Clone(controlNodes), node("/dev/nvidia3", 195, 3)),
			append(slices.Clone(controlRules), rule(195, 3))},
		{"T4 and A100 by preference", "T4,A100", []string{"nvidia.com/gpu=2"},
			append(slices.Clone(controlNodes), node("/dev/nvidia7", 195, 7)),
			append(slices.Clone(controlRules), rule(195, 7))},
		{"all", "all", []string{"nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=2"},
			append(slices.Clone(controlNodes), node("/dev/nvidia3", 195, 3), node("/dev/nvidia0", 195, 0), node("/dev/nvidia7", 195, 7)),
			append(slices.Clone(controlRules), rule(195, 3), rule(195, 0), rule(195, 7))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs, err := mustParse(t, tc.req).Select(mixedInventory())
			if err != nil {
				t.Fatal(err)
			}
			if got := CDINames(devs); !slices.Equal(got, tc.wantNames) {
				t.Fatalf("names %v, want %v", got, tc.wantNames)
			}
			imageEnv := []string{"PATH=/opt/conda/bin:/usr/bin:/bin", "LD_LIBRARY_PATH=/opt/conda/lib", "NVIDIA_VISIBLE_DEVICES=all"}
			spec := &oci.Spec{
				Process: &oci.Process{Env: slices.Clone(imageEnv)},
				Mounts:  []oci.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
				Linux:   &oci.Linux{},
			}
			if unresolved, err := cache.InjectDevices(spec, CDINames(devs)...); err != nil {
				t.Fatalf("InjectDevices: %v (unresolved %v)", err, unresolved)
			}
			for i := range spec.Linux.Devices {
				spec.Linux.Devices[i].FileMode = nil // filled in from the host when the node exists there
			}
			if !reflect.DeepEqual(spec.Linux.Devices, tc.wantNodes) {
				t.Errorf("devices:\n got %+v\nwant %+v", spec.Linux.Devices, tc.wantNodes)
			}
			if spec.Linux.Resources == nil || !reflect.DeepEqual(spec.Linux.Resources.Devices, tc.wantRules) {
				t.Errorf("cgroup device rules:\n got %s\nwant %s", jsonString(spec.Linux.Resources), jsonString(tc.wantRules))
			}
			if !reflect.DeepEqual(spec.Mounts, wantMounts) {
				t.Errorf("mounts:\n got %s\nwant %s", jsonString(spec.Mounts), jsonString(wantMounts))
			}
			// The image's PATH and LD_LIBRARY_PATH are left alone (RunEnv
			// extends the latter). CDI appends NVIDIA_VISIBLE_DEVICES=void
			// after the image's value instead of replacing it (see
			// TestEnvEditsAppend); runc keeps the last.
			wantEnv := append(slices.Clone(imageEnv), "NVIDIA_VISIBLE_DEVICES=void")
			if !slices.Equal(spec.Process.Env, wantEnv) {
				t.Errorf("env %q, want %q", spec.Process.Env, wantEnv)
			}
			if spec.Hooks != nil {
				t.Errorf("hooks: %s", jsonString(spec.Hooks))
			}
			if len(spec.Process.User.AdditionalGids) != 0 {
				t.Errorf("additional GIDs %v", spec.Process.User.AdditionalGids)
			}
			for _, m := range spec.Mounts[1:] {
				if m.Source == m.Destination || !strings.HasPrefix(m.Source, root) {
					t.Errorf("mount %+v does not come from the driver root", m)
				}
			}
		})
	}
}

// TestEnvEditsAppend pins the CDI behaviour RunEnv exists for: an env edit
// neither extends nor replaces the image's variable but appends a second
// one (runtime-tools' generate.NewFromSpec indexes the existing env by
// whole "KEY=value" strings), so which one a program sees depends on the
// runtime (runc keeps the last) and on how the program reads its env.
func TestEnvEditsAppend(t *testing.T) {
	dir, names, _ := writeMixedSpec(t, SpecOptions{LibraryPathEnv: true})
	cache, _ := cdi.NewCache(cdi.WithSpecDirs(dir), cdi.WithAutoRefresh(false))
	spec := &oci.Spec{Process: &oci.Process{Env: []string{"LD_LIBRARY_PATH=/opt/conda/lib"}}, Linux: &oci.Linux{}}
	if _, err := cache.InjectDevices(spec, names[0]); err != nil {
		t.Fatal(err)
	}
	want := []string{"LD_LIBRARY_PATH=/opt/conda/lib", "NVIDIA_VISIBLE_DEVICES=void", "LD_LIBRARY_PATH=" + ContainerLibDir}
	if !slices.Equal(spec.Process.Env, want) {
		t.Errorf("env %q, want %q", spec.Process.Env, want)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRunEnv(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{nil, []string{"LD_LIBRARY_PATH=/usr/local/nvidia/lib64"}},
		{[]string{"PATH=/usr/bin", "LD_LIBRARY_PATH="}, []string{"LD_LIBRARY_PATH=/usr/local/nvidia/lib64"}},
		{[]string{"LD_LIBRARY_PATH=/opt/conda/lib"}, []string{"LD_LIBRARY_PATH=/opt/conda/lib:/usr/local/nvidia/lib64"}},
		// CUDA base images already list it.
		{[]string{"LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64"}, nil},
		// The last setting wins, as in Buildah's MergeEnv.
		{[]string{"LD_LIBRARY_PATH=/usr/local/nvidia/lib64", "LD_LIBRARY_PATH=/x"}, []string{"LD_LIBRARY_PATH=/x:/usr/local/nvidia/lib64"}},
		{[]string{"XLD_LIBRARY_PATH=/x"}, []string{"LD_LIBRARY_PATH=/usr/local/nvidia/lib64"}},
	} {
		if got := RunEnv(tc.env); !slices.Equal(got, tc.want) {
			t.Errorf("RunEnv(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestHostNodes(t *testing.T) {
	n, err := HostNodes().StatNode("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if n != (NodeInfo{Type: "c", Major: 1, Minor: 3}) {
		t.Errorf("/dev/null: %+v", n)
	}
	if _, err := HostNodes().StatNode("/dev/does-not-exist"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing node: %v, want fs.ErrNotExist", err)
	}
	if _, err := HostNodes().StatNode("/etc/hostname"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("regular file: %v, want an error that is not ErrNotExist", err)
	}
	if _, err := (FakeNodes{}).StatNode("/dev/nvidia0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fake missing node: %v, want fs.ErrNotExist", err)
	}
}

func TestSonameFromELF(t *testing.T) {
	// A real shared library: its soname comes from the ELF file, not the
	// fallback table.
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if got := sonameOf(p, driverLib{soname: "fallback.so.1"}); got != "libc.so.6" {
			t.Errorf("soname of %s: %q, want libc.so.6", p, got)
		}
		return
	}
	t.Skip("no libc.so.6 found")
}

// nvidiaCTKSpec is shaped like "nvidia-ctk cdi generate" output (names by
// index and UUID, "all", spec-wide hooks).
func nvidiaCTKSpec(uuids ...string) string {
	var devs []string
	for i, u := range uuids {
		for _, name := range []string{fmt.Sprint(i), u} {
			devs = append(devs, fmt.Sprintf(`  - name: %q
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia%d`, name, i))
		}
	}
	return `cdiVersion: 0.7.0
kind: nvidia.com/gpu
devices:
` + strings.Join(devs, "\n") + `
containerEdits:
  deviceNodes:
    - path: /dev/nvidiactl
  hooks:
    - hookName: createContainer
      path: /usr/bin/nvidia-cdi-hook
      args: [nvidia-cdi-hook, update-ldcache, --folder, /usr/lib/x86_64-linux-gnu]
  additionalGids: [44]
`
}

func TestHostSpecNames(t *testing.T) {
	inv := mixedInventory()
	etc, run := t.TempDir(), t.TempDir()
	// The admin's spec knows GPUs 0 and 1 by UUID and index; a second spec
	// names GPU 2 the "type-index" way.
	if err := os.WriteFile(filepath.Join(etc, "nvidia.yaml"), []byte(nvidiaCTKSpec(fixedUUID(0), fixedUUID(1))), 0o644); err != nil {
		t.Fatal(err)
	}
	gpu2 := `{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu","devices":[{"name":"gpu2","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia7"}]}}]}`
	if err := os.WriteFile(filepath.Join(run, "t4.json"), []byte(gpu2), 0o644); err != nil {
		t.Fatal(err)
	}

	names, warnings, err := HostSpecNames(inv.Devices, etc, run)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nvidia.com/gpu=" + fixedUUID(0), "nvidia.com/gpu=" + fixedUUID(1), "nvidia.com/gpu=gpu2"}
	if !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	joined := strings.Join(warnings, "\n")
	if len(warnings) != 2 || !strings.Contains(joined, "update-ldcache") || !strings.Contains(joined, "additional GIDs [44]") {
		t.Errorf("warnings:\n%s", joined)
	}

	// A GPU the specs do not know.
	_, _, err = HostSpecNames(inv.Devices, etc)
	if err == nil || !strings.Contains(err.Error(), "GPU 2") || !strings.Contains(err.Error(), "nvidia.com/gpu=0") {
		t.Errorf("error %v, want one naming GPU 2 and listing the known devices", err)
	}
	// No spec at all.
	_, _, err = HostSpecNames(inv.Devices, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "nvidia-ctk cdi generate") {
		t.Errorf("error %v, want advice", err)
	}
	// A broken spec anywhere stops Buildah's injection: report it.
	if err := os.WriteFile(filepath.Join(run, "broken.yaml"), []byte("cdiVersion: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = HostSpecNames(inv.Devices, etc, run)
	if err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Errorf("error %v, want one naming broken.yaml", err)
	}
}

func TestCheckSpecDirs(t *testing.T) {
	dir, _, _ := writeMixedSpec(t, SpecOptions{})
	if err := CheckSpecDirs(dir, filepath.Join(dir, "missing")); err != nil {
		t.Errorf("good dir: %v", err)
	}
	// Two specs of one directory defining the same device conflict.
	data, err := os.ReadFile(filepath.Join(dir, SpecFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "copy.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	err = CheckSpecDirs(dir)
	if err == nil || !strings.Contains(err.Error(), "conflicting device") {
		t.Errorf("error %v, want a conflict", err)
	}
	// In a higher-priority directory, the same names are no conflict: ours
	// shadow an admin's nvidia.com/gpu=0.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "copy.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "copy.json")); err != nil {
		t.Fatal(err)
	}
	if err := CheckSpecDirs(other, dir); err != nil {
		t.Errorf("shadowing: %v", err)
	}
}
