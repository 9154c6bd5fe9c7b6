package gpu

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func TestDiscover(t *testing.T) {
	dgx := Inventory{DriverVersion: "550.54.15", CUDADriverVersion: "12.4"}
	for i := range 8 {
		dgx.Devices = append(dgx.Devices, Device{
			Index: i, Minor: i, UUID: fixedUUID(i), Name: "NVIDIA H100 80GB HBM3",
			MemoryBytes: 80 << 30, ComputeCapability: "9.0",
		})
	}
	mig := mixedHost(t)
	mig.Devices[1].(*server.Device).MigMode = nvml.DEVICE_MIG_ENABLE
	migInv := mixedInventory()
	migInv.Devices[1].MIGEnabled = true
	noGPUs, err := server.New(server.WithDriverVersion("570.86.15"), server.WithCUDADriverVersion(12080))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		lib  *server.Server
		want Inventory
	}{
		{"dgxh100", dgxH100(), dgx},
		{"mixed with non-identity minors", mixedHost(t), mixedInventory()},
		{"MIG enabled", mig, migInv},
		{"zero GPUs", noGPUs, Inventory{DriverVersion: "570.86.15", CUDADriverVersion: "12.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := discover(t, tc.lib)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("inventory:\n got %+v\nwant %+v", got, tc.want)
			}
			if i, s := len(tc.lib.Interface.InitCalls()), len(tc.lib.Interface.ShutdownCalls()); i != 1 || s != 1 {
				t.Errorf("Init called %d times, Shutdown %d times; want 1 and 1", i, s)
			}
		})
	}
}

func TestDiscoverNoDriver(t *testing.T) {
	for _, ret := range []nvml.Return{nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED} {
		t.Run(ret.Error(), func(t *testing.T) {
			lib := &mock.Interface{InitFunc: func() nvml.Return { return ret }}
			_, err := FromNVML(lib).Discover()
			if !errors.Is(err, ErrNoDriver) {
				t.Fatalf("error %v is not ErrNoDriver", err)
			}
			if !errors.Is(err, ret) {
				t.Errorf("error %v does not wrap %v", err, ret)
			}
			for _, want := range []string{"install the NVIDIA driver", "remove the GPU option"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			// Shutdown is not set: the mock panics if Discover calls it
			// after a failed Init.
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		breakIt  func(*server.Server)
		want     nvml.Return
		contains string
	}{
		{"init: no permission", func(s *server.Server) {
			s.InitFunc = func() nvml.Return { return nvml.ERROR_NO_PERMISSION }
		}, nvml.ERROR_NO_PERMISSION, "nvml.Init"},
		{"device count", func(s *server.Server) {
			s.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
		}, nvml.ERROR_UNKNOWN, "counting GPUs"},
		{"driver version", func(s *server.Server) {
			s.SystemGetDriverVersionFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
		}, nvml.ERROR_UNKNOWN, "driver version"},
		{"memory of GPU 1", func(s *server.Server) {
			s.Devices[1].(*server.Device).GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
				return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST
			}
		}, nvml.ERROR_GPU_IS_LOST, "GPU 1: reading its memory info"},
		{"MIG mode", func(s *server.Server) {
			s.Devices[0].(*server.Device).GetMigModeFunc = func() (int, int, nvml.Return) {
				return 0, 0, nvml.ERROR_UNKNOWN
			}
		}, nvml.ERROR_UNKNOWN, "MIG mode"},
		{"shutdown", func(s *server.Server) {
			s.ShutdownFunc = func() nvml.Return { return nvml.ERROR_UNKNOWN }
		}, nvml.ERROR_UNKNOWN, "nvml.Shutdown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mixedHost(t)
			tc.breakIt(s)
			_, err := FromNVML(s).Discover()
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.want) || errors.Is(err, ErrNoDriver) {
				t.Errorf("error %v: want one wrapping %v, not ErrNoDriver", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not say %q", err, tc.contains)
			}
			wantShutdowns := 1 // after every successful Init
			if tc.want == nvml.ERROR_NO_PERMISSION {
				wantShutdowns = 0
			}
			if n := len(s.Interface.ShutdownCalls()); n != wantShutdowns {
				t.Errorf("Shutdown called %d times, want %d", n, wantShutdowns)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	inv := discover(t, dgxH100())
	if got, want := inv.Summary(), "8 × NVIDIA H100 80GB HBM3 (80 GiB)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := mixedInventory().Summary(), "1 × NVIDIA H100 80GB HBM3 (80 GiB), 1 × NVIDIA A100-SXM4-40GB (40 GiB), 1 × Tesla T4 (15 GiB)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := (Inventory{}).Summary(), "no NVIDIA GPUs"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestNVMLOnThisHost runs the real library: on a host without the driver it
// must say ErrNoDriver; on a GPU host it must find GPUs with the fields set.
func TestNVMLOnThisHost(t *testing.T) {
	inv, err := NVML().Discover()
	if errors.Is(err, ErrNoDriver) {
		t.Logf("no driver here: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("driver %s, CUDA %s: %s", inv.DriverVersion, inv.CUDADriverVersion, inv.Summary())
	if inv.DriverVersion == "" || inv.CUDADriverVersion == "" {
		t.Errorf("versions missing: %+v", inv)
	}
	for _, d := range inv.Devices {
		if d.UUID == "" || d.Name == "" || d.MemoryBytes == 0 || d.PCIBusID == "" {
			t.Errorf("GPU %d: fields missing: %+v", d.Index, d)
		}
	}
}
