package integration

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/gpu"
)

// fakeHost is a GPU host without a GPU: one "H100" whose device node is a
// harmless character device (make setup creates /dev/nvidia0 and
// /dev/nvidiactl as copies of /dev/null, 1:3, where no NVIDIA driver is
// loaded) and a driver tree with a fake libcuda, libnvidia-ml and
// nvidia-smi.
type fakeHost struct{ inv gpu.Inventory }

func (f fakeHost) Discover() (gpu.Inventory, error) { return f.inv, nil }

type noDriver struct{}

func (noDriver) Discover() (gpu.Inventory, error) { return gpu.Inventory{}, gpu.ErrNoDriver }

func requireFakeGPUNodes(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/dev/nvidia0", "/dev/nvidiactl"} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR {
			t.Skipf("%s is not a character device: `make setup` creates harmless fake nodes (1:3) on hosts without an NVIDIA driver", p)
		}
	}
	if _, err := os.Stat("/proc/driver/nvidia"); err == nil {
		t.Skip("a real NVIDIA driver is loaded: the fake-GPU test would hand a real GPU's node to busybox; run make gpu-e2e instead")
	}
}

func fakeDriverRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15"), "fake libcuda\n")
	writeFile(t, filepath.Join(root, "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.15"), "fake nvml\n")
	smi := filepath.Join(root, "usr/bin/nvidia-smi")
	writeFile(t, smi, "#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-fake-0)'\n")
	if err := os.Chmod(smi, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test user reads these through the mounts; make them world-readable.
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return root
}

func TestGPUStepSeesDevicesAndLayerStaysClean(t *testing.T) {
	requireRootless(t)
	requireFakeGPUNodes(t)
	ctx := context.Background()
	host := fakeHost{inv: gpu.Inventory{DriverVersion: "550.54.15", CUDADriverVersion: "12.4", Devices: []gpu.Device{
		{Index: 0, Minor: 0, UUID: "GPU-fake-0", Name: "NVIDIA H100 80GB HBM3", MemoryBytes: 80 << 30, ComputeCapability: "9.0"},
	}}}
	s := openSession(t, builder.WithGPUDiscovery(host, gpu.SpecOptions{DriverRoot: fakeDriverRoot(t)}))
	img := builder.FromArchive(busyboxTar(t)).
		RunCommands([]string{
			"test -c /dev/nvidia0 && test -c /dev/nvidiactl",
			"echo probe > /dev/nvidia0", // writable, as CUDA needs
			"cat /usr/local/nvidia/lib64/libcuda.so.1 > /seen-libcuda",
			"nvidia-smi -L > /seen-smi",
			`echo "$LD_LIBRARY_PATH" > /seen-ldpath`,
			`echo "$NVIDIA_VISIBLE_DEVICES" > /seen-visible`,
		}, builder.GPU("H100")).
		RunCommands([]string{"ls /dev > /plain-dev; ls /usr/local > /plain-local 2>&1; true"})
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	for file, want := range map[string]string{
		"seen-libcuda": "fake libcuda\n",
		"seen-smi":     "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-fake-0)\n",
		"seen-ldpath":  "/usr/local/nvidia/lib64\n",
		"seen-visible": "void\n",
	} {
		if got := readFromImage(t, s, res.ImageID, file); got != want {
			t.Errorf("/%s = %q, want %q", file, got, want)
		}
	}
	if got := readFromImage(t, s, res.ImageID, "plain-dev"); strings.Contains(got, "nvidia") {
		t.Errorf("a step without GPU sees %q in /dev", got)
	}
	if got := readFromImage(t, s, res.ImageID, "plain-local"); strings.Contains(got, "nvidia") {
		t.Errorf("a step without GPU sees %q in /usr/local", got)
	}
	// No layer holds device nodes, driver files or their mount targets.
	eachEntry(t, s, res.ImageID, func(name string, h *tar.Header, _ io.Reader) bool {
		if strings.Contains(name, "nvidia") || strings.HasPrefix(name, "dev/") || h.Typeflag == tar.TypeChar {
			t.Errorf("layer holds %s (type %c)", name, h.Typeflag)
		}
		return true
	})
	// The key holds the request, not the host: the plan shows "H100".
	p, err := s.Plan(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Steps[1].Spec.Options["gpu"]; got != "H100" {
		t.Fatalf("key option gpu = %q", got)
	}
}

func TestGPUStepWithoutDriverFailsOnlyThatStep(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t, builder.WithGPUDiscovery(noDriver{}, gpu.SpecOptions{}))
	base := builder.FromArchive(busyboxTar(t))
	if _, err := s.Build(ctx, base.RunCommands([]string{"echo fine > /f"})); err != nil {
		t.Fatalf("a build without GPU steps failed on a host without a driver: %v", err)
	}
	_, err := s.Build(ctx, base.RunCommands([]string{"echo fine > /f"}).RunCommands([]string{"nvidia-smi"}, builder.GPU("any")))
	if !errors.Is(err, gpu.ErrNoDriver) || !strings.Contains(err.Error(), "step 2 (RunCommands)") {
		t.Fatalf("error %v: want gpu.ErrNoDriver naming step 2", err)
	}
	containers, _ := counts(t, s.Store())
	if containers != 0 {
		t.Fatalf("%d working containers left", containers)
	}
}
