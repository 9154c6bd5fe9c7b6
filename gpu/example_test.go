package gpu_test

import (
	"fmt"

	"github.com/stratabuild/strata/gpu"
)

func ExampleParseRequest() {
	for _, spec := range [][]string{
		{"h100"},
		{"H100:2"},
		{"a100-80gb:4"},
		{"H100!"},
		{"H100", "A100-40GB"},
		{"any"},
		{"all"},
		{"H100:0"},
	} {
		r, err := gpu.ParseRequest(spec...)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Printf("%q → %s\n", spec, r)
	}
	// Output:
	// ["h100"] → H100
	// ["H100:2"] → H100:2
	// ["a100-80gb:4"] → A100-80GB:4
	// ["H100!"] → H100
	// ["H100" "A100-40GB"] → H100,A100-40GB
	// ["any"] → any
	// ["all"] → all
	// error: gpu: invalid GPU request "H100:0": count "0" must be at least 1
}

func ExampleRequest_Select() {
	inv := gpu.Inventory{
		DriverVersion: "550.54.15",
		Devices: []gpu.Device{
			{Index: 0, Minor: 0, UUID: "GPU-a", Name: "NVIDIA A100-SXM4-40GB", MemoryBytes: 40536 << 20},
			{Index: 1, Minor: 1, UUID: "GPU-b", Name: "Tesla T4", MemoryBytes: 15360 << 20},
		},
	}
	for _, spec := range []string{"A100", "H100:2", "H100,T4"} {
		r, _ := gpu.ParseRequest(spec)
		devs, err := r.Select(inv)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(spec, "→", gpu.CDINames(devs))
	}
	// Output:
	// A100 → [nvidia.com/gpu=0]
	// GPU request "H100:2": host has 1 × NVIDIA A100-SXM4-40GB (40 GiB), 1 × Tesla T4 (15 GiB)
	// H100,T4 → [nvidia.com/gpu=1]
}
