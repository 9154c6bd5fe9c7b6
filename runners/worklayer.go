package runners

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/selinux/go-selinux"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/stringid"
)

// A step's working container is its layer. Buildah works on a container:
// a record in the store, directories of its own (its state file written
// at every mount and unmount), and a layer on the parent image's top
// layer, whose files the direct commit would then move into a new layer
// (directcommit.go) before the container and its emptied layer are
// removed. Every one of those records and files is an inode the store
// allocates, syncs and frees, and on a disk that has just freed many each
// new one is slow (about 0.4 ms here); the removal also holds the store's
// locks while the next step starts. So for a step committed the direct
// way, Buildah is given a store in which the working container is only a
// layer, made on the parent's top layer with the name a working container
// would have (the reaper removes it when this process dies first), and a
// directory of this process, reused from step to step, for Buildah's
// state. The commit makes that very layer the step's (keepLayer), and
// removing the container then changes nothing in the store. A step that
// changes only the config (ENV, CMD, LABEL...) gets a container with no
// layer at all: Buildah's commit of an image without a layer of its own
// only looks the container's layer up for its parent, the parent image's
// top layer. Anything else is the store's own.
//
// Such a layer's ID is not the one containers/image would give it (an ID
// derived from its parent's and its content's, which is not known when
// the layer is made). containers/image looks a layer up by that derived
// ID when it copies an image into a store (an image strata built,
// exported and imported again, or pushed and pulled back by podman), and
// the store finds layers by name as well as by ID: once its image took
// it, the layer is named with that ID (stagedLayer.chain), so the copy
// finds it, and the image, as its own.

// workStore is the store the Builders of such steps see.
type workStore struct {
	storage.Store

	mu     sync.Mutex
	expect map[string]bool           // container names to make as bare layers (true) or without a layer
	wcs    map[string]*workContainer // by container ID
	dirs   dirPool                   // container directories free for reuse
}

// workContainer is a working container that is a bare layer.
type workContainer struct {
	c     storage.Container
	dir   string // its directory (Buildah's buildah.json)
	taken bool   // its layer is a committed image's now
	// noLayer: c.LayerID names no layer of the store, only the parent
	// (top) that Buildah's commit looks up through it.
	noLayer bool
	top     string
}

func newWorkStore(st storage.Store) *workStore {
	return &workStore{Store: st, expect: map[string]bool{}, wcs: map[string]*workContainer{}}
}

// expectLayer makes the next container named name a bare layer, or
// with no layer when withLayer is false (where the store's settings
// allow either); done forgets the name.
func (s *workStore) expectLayer(name string, withLayer bool) (done func()) {
	s.mu.Lock()
	s.expect[name] = withLayer
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.expect, name)
		s.mu.Unlock()
	}
}

// bare says whether store options for a container allow it to be a bare
// layer: no ID mappings (the container's layer would get them), no
// SELinux labels (kept in the container record).
func (s *workStore) bare(o *storage.ContainerOptions) bool {
	if len(s.Store.UIDMap()) > 0 || len(s.Store.GIDMap()) > 0 || selinux.GetEnabled() {
		return false
	}
	if o == nil {
		return true
	}
	return !o.AutoUserNs && len(o.UIDMap) == 0 && len(o.GIDMap) == 0 && len(o.LabelOpts) == 0 &&
		o.MountOpts == nil && o.Flags == nil
}

func (s *workStore) CreateContainer(id string, names []string, image, layer, metadata string, o *storage.ContainerOptions) (*storage.Container, error) {
	s.mu.Lock()
	withLayer, want := false, false
	if id == "" && layer == "" && len(names) == 1 {
		withLayer, want = s.expect[names[0]]
	}
	s.mu.Unlock()
	if !want || !s.bare(o) {
		return s.Store.CreateContainer(id, names, image, layer, metadata, o)
	}
	top := ""
	if image != "" {
		img, err := s.Store.Image(image)
		if err != nil {
			return nil, err
		}
		top = img.TopLayer
	}
	dir, err := s.takeDir()
	if err != nil {
		return nil, err
	}
	wc := &workContainer{dir: dir, c: storage.Container{
		ID:       stringid.GenerateRandomID(),
		Names:    names,
		ImageID:  image,
		Metadata: metadata,
		Created:  time.Now().UTC(),
	}}
	if withLayer {
		l, err := s.Store.CreateLayer("", top, names, "", true, nil)
		if err != nil {
			s.giveDir(dir)
			return nil, err
		}
		// The container's ID is its layer's: the step's host name (the
		// ID's first 12 characters) is then how the reaper finds the
		// step's runtime container when this process died.
		wc.c.ID, wc.c.LayerID = l.ID, l.ID
	} else {
		wc.noLayer, wc.top = true, top
		wc.c.LayerID = noLayerPrefix + wc.c.ID
	}
	s.mu.Lock()
	s.wcs[wc.c.ID] = wc
	s.mu.Unlock()
	c := wc.c
	return &c, nil
}

