package gpu

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func mustParse(t testing.TB, specs ...string) Request {
	t.Helper()
	r, err := ParseRequest(specs...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func acquire(t *testing.T, a *Allocator, inv Inventory, specs ...string) *Allocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	al, err := a.Acquire(ctx, inv, mustParse(t, specs...))
	if err != nil {
		t.Fatal(err)
	}
	return al
}

// acquireAsync starts Acquire in a goroutine; the result arrives on the
// channel.
func acquireAsync(ctx context.Context, a *Allocator, inv Inventory, req Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		al, err := a.Acquire(ctx, inv, req)
		ch <- result{al, err}
	}()
	return ch
}

type result struct {
	al  *Allocation
	err error
}

func mustWait(t *testing.T, ch <-chan result) *Allocation {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.al
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire still waiting")
		return nil
	}
}

func mustBlock(t *testing.T, ch <-chan result) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("Acquire returned %v, %v; want it to wait", r.al, r.err)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestAllocatorExclusiveConcurrent(t *testing.T) {
	inv := discover(t, dgxH100())
	a := NewAllocator()
	var (
		mu    sync.Mutex
		inUse = map[string]int{}
		peak  int
	)
	var wg sync.WaitGroup
	for i := range 32 {
		spec := []string{"H100", "H100:2", "H100:3", "any"}[i%4]
		wg.Go(func() {
			al, err := a.Acquire(context.Background(), inv, mustParse(t, spec))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, d := range al.Devices {
				inUse[d.UUID]++
				if inUse[d.UUID] > 1 {
					t.Errorf("GPU %d handed out twice", d.Index)
				}
			}
			peak = max(peak, len(inUse))
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			for _, d := range al.Devices {
				if inUse[d.UUID]--; inUse[d.UUID] == 0 {
					delete(inUse, d.UUID)
				}
			}
			mu.Unlock()
			al.Release()
		})
	}
	wg.Wait()
	if peak > 8 {
		t.Errorf("%d GPUs in use at once on an 8-GPU host", peak)
	}
	if len(a.load) != 0 {
		t.Errorf("GPUs still in use after every release: %v", a.load)
	}
}

func TestAllocatorWaitsForRelease(t *testing.T) {
	inv := discover(t, mixedHost(t))
	a := NewAllocator()
	first := acquire(t, a, inv, "H100")
	if got := indexes(first.Devices); !slices.Equal(got, []int{0}) {
		t.Fatalf("first got %v", got)
	}
	ch := acquireAsync(context.Background(), a, inv, mustParse(t, "H100"))
	mustBlock(t, ch)
	first.Release()
	second := mustWait(t, ch)
	if got := indexes(second.Devices); !slices.Equal(got, []int{0}) {
		t.Errorf("second got %v", got)
	}
	second.Release()
}

func TestAllocatorContext(t *testing.T) {
	inv := discover(t, mixedHost(t))
	a := NewAllocator()
	held := acquire(t, a, inv, "all")
	defer held.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := a.Acquire(ctx, inv, mustParse(t, "T4"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the context's", err)
	}
}

func TestAllocatorNeverSatisfiableFailsAtOnce(t *testing.T) {
	inv := discover(t, mixedHost(t))
	a := NewAllocator()
	held := acquire(t, a, inv, "all")
	defer held.Release()
	// With every GPU busy, a request the host could never meet must not wait.
	done := make(chan error, 1)
	go func() {
		_, err := a.Acquire(context.Background(), inv, mustParse(t, "H100:2"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnsatisfiable) {
			t.Errorf("error %v, want ErrUnsatisfiable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire waits for a request the host can never meet")
	}
}

func TestAllocatorListTakesWhatIsFree(t *testing.T) {
	inv := discover(t, mixedHost(t))
	a := NewAllocator()
	req := []string{"H100", "A100"}
	first := acquire(t, a, inv, req...)
	second := acquire(t, a, inv, req...) // does not wait for the preferred H100
	if got := [][]int{indexes(first.Devices), indexes(second.Devices)}; !slices.Equal(got[0], []int{0}) || !slices.Equal(got[1], []int{1}) {
		t.Fatalf("got %v, want [[0] [1]]", got)
	}
	ch := acquireAsync(context.Background(), a, inv, mustParse(t, req...))
	mustBlock(t, ch)
	second.Release()
	third := mustWait(t, ch)
	if got := indexes(third.Devices); !slices.Equal(got, []int{1}) {
		t.Errorf("third got %v, want the released A100", got)
	}
	first.Release()
	third.Release()
}

func TestAllocatorAllWaitsForEveryGPU(t *testing.T) {
	inv := discover(t, mixedHost(t))
	a := NewAllocator()
	t4 := acquire(t, a, inv, "T4")
	ch := acquireAsync(context.Background(), a, inv, mustParse(t, "all"))
	mustBlock(t, ch)
	t4.Release()
	all := mustWait(t, ch)
	if got := indexes(all.Devices); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("all got %v", got)
	}
	all.Release()
}

func TestAllocatorReleaseTwice(t *testing.T) {
	inv := discover(t, mixedHost(t))
	a := NewAllocator()
	first := acquire(t, a, inv, "H100")
	first.Release()
	first.Release()
	second := acquire(t, a, inv, "H100")
	// A second Release of first must not free second's GPU.
	first.Release()
	ch := acquireAsync(context.Background(), a, inv, mustParse(t, "H100"))
	mustBlock(t, ch)
	second.Release()
	mustWait(t, ch).Release()
	var nilAlloc *Allocation
	nilAlloc.Release()
}

func TestAllocatorShared(t *testing.T) {
	inv := discover(t, dgxH100())
	a := NewAllocator(Shared())
	var got [][]int
	var allocs []*Allocation
	for range 3 {
		al := acquire(t, a, inv, "H100:4")
		allocs = append(allocs, al)
		got = append(got, indexes(al.Devices))
	}
	// Least used first, then lowest index.
	want := [][]int{{0, 1, 2, 3}, {4, 5, 6, 7}, {0, 1, 2, 3}}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("allocation %d got %v, want %v", i, got[i], want[i])
		}
	}
	// Shared: "all" does not wait either.
	all := acquire(t, a, inv, "all")
	all.Release()
	for _, al := range allocs {
		al.Release()
	}
	if len(a.load) != 0 {
		t.Errorf("GPUs still in use after every release: %v", a.load)
	}
}

func TestAllocatorZeroRequest(t *testing.T) {
	a := NewAllocator()
	al, err := a.Acquire(context.Background(), mixedInventory(), Request{})
	if err != nil || len(al.Devices) != 0 || len(al.CDINames()) != 0 {
		t.Errorf("zero request: %v, %v", al, err)
	}
	al.Release()
}

func TestAllocationCDINames(t *testing.T) {
	inv := discover(t, mixedHost(t))
	al := acquire(t, NewAllocator(), inv, "A100,T4:2")
	defer al.Release()
	if got, want := al.CDINames(), []string{"nvidia.com/gpu=1"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
