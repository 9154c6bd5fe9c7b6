package gpu

import (
	"errors"
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoDriver is returned (wrapped) by Discover on a host without a usable
// NVIDIA driver: NVML could not be loaded or the kernel module is not loaded.
var ErrNoDriver = errors.New("no NVIDIA driver on this host: install the NVIDIA driver " +
	"(kernel module and libnvidia-ml.so.1) or remove the GPU option from the step")

// Device is one NVIDIA GPU as NVML reports it.
type Device struct {
	// Index is the NVML device index (the order nvidia-smi lists).
	Index int
	// Minor is the device minor number: the GPU's node is /dev/nvidia<Minor>.
	// It need not equal Index.
	Minor int
	// UUID is NVML's "GPU-..." identifier.
	UUID string
	// Name is NVML's product name, e.g. "NVIDIA H100 80GB HBM3".
	Name string
	// PCIBusID is the PCI bus id, e.g. "00000000:3B:00.0" (empty if NVML
	// reports none).
	PCIBusID string
	// MemoryBytes is the total memory of the GPU in bytes.
	MemoryBytes uint64
	// ComputeCapability is the CUDA compute capability, "major.minor".
	ComputeCapability string
	// MIGEnabled reports whether MIG mode is on; such a GPU cannot be handed
	// to a step as a whole GPU and is never selected.
	MIGEnabled bool
}

// Inventory is what Discover found on the host.
type Inventory struct {
	Devices []Device
	// DriverVersion is the NVIDIA driver version, e.g. "550.54.15". The
	// driver's libraries are named after it (libcuda.so.550.54.15).
	DriverVersion string
	// CUDADriverVersion is the newest CUDA version the driver supports,
	// e.g. "12.4".
	CUDADriverVersion string
}

// Discoverer lists the GPUs of a host.
type Discoverer interface {
	Discover() (Inventory, error)
}

// NVML returns a Discoverer that uses the host's NVML library
// (libnvidia-ml.so.1, loaded at run time).
func NVML() Discoverer { return FromNVML(nvml.New()) }

// FromNVML returns a Discoverer that uses lib, e.g. one of go-nvml's mocks.
func FromNVML(lib nvml.Interface) Discoverer { return nvmlDiscoverer{lib} }

type nvmlDiscoverer struct{ lib nvml.Interface }

// Discover initialises NVML, reads the inventory and shuts NVML down again.
func (d nvmlDiscoverer) Discover() (inv Inventory, err error) {
	switch ret := d.lib.Init(); ret {
	case nvml.SUCCESS:
	case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED:
		return Inventory{}, fmt.Errorf("gpu: %w (nvml.Init: %w)", ErrNoDriver, ret)
	default:
		return Inventory{}, fmt.Errorf("gpu: nvml.Init: %w", ret)
	}
	defer func() {
		if ret := d.lib.Shutdown(); ret != nvml.SUCCESS && err == nil {
			err = fmt.Errorf("gpu: nvml.Shutdown: %w", ret)
		}
	}()

	v, ret := d.lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return Inventory{}, fmt.Errorf("gpu: reading the driver version: %w", ret)
	}
	inv.DriverVersion = v
	cuda, ret := d.lib.SystemGetCudaDriverVersion()
	if ret != nvml.SUCCESS {
		return Inventory{}, fmt.Errorf("gpu: reading the CUDA driver version: %w", ret)
	}
	inv.CUDADriverVersion = fmt.Sprintf("%d.%d", cuda/1000, cuda%1000/10)

	n, ret := d.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return Inventory{}, fmt.Errorf("gpu: counting GPUs: %w", ret)
	}
	for i := range n {
		dev, err := readDevice(d.lib, i)
		if err != nil {
			return Inventory{}, err
		}
		inv.Devices = append(inv.Devices, dev)
	}
	return inv, nil
}

func readDevice(lib nvml.Interface, i int) (Device, error) {
	h, ret := lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("gpu: GPU %d: getting its handle: %w", i, ret)
	}
	fail := func(what string, ret nvml.Return) error {
		return fmt.Errorf("gpu: GPU %d: reading its %s: %w", i, what, ret)
	}
	d := Device{Index: i}
	if d.Minor, ret = h.GetMinorNumber(); ret != nvml.SUCCESS {
		return Device{}, fail("minor number", ret)
	}
	if d.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		return Device{}, fail("UUID", ret)
	}
	if d.Name, ret = h.GetName(); ret != nvml.SUCCESS {
		return Device{}, fail("name", ret)
	}
	pci, ret := h.GetPciInfo()
	if ret != nvml.SUCCESS {
		return Device{}, fail("PCI info", ret)
	}
	d.PCIBusID = cString(pci.BusId[:])
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return Device{}, fail("memory info", ret)
	}
	d.MemoryBytes = mem.Total
	major, minor, ret := h.GetCudaComputeCapability()
	if ret != nvml.SUCCESS {
		return Device{}, fail("compute capability", ret)
	}
	d.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	switch mode, _, ret := h.GetMigMode(); ret {
	case nvml.SUCCESS:
		d.MIGEnabled = mode == nvml.DEVICE_MIG_ENABLE
	case nvml.ERROR_NOT_SUPPORTED:
		// GPUs without MIG support say so.
	default:
		return Device{}, fail("MIG mode", ret)
	}
	return d, nil
}

// cString converts NVML's NUL-terminated char array.
func cString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// GiB is the device's memory in GiB, rounded to the nearest GiB.
func (d Device) GiB() uint64 { return (d.MemoryBytes + 1<<29) >> 30 }

// Summary describes the inventory in one line, grouping identical GPUs, e.g.
// "1 × NVIDIA A100-SXM4-40GB (40 GiB), 1 × Tesla T4 (15 GiB)".
func (inv Inventory) Summary() string {
	if len(inv.Devices) == 0 {
		return "no NVIDIA GPUs"
	}
	type group struct {
		label string
		n     int
	}
	var groups []*group
	byLabel := map[string]*group{}
	for _, d := range inv.Devices {
		label := fmt.Sprintf("%s (%d GiB)", d.Name, d.GiB())
		if d.MIGEnabled {
			label = fmt.Sprintf("%s (%d GiB, MIG enabled: not usable as a whole GPU)", d.Name, d.GiB())
		}
		g := byLabel[label]
		if g == nil {
			g = &group{label: label}
			byLabel[label] = g
			groups = append(groups, g)
		}
		g.n++
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = fmt.Sprintf("%d × %s", g.n, g.label)
	}
	return strings.Join(parts, ", ")
}
