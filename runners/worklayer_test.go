package runners

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.podman.io/storage"
	"go.podman.io/storage/pkg/idtools"
)

// recordingStore is a storage.Store that knows one image and records the
// calls the work store makes on it; any other call panics (the embedded
// nil interface), which fails the test.
type recordingStore struct {
	storage.Store
	calls          []string
	layers         map[string]*storage.Layer
	uidMap         []idtools.IDMap
	deleteLayerErr error
}

func newRecordingStore() *recordingStore {
	return &recordingStore{layers: map[string]*storage.Layer{"top": {ID: "top"}}}
}

func (s *recordingStore) Image(id string) (*storage.Image, error) {
	s.calls = append(s.calls, "Image "+id)
	return &storage.Image{ID: id, TopLayer: "top"}, nil
}
func (s *recordingStore) UIDMap() []idtools.IDMap { return s.uidMap }
func (s *recordingStore) GIDMap() []idtools.IDMap { return nil }
func (s *recordingStore) CreateLayer(id, parent string, names []string, _ string, writeable bool, _ *storage.LayerOptions) (*storage.Layer, error) {
	s.calls = append(s.calls, "CreateLayer "+parent)
	l := &storage.Layer{ID: "layer" + string(rune('0'+len(s.layers))), Parent: parent, Names: names}
	s.layers[l.ID] = l
	return l, nil
}
func (s *recordingStore) CreateContainer(id string, names []string, image, layer, metadata string, _ *storage.ContainerOptions) (*storage.Container, error) {
	s.calls = append(s.calls, "CreateContainer "+image)
	return &storage.Container{ID: "real", Names: names, ImageID: image, LayerID: "reallayer"}, nil
}
func (s *recordingStore) Container(id string) (*storage.Container, error) {
	return nil, storage.ErrContainerUnknown
}
func (s *recordingStore) Layer(id string) (*storage.Layer, error) {
	if l, ok := s.layers[id]; ok {
		return l, nil
	}
	return nil, storage.ErrLayerUnknown
}
func (s *recordingStore) Mount(id, _ string) (string, error) {
	s.calls = append(s.calls, "Mount "+id)
	return "/mnt/" + id, nil
}
func (s *recordingStore) Unmount(id string, _ bool) (bool, error) {
	s.calls = append(s.calls, "Unmount "+id)
	return false, nil
}
func (s *recordingStore) DeleteLayer(id string) error {
	s.calls = append(s.calls, "DeleteLayer "+id)
	return s.deleteLayerErr
}

func (s *recordingStore) took(call string) bool { return slices.Contains(s.calls, call) }

