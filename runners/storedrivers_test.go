package runners

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.podman.io/storage"
)

// TestStoreDrivers: the driver named in Config, else the one storage.conf
// names with its options, else the one the store already holds, else
// native overlay and then vfs.
func TestStoreDrivers(t *testing.T) {
	vfsStore, overlayStore, empty := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []string{filepath.Join(vfsStore, "vfs-layers"), filepath.Join(overlayStore, "overlay-layers"), filepath.Join(overlayStore, "vfs-layers")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fuse := []string{"overlay.mount_program=/usr/bin/fuse-overlayfs", "overlay.mountopt=nodev"}
	for _, c := range []struct {
		name   string
		driver string
		opts   storage.StoreOptions
		want   []storeDriver
	}{
		{"config names one", "vfs", storage.StoreOptions{GraphRoot: empty}, []storeDriver{{"vfs", nil}}},
		{"config and storage.conf agree", "overlay", storage.StoreOptions{GraphRoot: empty, GraphDriverName: "overlay", GraphDriverOptions: fuse}, []storeDriver{{"overlay", fuse}}},
		{"config overrides storage.conf", "vfs", storage.StoreOptions{GraphRoot: empty, GraphDriverName: "overlay", GraphDriverOptions: fuse}, []storeDriver{{"vfs", nil}}},
		{"storage.conf", "", storage.StoreOptions{GraphRoot: vfsStore, GraphDriverName: "overlay", GraphDriverOptions: fuse}, []storeDriver{{"overlay", fuse}}},
		{"a vfs store stays vfs", "", storage.StoreOptions{GraphRoot: vfsStore}, []storeDriver{{"vfs", nil}}},
		{"a store with overlay layers", "", storage.StoreOptions{GraphRoot: overlayStore}, []storeDriver{{"overlay", nil}, {"vfs", nil}}},
		{"nothing configured", "", storage.StoreOptions{GraphRoot: empty, GraphDriverOptions: fuse}, []storeDriver{{"overlay", []string{"overlay.mountopt=nodev"}}, {"vfs", nil}}},
	} {
		if got := storeDrivers(c.driver, c.opts); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
