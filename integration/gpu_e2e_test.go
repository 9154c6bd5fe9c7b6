//go:build gpu_e2e

package integration

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/gpu"
)

// cudaProbe runs inside the GPU step: the test binary, started through the
// host's loader, dlopens the libcuda that the CDI spec mounted.
var cudaProbe = builder.RegisterFunction("cuda-probe", "v1", func(ctx context.Context, args []string) error {
	name, err := cudaDeviceName("/usr/local/nvidia/lib64/libcuda.so.1")
	if err != nil {
		return err
	}
	return os.WriteFile("/cuda-device", []byte(name+"\n"), 0o644)
})

// TestGPUEndToEnd needs a host with an NVIDIA driver (make gpu-e2e); it
// runs rootless as the test user, or as root with STRATA_ALLOW_ROOT=1.
func TestGPUEndToEnd(t *testing.T) {
	requireRootless(t)
	if _, err := os.Stat("/proc/driver/nvidia"); err != nil {
		t.Skip("no NVIDIA driver loaded on this host")
	}
	inv, err := gpu.NVML().Discover()
	if err != nil {
		t.Fatalf("NVML: %v", err)
	}
	t.Logf("host: %s, driver %s, CUDA %s", inv.Summary(), inv.DriverVersion, inv.CUDADriverVersion)
	ctx := context.Background()
	s := openSession(t)
	img := builder.FromArchive(busyboxTar(t)).
		RunCommands([]string{"nvidia-smi -L > /smi"}, builder.GPU("any")).
		RunFunction(cudaProbe, nil, builder.GPU("any"))
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	smi := readFromImage(t, s, res.ImageID, "smi")
	t.Logf("nvidia-smi -L in the step: %s", smi)
	if !strings.Contains(smi, inv.Devices[0].UUID) {
		t.Fatalf("the step saw %q, want the selected GPU %s", smi, inv.Devices[0].UUID)
	}
	dev := readFromImage(t, s, res.ImageID, "cuda-device")
	t.Logf("cuDeviceGetName in the step: %s", dev)
	if !strings.Contains(inv.Devices[0].Name, strings.TrimSpace(dev)) {
		t.Fatalf("CUDA saw %q, NVML %q", dev, inv.Devices[0].Name)
	}
	for _, p := range []string{"usr/local/nvidia", "usr/bin/nvidia-smi", "dev/nvidia0", ".strata"} {
		if hasFile(t, s, res.ImageID, p) || hasFile(t, s, res.ImageID, p+"/") {
			t.Errorf("layer holds %s", p)
		}
	}
}
