package runners

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/stratabuild/strata/gpu"
)

// GPUConfig says how GPU steps find and receive GPUs.
type GPUConfig struct {
	// Discoverer lists the host's GPUs; nil means NVML (gpu.NVML()). It is
	// asked once, at the first GPU step, so hosts without a driver are never
	// touched by builds without GPU steps.
	Discoverer gpu.Discoverer
	// Spec describes the host to the CDI spec generator (driver root,
	// device nodes).
	Spec gpu.SpecOptions
	// HostSpecs uses the CDI specs an administrator generated in /etc/cdi
	// or /var/run/cdi (nvidia-ctk cdi generate) instead of strata's own.
	HostSpecs bool
	// Shared lets concurrent steps use the same GPU.
	Shared bool
}

// gpuState is discovered once per Runtime, at the first GPU step.
type gpuState struct {
	once   sync.Once
	err    error
	inv    gpu.Inventory
	alloc  *gpu.Allocator
	dir    string   // private CDI spec directory ("" with HostSpecs)
	mounts []string // container paths the spec mounts onto
}

// gpuRun is what one GPU step passes to Buildah.
type gpuRun struct {
	names  []string
	dir    string
	mounts []Mount // mount targets, for cleanup only
	alloc  *gpu.Allocation
}

func (r *Runtime) gpuPrepare() error {
	g := &r.gpu
	g.once.Do(func() {
		d := r.gpuCfg.Discoverer
		if d == nil {
			d = gpu.NVML()
		}
		if g.inv, g.err = d.Discover(); g.err != nil {
			return
		}
		if len(g.inv.Devices) == 0 {
			g.err = fmt.Errorf("%w: the NVIDIA driver is loaded but lists no GPUs", gpu.ErrUnsatisfiable)
			return
		}
		var opts []gpu.AllocatorOption
		if r.gpuCfg.Shared {
			opts = append(opts, gpu.Shared())
		}
		g.alloc = gpu.NewAllocator(opts...)
		if r.gpuCfg.HostSpecs {
			return
		}
		spec, err := gpu.GenerateSpec(g.inv, r.gpuCfg.Spec)
		if err != nil {
			g.err = err
			return
		}
		// One directory per process: Buildah resolves CDI names through a
		// process-wide cache, so every step must see the same directories.
		g.dir = filepath.Join(r.runRoot, fmt.Sprintf("strata-cdi-%d", os.Getpid()))
		if _, err := gpu.WriteSpec(g.dir, spec); err != nil {
			g.err = err
			return
		}
		for _, m := range spec.ContainerEdits.Mounts {
			g.mounts = append(g.mounts, m.ContainerPath)
		}
	})
	return g.err
}

// acquireGPUs waits for GPUs that meet req and returns what the step's
// runs need.
func (r *Runtime) acquireGPUs(ctx context.Context, req gpu.Request) (*gpuRun, error) {
	if err := r.gpuPrepare(); err != nil {
		return nil, fmt.Errorf("GPU %s: %w", req, err)
	}
	a, err := r.gpu.alloc.Acquire(ctx, r.gpu.inv, req)
	if err != nil {
		return nil, fmt.Errorf("GPU %s: %w", req, err)
	}
	run := &gpuRun{dir: r.gpu.dir, alloc: a}
	if r.gpuCfg.HostSpecs {
		names, _, err := gpu.HostSpecNames(a.Devices)
		if err != nil {
			a.Release()
			return nil, fmt.Errorf("GPU %s: %w", req, err)
		}
		run.names = names
	} else {
		run.names = a.CDINames()
	}
	for _, p := range r.gpu.mounts {
		run.mounts = append(run.mounts, Mount{Dest: p})
	}
	return run, nil
}

func (g *gpuRun) release() {
	if g != nil {
		g.alloc.Release()
	}
}

// env returns the variables a GPU step's processes get besides their own,
// given the image's and the step's environment.
func (g *gpuRun) env(env []string) []string {
	if g == nil {
		return nil
	}
	return gpu.RunEnv(slices.Clone(env))
}

func (r *Runtime) gpuCleanup() {
	if r.gpu.dir != "" {
		_ = os.RemoveAll(r.gpu.dir)
	}
}
