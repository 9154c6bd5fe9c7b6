package gpu

import (
	"context"
	"fmt"
	"strconv"
	"sync"
)

// Allocator hands GPUs to concurrent steps: unless built with Shared, a GPU
// belongs to one Allocation at a time. One Allocator serves a whole process
// (all builds that share the host's GPUs).
type Allocator struct {
	shared bool

	mu      sync.Mutex
	load    map[string]int // device key → number of holders
	changed chan struct{}  // closed (and replaced) on every release
}

// AllocatorOption configures NewAllocator.
type AllocatorOption func(*Allocator)

// Shared lets several allocations hold the same GPU at once (time-slicing):
// Acquire never waits and prefers the least used GPUs.
func Shared() AllocatorOption { return func(a *Allocator) { a.shared = true } }

// NewAllocator returns an Allocator with no GPU in use.
func NewAllocator(opts ...AllocatorOption) *Allocator {
	a := &Allocator{load: map[string]int{}, changed: make(chan struct{})}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Allocation is the set of GPUs one step holds. Release it when the step ends.
type Allocation struct {
	// Devices are the GPUs, in index order.
	Devices []Device

	a    *Allocator
	once sync.Once
}

// key identifies a GPU across inventories of the same host.
func key(d Device) string {
	if d.UUID != "" {
		return d.UUID
	}
	return "index:" + strconv.Itoa(d.Index)
}

// Acquire selects GPUs of inv for req and marks them in use. When the host
// could satisfy req but the matching GPUs are held by other allocations, it
// waits for releases until ctx is done. When the host never could, it fails
// at once with an error wrapping ErrUnsatisfiable. The zero Request gets an
// empty Allocation.
func (a *Allocator) Acquire(ctx context.Context, inv Inventory, req Request) (*Allocation, error) {
	if req.IsZero() {
		return &Allocation{a: a}, nil
	}
	if _, err := req.Select(inv); err != nil {
		return nil, err
	}
	for {
		a.mu.Lock()
		load := func(d Device) int { return a.load[key(d)] }
		devs, ok := req.pick(inv, load, !a.shared)
		if ok {
			for _, d := range devs {
				a.load[key(d)]++
			}
			a.mu.Unlock()
			return &Allocation{Devices: devs, a: a}, nil
		}
		changed := a.changed
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("gpu: waiting for %q (all matching GPUs are in use): %w", req.String(), context.Cause(ctx))
		case <-changed:
		}
	}
}

// Release gives the GPUs back. Calling it again does nothing.
func (al *Allocation) Release() {
	if al == nil || al.a == nil {
		return
	}
	al.once.Do(func() {
		a := al.a
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, d := range al.Devices {
			k := key(d)
			if a.load[k]--; a.load[k] <= 0 {
				delete(a.load, k)
			}
		}
		close(a.changed)
		a.changed = make(chan struct{})
	})
}

// CDINames are the fully-qualified CDI device names of the allocation's
// GPUs in a spec made by GenerateSpec, e.g. "nvidia.com/gpu=0", for
// Buildah's RunOptions.DeviceSpecs.
func (al *Allocation) CDINames() []string {
	if al == nil {
		return nil
	}
	return CDINames(al.Devices)
}