// lookup returns the working container id when it is a bare layer.
func (s *workStore) lookup(id string) (*workContainer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wc, ok := s.wcs[id]
	return wc, ok
}

// layerOf returns the layer of the working container id when that
// container is a bare layer, else "".
func (s *workStore) layerOf(id string) string {
	if wc, ok := s.lookup(id); ok && !wc.noLayer {
		return wc.c.LayerID
	}
	return ""
}

// take records that the layer of the bare-layer container id now belongs
// to a committed image: removing the container leaves it.
func (s *workStore) take(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if wc, ok := s.wcs[id]; ok {
		wc.taken = true
	}
}

// noLayerPrefix starts the layer ID of a container without a layer: an
// ID no layer of the store has (theirs are hexadecimal).
const noLayerPrefix = "strata-no-layer-"

// Layer answers for the layer of a container without one: no files of
// its own, on the parent image's top layer.
func (s *workStore) Layer(id string) (*storage.Layer, error) {
	if strings.HasPrefix(id, noLayerPrefix) {
		if wc, ok := s.lookup(strings.TrimPrefix(id, noLayerPrefix)); ok && wc.noLayer {
			return &storage.Layer{ID: id, Parent: wc.top, Created: wc.c.Created}, nil
		}
	}
	return s.Store.Layer(id)
}

func (s *workStore) Container(id string) (*storage.Container, error) {
	if wc, ok := s.lookup(id); ok {
		c := wc.c
		return &c, nil
	}
	return s.Store.Container(id)
}

func (s *workStore) ContainerDirectory(id string) (string, error) {
	if wc, ok := s.lookup(id); ok {
		return wc.dir, nil
	}
	return s.Store.ContainerDirectory(id)
}

func (s *workStore) ContainerRunDirectory(id string) (string, error) {
	if wc, ok := s.lookup(id); ok {
		return wc.dir, nil
	}
	return s.Store.ContainerRunDirectory(id)
}

// errNoLayer: a container made without a layer was to be mounted (a step
// said it changes only the config, and then wanted files).
var errNoLayer = errors.New("strata: the working container of a config-only step has no files to mount")

func (s *workStore) Mount(id, mountLabel string) (string, error) {
	if wc, ok := s.lookup(id); ok {
		if wc.noLayer {
			return "", errNoLayer
		}
		return s.Store.Mount(wc.c.LayerID, mountLabel)
	}
	return s.Store.Mount(id, mountLabel)
}

func (s *workStore) Unmount(id string, force bool) (bool, error) {
	if wc, ok := s.lookup(id); ok {
		if wc.noLayer {
			return false, nil
		}
		return s.Store.Unmount(wc.c.LayerID, force)
	}
	return s.Store.Unmount(id, force)
}

func (s *workStore) Mounted(id string) (int, error) {
	if wc, ok := s.lookup(id); ok {
		if wc.noLayer {
			return 0, nil
		}
		return s.Store.Mounted(wc.c.LayerID)
	}
	return s.Store.Mounted(id)
}

// DeleteContainer removes a bare-layer container's layer unless a
// committed image took it; its directory is kept for the next one.
func (s *workStore) DeleteContainer(id string) error {
	wc, ok := s.lookup(id)
	if !ok {
		return s.Store.DeleteContainer(id)
	}
	if !wc.taken && !wc.noLayer {
		if err := s.Store.DeleteLayer(wc.c.LayerID); err != nil && !errors.Is(err, storage.ErrLayerUnknown) {
			return fmt.Errorf("removing the layer of working container %s: %w", id, err)
		}
	}
	s.mu.Lock()
	delete(s.wcs, id)
	s.mu.Unlock()
	s.giveDir(wc.dir)
	return nil
}

// takeDir returns a directory for a bare-layer container: one a removed
// container left, else a new one.
func (s *workStore) takeDir() (string, error) { return s.dirs.take() }

// giveDir keeps dir for the next container, emptied of all but Buildah's
// state file (which the next one writes again in place of its own).
func (s *workStore) giveDir(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return
	}
	for _, e := range ents {
		if e.Name() != "buildah.json" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				_ = os.RemoveAll(dir)
				return
			}
		}
	}
	s.dirs.give(dir)
}

// dropDirs removes the kept directories (Close).
func (s *workStore) dropDirs() { s.dirs.drop() }
