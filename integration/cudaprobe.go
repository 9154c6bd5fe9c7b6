//go:build gpu_e2e

package integration

/*
#cgo LDFLAGS: -Wl,--no-as-needed -ldl -lm -lrt -lpthread
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*cuInit_t)(unsigned int);
typedef int (*cuDeviceGet_t)(int *, int);
typedef int (*cuDeviceGetName_t)(char *, int, int);

// probe loads libcuda from path, initialises the driver API and writes the
// name of device 0 into name; it returns 0 or a negative step number, or
// the CUDA error code.
static int probe(const char *path, char *name, int len) {
	void *h = dlopen(path, RTLD_NOW);
	if (!h) return -1;
	cuInit_t init = (cuInit_t)dlsym(h, "cuInit");
	cuDeviceGet_t get = (cuDeviceGet_t)dlsym(h, "cuDeviceGet");
	cuDeviceGetName_t getName = (cuDeviceGetName_t)dlsym(h, "cuDeviceGetName");
	if (!init || !get || !getName) return -2;
	int rc = init(0);
	if (rc) return rc;
	int dev;
	if ((rc = get(&dev, 0))) return rc;
	return getName(name, len, dev);
}
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// cudaDeviceName loads libcuda from path and returns the name of CUDA
// device 0, through the driver API.
func cudaDeviceName(path string) (string, error) {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	buf := make([]byte, 256)
	if rc := C.probe(p, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf))); rc != 0 {
		return "", fmt.Errorf("CUDA probe failed at %d", int(rc))
	}
	return strings.TrimRight(string(buf), "\x00"), nil
}
