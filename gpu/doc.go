// Package gpu finds a host's NVIDIA GPUs, selects and hands them out to build
// steps that request them, and describes them in a CDI spec that the runner
// passes to Buildah, so a step runs with its GPUs visible, rootless, and
// commits nothing GPU-specific.
//
// # Discovery
//
// A Discoverer (NVML for the host, FromNVML for go-nvml's mocks) initialises
// NVML, reads an Inventory and shuts NVML down: per GPU its index, minor
// number (/dev/nvidia<minor>, not always the index), UUID, name, PCI bus id,
// memory, compute capability and whether MIG is on; for the host the driver
// version and the CUDA version the driver supports. On a host without the
// driver (NVML's library missing, or the kernel module not loaded) Discover
// fails with an error wrapping ErrNoDriver; other NVML errors are wrapped
// with what was being read.
//
// # Requests
//
// ParseRequest accepts Modal's gpu= syntax, case-insensitive:
//
//	any           any one GPU ("any:2": any two)
//	all           every GPU of the host
//	H100          one GPU whose NVML name has the word H100
//	              ("NVIDIA H100 80GB HBM3"; "A10" does not match "A100")
//	H100:2        two of them
//	A100-80GB     an A100 with about 80 GiB (within 10%: NVML reports
//	              81559 MiB for an 80GB A100, 15360 MiB for a "16GB" T4)
//	H100!         Modal's "never upgrade"; recorded in Choice.Exact, and
//	              the same as H100 here, since nothing is ever upgraded
//	H100,A100     or several arguments: acceptable choices in order of
//	              preference
//
// Request.Select takes the first choice the host can satisfy and never
// substitutes another model, a smaller GPU or fewer GPUs: when no choice
// can be met, the error (wrapping ErrUnsatisfiable) lists what the host has,
// e.g. `GPU request "H100:2": host has 1 × NVIDIA A100-SXM4-40GB (40 GiB),
// 1 × Tesla T4 (15 GiB)`. An unknown model is such an error, not a syntax
// error. GPUs with MIG enabled are never selected.
//
// An Allocator hands each GPU to one step at a time (or shares them, with
// the Shared option). Acquire takes, among the request's choices, the first
// one whose GPUs are free now; when none is free it waits for releases (until
// its context ends) if the host could satisfy the request, and fails at once
// if it never could.
//
// # Cache keys
//
// A GPU step's cache key should include Request.String, the canonical form
// of the request ("A100-80GB:2,H100"), and not the host's GPU UUIDs or the
// driver version, so that the same definition hits the cache on another GPU
// host. Nothing GPU-specific lands in the image: the spec's mounts are
// outside the committed layer (Buildah removes the mount points it created)
// and its environment is the run's only.
//
// # The CDI spec
//
// GenerateSpec writes strata's own spec (kind nvidia.com/gpu), not NVIDIA's
// nvcdi output: one device per GPU named by its index ("nvidia.com/gpu=0")
// holding the node /dev/nvidia<minor>; for the spec as a whole the nodes
// /dev/nvidiactl (required), /dev/nvidia-uvm and /dev/nvidia-uvm-tools
// (where they exist; their major number is dynamic, so it is read with stat),
// all as character devices with explicit major and minor; the driver's
// libraries of its exact version (libcuda.so.<version> and the like, under
// the driver root in the usual lib directories) mounted read-only (ro,
// nosuid, nodev, bind) under their sonames in /usr/local/nvidia/lib64, the
// directory CUDA base images list in LD_LIBRARY_PATH; nvidia-smi at
// /usr/bin/nvidia-smi; and NVIDIA_VISIBLE_DEVICES=void, so that NVIDIA's
// legacy runtime hook, if configured, does not inject GPUs a second time.
//
// Device nodes keep their host paths: Buildah, rootless, turns a CDI device
// into a bind mount of the device's container path.
//
// The spec has no hooks: NVIDIA's update-ldcache hook writes
// /etc/ld.so.cache and /etc/ld.so.conf.d into the container's rootfs, which
// would land in the committed layer, and the create-symlinks hook likewise.
// The libraries are found through LD_LIBRARY_PATH instead. It has no
// additional GIDs: a rootless user namespace cannot map them.
//
// The spec sets no PATH and, by default, no LD_LIBRARY_PATH: a CDI env edit
// does not extend the image's variable (the CDI library appends a second
// "KEY=value" entry; runc keeps the last, so the image's value would be
// lost). nvidia-smi is therefore mounted in /usr/bin, on every image's PATH,
// and RunEnv gives the LD_LIBRARY_PATH to pass in the run's environment,
// extending the image's value.
//
// WriteSpec writes the spec into a private directory (0700; file 0600) and
// returns the names for Buildah's RunOptions.DeviceSpecs; the directory goes
// in RunOptions.CDIConfigDir. On hosts where an administrator already ran
// "nvidia-ctk cdi generate", HostSpecNames maps selected GPUs to the names of
// those specs instead, with warnings about their hooks and GIDs.
//
// Host access is abstracted for tests: SpecOptions.DriverRoot is where
// libraries and nvidia-smi are looked up, and a NodeStater (HostNodes, or
// FakeNodes in tests) reads device nodes.
package gpu
