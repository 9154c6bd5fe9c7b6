package gpu

import (
	"fmt"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

const mib = 1 << 20

// fixedUUID is the UUID tests give GPU i (go-nvml's mocks make random ones).
func fixedUUID(i int) string { return fmt.Sprintf("GPU-00000000-0000-4000-8000-%012d", i) }

// busID is the PCI bus id tests give GPU i.
func busID(i int) string { return fmt.Sprintf("00000000:%02X:00.0", 0x10+i) }

// fixDevices gives the mock server's GPUs fixed UUIDs, and makes GetPciInfo
// report a bus id (the mock's GetPciInfo leaves BusId empty).
func fixDevices(s *server.Server) {
	for i, d := range s.Devices {
		dev := d.(*server.Device)
		dev.UUID = fixedUUID(i)
		dev.PciBusID = busID(i)
		dev.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
			var p nvml.PciInfo
			for j, c := range []byte(dev.PciBusID) {
				p.BusId[j] = int8(c)
			}
			p.PciDeviceId = dev.Config.PciDeviceId
			return p, nvml.SUCCESS
		}
	}
}

// dgxH100 is go-nvml's 8×H100 mock with fixed UUIDs (bus ids left as the
// mock reports them: empty).
func dgxH100() *server.Server {
	s := dgxh100.New()
	for i, d := range s.Devices {
		d.(*server.Device).UUID = fixedUUID(i)
	}
	return s
}

var (
	h100Real = func() gpus.Config { c := gpus.H100_SXM5_80GB; c.MemoryMB = 81559; return c }()
	a100SXM  = func() gpus.Config {
		c := gpus.A100_SXM4_40GB
		c.Name = "NVIDIA A100-SXM4-40GB" // the mock's name starts with "Mock "
		c.MemoryMB = 40536
		return c
	}()
	teslaT4 = gpus.Config{
		Name:         "Tesla T4",
		Architecture: nvml.DEVICE_ARCH_TURING,
		Brand:        nvml.BRAND_NVIDIA,
		MemoryMB:     15360,
		CudaMajor:    7,
		CudaMinor:    5,
		PciDeviceId:  0x1EB810DE,
	}
)

// mixedMinors are the minor numbers of the mixed host's GPUs 0, 1, 2.
var mixedMinors = []int{3, 0, 7}

// mixedHost is an H100, an A100 40GB and a T4 whose minor numbers are not
// their indexes; the T4 does not support MIG.
func mixedHost(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.New(
		server.WithGPUs(h100Real, a100SXM, teslaT4),
		server.WithDriverVersion("550.54.15"),
		server.WithNVMLVersion("12.550.54.15"),
		server.WithCUDADriverVersion(12040),
	)
	if err != nil {
		t.Fatal(err)
	}
	fixDevices(s)
	for i, d := range s.Devices {
		d.(*server.Device).Minor = mixedMinors[i]
	}
	s.Devices[2].(*server.Device).GetMigModeFunc = func() (int, int, nvml.Return) {
		return 0, 0, nvml.ERROR_NOT_SUPPORTED
	}
	return s
}

// mixedInventory is what Discover reports for mixedHost.
func mixedInventory() Inventory {
	return Inventory{
		DriverVersion:     "550.54.15",
		CUDADriverVersion: "12.4",
		Devices: []Device{
			{Index: 0, Minor: 3, UUID: fixedUUID(0), Name: "NVIDIA H100 80GB HBM3", PCIBusID: busID(0), MemoryBytes: 81559 * mib, ComputeCapability: "9.0"},
			{Index: 1, Minor: 0, UUID: fixedUUID(1), Name: "NVIDIA A100-SXM4-40GB", PCIBusID: busID(1), MemoryBytes: 40536 * mib, ComputeCapability: "8.0"},
			{Index: 2, Minor: 7, UUID: fixedUUID(2), Name: "Tesla T4", PCIBusID: busID(2), MemoryBytes: 15360 * mib, ComputeCapability: "7.5"},
		},
	}
}

func discover(t testing.TB, lib nvml.Interface) Inventory {
	t.Helper()
	inv, err := FromNVML(lib).Discover()
	if err != nil {
		t.Fatal(err)
	}
	return inv
}