// TestWorkStoreContainers: a container the work store expects is a bare
// layer on the image's top layer (or no layer at all for a config-only
// step), mounted and removed as that layer, with a directory of its own
// that the next one reuses; a container it does not expect, or one whose
// options it cannot honour without a record, is the store's own.
func TestWorkStoreContainers(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	st := newRecordingStore()
	ws := newWorkStore(st)
	defer ws.dropDirs()

	done := ws.expectLayer("strata-w1-a", true)
	c, err := ws.CreateContainer("", []string{"strata-w1-a"}, "img", "", "", &storage.ContainerOptions{})
	done()
	if err != nil {
		t.Fatal(err)
	}
	if st.took("CreateContainer img") || !st.took("CreateLayer top") {
		t.Fatalf("calls %q: want a layer on the image's top layer, no container", st.calls)
	}
	if c.ID != c.LayerID || ws.layerOf(c.ID) != c.LayerID {
		t.Errorf("container %+v: its ID should be its layer's", c)
	}
	if l, _ := st.Layer(c.LayerID); !slices.Equal(l.Names, []string{"strata-w1-a"}) {
		t.Errorf("layer names %q: want the container's name (the reaper's)", l.Names)
	}
	if got, err := ws.Container(c.ID); err != nil || got.LayerID != c.LayerID {
		t.Errorf("Container: %+v %v", got, err)
	}
	dir, err := ws.ContainerDirectory(c.ID)
	if err != nil || dir == "" {
		t.Fatalf("ContainerDirectory: %q %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "buildah.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if mp, err := ws.Mount(c.ID, ""); err != nil || mp != "/mnt/"+c.LayerID {
		t.Errorf("Mount: %q %v", mp, err)
	}
	if _, err := ws.Unmount(c.ID, false); err != nil || !st.took("Unmount "+c.LayerID) {
		t.Errorf("Unmount: %v, calls %q", err, st.calls)
	}

	// Removed before its image took it: the layer goes.
	if err := ws.DeleteContainer(c.ID); err != nil || !st.took("DeleteLayer "+c.LayerID) {
		t.Errorf("DeleteContainer: %v, calls %q", err, st.calls)
	}
	if _, err := ws.Container(c.ID); err == nil {
		t.Errorf("the removed container is still known")
	}

	// The next one reuses the directory, emptied of all but the state
	// file; taken by its image, its layer stays when it is removed.
	done = ws.expectLayer("strata-w1-b", true)
	c2, err := ws.CreateContainer("", []string{"strata-w1-b"}, "img", "", "", nil)
	done()
	if err != nil {
		t.Fatal(err)
	}
	if dir2, _ := ws.ContainerDirectory(c2.ID); dir2 != dir {
		t.Errorf("directory %q, want %q reused", dir2, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); !os.IsNotExist(err) {
		t.Errorf("the reused directory kept another container's file: %v", err)
	}
	ws.take(c2.ID)
	st.calls = nil
	if err := ws.DeleteContainer(c2.ID); err != nil || st.took("DeleteLayer "+c2.LayerID) {
		t.Errorf("DeleteContainer of a taken layer: %v, calls %q", err, st.calls)
	}

	// Config-only: no layer is made; Buildah's commit sees one on the
	// image's top layer, which cannot be mounted.
	st.calls = nil
	done = ws.expectLayer("strata-w1-c", false)
	c3, err := ws.CreateContainer("", []string{"strata-w1-c"}, "img", "", "", nil)
	done()
	if err != nil {
		t.Fatal(err)
	}
	if st.took("CreateLayer top") || st.took("CreateContainer img") {
		t.Errorf("calls %q: a config-only container makes nothing in the store", st.calls)
	}
	if l, err := ws.Layer(c3.LayerID); err != nil || l.Parent != "top" {
		t.Errorf("Layer of a config-only container: %+v %v", l, err)
	}
	if _, err := ws.Mount(c3.ID, ""); !errors.Is(err, errNoLayer) {
		t.Errorf("Mount of a config-only container: %v", err)
	}
	if err := ws.DeleteContainer(c3.ID); err != nil || len(st.calls) != 1 {
		t.Errorf("DeleteContainer: %v, calls %q", err, st.calls)
	}

	// Not expected, or with ID mappings: the store's own container.
	for _, tc := range []struct {
		name   string
		expect bool
		opts   *storage.ContainerOptions
		uidMap []idtools.IDMap
	}{
		{"not expected", false, nil, nil},
		{"mapped container", true, &storage.ContainerOptions{IDMappingOptions: storage.IDMappingOptions{UIDMap: []idtools.IDMap{{ContainerID: 0, HostID: 1, Size: 1}}}}, nil},
		{"mapped store", true, nil, []idtools.IDMap{{ContainerID: 0, HostID: 1, Size: 1}}},
		{"labels", true, &storage.ContainerOptions{LabelOpts: []string{"disable"}}, nil},
	} {
		st.calls, st.uidMap = nil, tc.uidMap
		done := func() {}
		if tc.expect {
			done = ws.expectLayer("strata-w1-d", true)
		}
		c, err := ws.CreateContainer("", []string{"strata-w1-d"}, "img", "", "", tc.opts)
		done()
		if err != nil || c.ID != "real" || !st.took("CreateContainer img") || st.took("CreateLayer top") {
			t.Errorf("%s: %+v %v, calls %q: want the store's container", tc.name, c, err, st.calls)
		}
	}
}
