package runners

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	godigest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/buildah"
	"go.podman.io/buildah/define"
	"go.podman.io/buildah/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	drivers "go.podman.io/storage/drivers"
)

// A step's commit, written by strata. Buildah's commit reads the working
// container's layer as a tar stream to digest it, and containers/image
// then writes that stream into a new layer: every file of a step twice
// more (a staged layer, staged.go, spares the write but not the read, and
// makes a hard link per file). commitDirect instead:
//
//  1. reads the container layer's diff once, for its digest, size, owners
//     and tar-split (what containers/storage keeps of every layer);
//  2. asks Buildah for the step's image as if the step had added no layer
//     (CommitOptions.EmptyLayer), into a destination that only keeps the
//     manifest and config it is given (captureRef): Buildah's config,
//     history and annotations, to the byte, without any layer being read;
//  3. makes the container's own layer the step's (keepLayer: a working
//     container that is a bare layer, worklayer.go), or else moves the
//     container's upper directory, whole, into a new layer of the store
//     (moveLayer: the ID containers/image gives that content on that
//     parent), so no file is written or linked;
//  4. adds the layer to that manifest and config (its diff ID, its
//     descriptor, its history entry no longer empty) and creates the image
//     in the store as containers/image's storage destination would (ID =
//     config digest, the same big-data items).
//
// Where step 1, 2 or the start of 3 cannot be done (another storage
// driver, an unexpected history) nothing has changed yet, and the step is
// committed the Buildah way (errNoDirectCommit).

// errNoDirectCommit says the direct commit does not apply; nothing was changed.
var errNoDirectCommit = errors.New("the direct commit does not apply")

// commitDirect commits the step that ran in b (see above): with a layer
// of b's container's files when withLayer, else as a config-only image on
// the parent's layers. It returns the image's ID.
func (r *Runtime) commitDirect(ctx context.Context, b *buildah.Builder, st Step, withLayer bool, pt *phaseTimer) (string, error) {
	c, err := r.ws.Container(b.ContainerID)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoDirectCommit, err)
	}
	cl, err := r.ws.Layer(c.LayerID)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoDirectCommit, err)
	}
	// The working container is a layer of its own (worklayer.go): that
	// layer becomes the step's.
	ownLayer := r.ws.layerOf(b.ContainerID) != ""
	var upper string
	if withLayer {
		if upper, err = r.unmountForDiff(b, c.LayerID); err != nil {
			return "", fmt.Errorf("%w: %v", errNoDirectCommit, err)
		}
	}
	// Buildah's config and the layer's diff are independent (the commit
	// reads the builder and the parent image, the diff the layer's
	// files): they are made at the same time.
	type captured struct {
		man, cfg []byte
		err      error
	}
	capc := make(chan captured, 1)
	go func() {
		man, cfg, err := r.captureCommit(ctx, b, st)
		capc <- captured{man, cfg, err}
	}()
	var d *layerDiff
	if withLayer {
		d, err = r.diffOf(upper, c.LayerID)
		if err != nil {
			<-capc
			return "", fmt.Errorf("%w: %v", errNoDirectCommit, err)
		}
		defer d.close()
		pt.mark("diff")
	}
	cp := <-capc
	man, cfg := cp.man, cp.cfg
	if cp.err != nil {
		return "", fmt.Errorf("%w: %v", errNoDirectCommit, cp.err)
	}
	top := cl.Parent // the parent image's top layer ("" for scratch)
	if withLayer {
		if man, cfg, err = withLayerAdded(man, cfg, d.digest, d.size); err != nil {
			return "", fmt.Errorf("%w: %v", errNoDirectCommit, err)
		}
	}
	pt.mark("config")
	var staged *stagedLayer
	if withLayer {
		if ownLayer {
			staged, err = r.keepLayer(cl, d)
		} else {
			staged, err = r.moveLayer(cl.Parent, d)
		}
		if err != nil {
			return "", err // errNoDirectCommit when nothing moved
		}
		top = staged.id
		pt.mark("stage")
		Failpoint("staged")
	}
	id, err := r.createImage(man, cfg, top)
	if err != nil {
		r.dropStaged(staged, "")
		return "", err
	}
	if ownLayer && staged != nil && staged.id == cl.ID {
		r.ws.take(b.ContainerID)
	}
	r.dropStaged(staged, id)
	pt.mark("image")
	return id, nil
}

// keepLayer makes l, the layer a working container is (worklayer.go),
// whose files d describes, the step's layer: its directory of files is
// renamed aside and given back to it through the store's staged-layer
// call, which records the diff's digest, size, owners and tar-split; no
// file is moved or written. A layer of that content on that parent that
// is there already is used instead (l is then removed with the
// container). Where the store refuses, the files are put back and the
// error is errNoDirectCommit.
func (r *Runtime) keepLayer(l *storage.Layer, d *layerDiff) (*stagedLayer, error) {
	chain := stagedLayerID(l.Parent, d.digest)
	if ex, err := r.existingLayer(chain, d); ex != nil || err != nil {
		return ex, err
	}
	st, err := os.Stat(d.upper)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoDirectCommit, err)
	}
	rootMode := st.Mode()
	// Beside the layer's directory of files, in the layer's own: removed
	// with it. The driver finds that directory by its name, so an empty
	// one stands there until the files come back.
	aside := d.upper + ".strata-commit"
	if err := os.Rename(d.upper, aside); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoDirectCommit, err)
	}
	if err := os.Mkdir(d.upper, rootMode.Perm()); err != nil {
		if os.Rename(aside, d.upper) == nil {
			return nil, fmt.Errorf("%w: %v", errNoDirectCommit, err)
		}
		return nil, fmt.Errorf("making the step's layer: %w", err)
	}
	if err := r.applyStaged(l.ID, l.Parent, aside, rootMode, d); err != nil {
		if _, serr := os.Stat(aside); serr == nil {
			_ = os.Remove(d.upper) // an empty directory, if anything
			if os.Rename(aside, d.upper) == nil {
				return nil, fmt.Errorf("%w: %v", errNoDirectCommit, err)
			}
		}
		return nil, fmt.Errorf("making the step's layer: %w", err)
	}
	name := ""
	if len(l.Names) > 0 {
		name = l.Names[0]
	}
	return &stagedLayer{id: l.ID, created: true, name: name, chain: chain}, nil
}

// layerDiff is what containers/storage records of a layer's content,
// read from a container's layer.
type layerDiff struct {
	digest     godigest.Digest
	size       int64
	uids, gids []uint32
	tarSplit   *os.File // open until the store has read it (nil once it has it)
	upper      string   // the container layer's directory of files
}

// close closes the tar-split file unless the store took it.
func (d *layerDiff) close() {
	if d.tarSplit != nil {
		d.tarSplit.Close()
	}
}

// unmountForDiff unmounts b's container (its upper directory is then
// the container's alone) and returns the directory of its layer's files.
func (r *Runtime) unmountForDiff(b *buildah.Builder, layer string) (string, error) {
	upper, err := r.store.DifferTarget(layer)
	if err != nil {
		return "", err // a driver without staged layers (vfs)
	}
	if b.MountPoint != "" {
		if err := b.Unmount(); err != nil {
			return "", err
		}
	}
	if l, err := r.store.Layer(layer); err != nil || l.MountCount > 0 {
		return "", fmt.Errorf("the working container is still mounted (%v)", err)
	}
	return upper, nil
}

// diffOf reads the diff of the (unmounted) container layer layer, whose
// files are in upper.
func (r *Runtime) diffOf(upper, layer string) (*layerDiff, error) {
	ts, err := tarSplitFile(r.store.RunRoot())
	if err != nil {
		return nil, err
	}
	d := &layerDiff{tarSplit: ts, upper: upper}
	if d.digest, d.size, d.uids, d.gids, err = r.readDiff(layer, ts); err != nil {
		d.close()
		return nil, err
	}
	if _, err := ts.Seek(0, io.SeekStart); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// captureCommit has Buildah commit b as if the step added no layer, into
// a destination that keeps the manifest and config, and returns them.
func (r *Runtime) captureCommit(ctx context.Context, b *buildah.Builder, st Step) ([]byte, []byte, error) {
	ref := &captureRef{}
	sc := r.SystemContext()
	// The destination answers for every blob itself: the commit has
	// nothing to learn from containers/image's blob-info cache, whose
	// SQLite file it would otherwise open and write in a transaction at
	// every step (about 3 ms here). Where the cache directory cannot be
	// made, containers/image keeps the cache in memory.
	sc.BlobInfoCacheDir = os.DevNull
	_, _, _, err := b.Commit(ctx, ref, buildah.CommitOptions{
		PreferredManifestType: manifestType(st.Format),
		SystemContext:         sc,
		SignaturePolicyPath:   r.policyPath,
		EmptyLayer:            true,
	})
	if err != nil {
		return nil, nil, err
	}
	man, cfg := ref.dest.result()
	if man == nil || cfg == nil {
		return nil, nil, errors.New("the commit wrote no manifest or config")
	}
	return man, cfg, nil
}

// withLayerAdded returns the manifest and config of an image committed
// with no layer for its step (Buildah's OCI or Docker schema 2 format,
// decoded into the types Buildah encoded them from, so nothing else
// changes) with the uncompressed layer of digest diffID and size size
// added on top: in the manifest's layers, in the config's diff IDs, and
// as the step's history entry (the last one, empty until now).
func withLayerAdded(man, cfg []byte, diffID godigest.Digest, size int64) ([]byte, []byte, error) {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(man, &probe); err != nil {
		return nil, nil, err
	}
	switch probe.MediaType {
	case v1.MediaTypeImageManifest:
		var m v1.Manifest
		var c v1.Image
		if err := json.Unmarshal(man, &m); err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, nil, err
		}
		if err := addLayer(c.History, func(h *v1.History) *bool { return &h.EmptyLayer }, &c.RootFS.DiffIDs, diffID); err != nil {
			return nil, nil, err
		}
		ncfg, err := json.Marshal(&c)
		if err != nil {
			return nil, nil, err
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: diffID, Size: size})
		m.Config.Digest, m.Config.Size = godigest.Canonical.FromBytes(ncfg), int64(len(ncfg))
		nman, err := json.Marshal(&m)
		return nman, ncfg, err
	case define.Dockerv2ImageManifest:
		var m docker.V2S2Manifest
		var c docker.V2Image
		if err := json.Unmarshal(man, &m); err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, nil, err
		}
		if c.RootFS == nil {
			c.RootFS = &docker.V2S2RootFS{Type: docker.TypeLayers}
		}
		if err := addLayer(c.History, func(h *docker.V2S2History) *bool { return &h.EmptyLayer }, &c.RootFS.DiffIDs, diffID); err != nil {
			return nil, nil, err
		}
		ncfg, err := json.Marshal(&c)
		if err != nil {
			return nil, nil, err
		}
		m.Layers = append(m.Layers, docker.V2S2Descriptor{MediaType: docker.V2S2MediaTypeUncompressedLayer, Digest: diffID, Size: size})
		m.Config.Digest, m.Config.Size = godigest.Canonical.FromBytes(ncfg), int64(len(ncfg))
		nman, err := json.Marshal(&m)
		return nman, ncfg, err
	}
	return nil, nil, fmt.Errorf("manifest type %q", probe.MediaType)
}

// addLayer adds the layer diffID to an image's diff IDs and to its
// history (of either format; emptyLayer gives an entry's empty-layer
// flag): the last entry, the step's, empty until now, gets the layer. An
// image with a history must then list one non-empty entry per layer.
func addLayer[H any](history []H, emptyLayer func(*H) *bool, diffIDs *[]godigest.Digest, diffID godigest.Digest) error {
	if n := len(history); n > 0 {
		last := emptyLayer(&history[n-1])
		if !*last {
			return errors.New("the step's history entry is not the last one")
		}
		*last = false
	}
	*diffIDs = append(*diffIDs, diffID)
	if len(history) == 0 {
		return nil
	}
	nonEmpty := 0
	for i := range history {
		if !*emptyLayer(&history[i]) {
			nonEmpty++
		}
	}
	if nonEmpty != len(*diffIDs) {
		return fmt.Errorf("the history lists %d layers, the image has %d", nonEmpty, len(*diffIDs))
	}
	return nil
}

// moveLayer makes the layer d describes, on the layer parent, of the
// container layer's upper directory, moved whole (its files are not
// written again): an empty layer is created, and containers/storage's
// staged-layer call for an existing layer renames the upper directory
// onto the layer's own and records the diff's digest, size, owners and
// tar-split. No staging directory of the driver is involved (another
// process's Shutdown sweeps those, and could sweep the files away with
// it). A layer of that content on that parent that is there already is
// used as it is. While the files are still in the container the error is
// errNoDirectCommit (the plain commit can take over).
func (r *Runtime) moveLayer(parent string, d *layerDiff) (*stagedLayer, error) {
	id := stagedLayerID(parent, d.digest)
	if ex, err := r.existingLayer(id, d); ex != nil || err != nil {
		return ex, err
	}
	st, err := os.Stat(d.upper)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoDirectCommit, err)
	}
	rootMode := st.Mode()
	// Named as a working container is, so that the reaper removes it
	// when this process dies before the image takes it.
	name := containerName()
	if _, err := r.store.CreateLayer(id, parent, []string{name}, "", false, nil); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoDirectCommit, err)
	}
	err = r.applyStaged(id, parent, d.upper, rootMode, d)
	_, statErr := os.Stat(d.upper)
	moved := os.IsNotExist(statErr)
	if moved {
		// The container keeps an empty directory until it is deleted.
		_ = os.Mkdir(d.upper, rootMode.Perm())
	}
	if err != nil {
		_ = r.store.DeleteLayer(id)
		if !moved {
			return nil, fmt.Errorf("%w: %v", errNoDirectCommit, err)
		}
		return nil, fmt.Errorf("making the step's layer: %w", err)
	}
	return &stagedLayer{id: id, created: true, name: name}, nil
}

// existingLayer returns the layer chain (a layer's ID as containers/image
// derives it, or the name it is known by) when it is there already with
// d's content, to be used as it is; when it is there but not complete
// (another process is making it), the error is errNoDirectCommit (leave
// it to Buildah's commit); when it is not there, nil.
func (r *Runtime) existingLayer(chain string, d *layerDiff) (*stagedLayer, error) {
	l, err := r.store.Layer(chain)
	if err != nil {
		return nil, nil
	}
	if l.UncompressedDigest != d.digest {
		return nil, fmt.Errorf("%w: layer %s is not complete yet", errNoDirectCommit, chain)
	}
	return &stagedLayer{id: l.ID}, nil
}

// applyStaged gives the layer id on parent the directory of files dir
// (renamed to the layer's own) with the digest, size, owners and
// tar-split of d, through the store's staged-layer call, which takes d's
// tar-split.
func (r *Runtime) applyStaged(id, parent, dir string, rootMode os.FileMode, d *layerDiff) error {
	out := &drivers.DriverWithDifferOutput{
		Target:             dir,
		UncompressedDigest: d.digest,
		Size:               d.size,
		UIDs:               d.uids,
		GIDs:               d.gids,
		TarSplit:           d.tarSplit,
		RootDirMode:        &rootMode,
	}
	d.tarSplit = nil // ApplyStagedLayer closes it
	_, err := r.store.ApplyStagedLayer(storage.ApplyStagedLayerOptions{
		ID:          id,
		ParentLayer: parent,
		DiffOutput:  out,
		DiffOptions: &drivers.ApplyDiffWithDifferOpts{},
	})
	return err
}

// createImage creates the image of manifest man and config cfg on the
// layer top, as containers/image's storage destination does: its ID is
// the config's digest, and it keeps the config, the manifest by digest
// and as "manifest". An image of that ID already there on that layer is
// the same image.
func (r *Runtime) createImage(man, cfg []byte, top string) (string, error) {
	cfgDigest := godigest.Canonical.FromBytes(cfg)
	manDigest := godigest.Canonical.FromBytes(man)
	opts := &storage.ImageOptions{
		Metadata: "{}",
		BigData: []storage.ImageBigDataOption{
			{Key: cfgDigest.String(), Data: cfg, Digest: cfgDigest},
			{Key: "manifest-" + manDigest.String(), Data: man, Digest: manDigest},
			{Key: storage.ImageDigestBigDataKey, Data: man, Digest: manDigest},
		},
	}
	var created struct {
		Created time.Time `json:"created"`
	}
	if json.Unmarshal(cfg, &created) == nil {
		opts.CreationDate = created.Created
	}
	id := cfgDigest.Encoded()
	img, err := r.store.CreateImage(id, nil, top, "", opts)
	if err == nil {
		return img.ID, nil
	}
	if !errors.Is(err, storage.ErrDuplicateID) {
		return "", fmt.Errorf("creating image %s: %w", id, err)
	}
	img, err = r.store.Image(id)
	if err != nil {
		return "", fmt.Errorf("reading image %s: %w", id, err)
	}
	if img.TopLayer != top {
		return "", fmt.Errorf("image %s exists on another top layer: %w", id, storage.ErrDuplicateID)
	}
	return img.ID, nil
}

// captureTransport, captureRef and captureDest make a destination for
// Buildah's commit that keeps the manifest and config it is given and
// takes every layer as present (nothing of them is read).
type captureTransport struct{}

func (captureTransport) Name() string { return "strata-commit" }
func (captureTransport) ParseReference(string) (types.ImageReference, error) {
	return nil, errors.New("strata-commit: references are made by strata only")
}
func (captureTransport) ValidatePolicyConfigurationScope(string) error { return nil }

type captureRef struct{ dest *captureDest }

var errCaptureOnly = errors.New("strata-commit: a destination only")

func (r *captureRef) Transport() types.ImageTransport         { return captureTransport{} }
func (r *captureRef) StringWithinTransport() string           { return "step" }
func (r *captureRef) DockerReference() reference.Named        { return nil }
func (r *captureRef) PolicyConfigurationIdentity() string     { return "" }
func (r *captureRef) PolicyConfigurationNamespaces() []string { return nil }
func (r *captureRef) NewImage(context.Context, *types.SystemContext) (types.ImageCloser, error) {
	return nil, errCaptureOnly
}
func (r *captureRef) NewImageSource(context.Context, *types.SystemContext) (types.ImageSource, error) {
	return nil, errCaptureOnly
}
func (r *captureRef) NewImageDestination(context.Context, *types.SystemContext) (types.ImageDestination, error) {
	r.dest = &captureDest{ref: r}
	return r.dest, nil
}
func (r *captureRef) DeleteImage(context.Context, *types.SystemContext) error { return errCaptureOnly }

type captureDest struct {
	ref              *captureRef
	mu               sync.Mutex
	manifest, config []byte
}

func (d *captureDest) result() ([]byte, []byte) {
	if d == nil {
		return nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.manifest, d.config
}

func (d *captureDest) Reference() types.ImageReference { return d.ref }
func (d *captureDest) Close() error                    { return nil }
func (d *captureDest) SupportedManifestMIMETypes() []string {
	return nil // whatever Buildah writes
}
func (d *captureDest) SupportsSignatures(context.Context) error {
	return errors.New("strata-commit: no signatures")
}
func (d *captureDest) DesiredLayerCompression() types.LayerCompression { return types.PreserveOriginal }
func (d *captureDest) AcceptsForeignLayerURLs() bool                   { return false }
func (d *captureDest) MustMatchRuntimeOS() bool                        { return false }
func (d *captureDest) IgnoresEmbeddedDockerReference() bool            { return true }
func (d *captureDest) HasThreadSafePutBlob() bool                      { return false }

func (d *captureDest) PutBlob(_ context.Context, stream io.Reader, info types.BlobInfo, _ types.BlobInfoCache, isConfig bool) (types.BlobInfo, error) {
	if !isConfig {
		// Every layer is taken as present (TryReusingBlob): one that
		// comes here is a layer the commit would have written.
		return types.BlobInfo{}, errors.New("strata-commit: a layer blob was to be written")
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, stream); err != nil {
		return types.BlobInfo{}, err
	}
	d.mu.Lock()
	d.config = buf.Bytes()
	d.mu.Unlock()
	return types.BlobInfo{Digest: godigest.Canonical.FromBytes(buf.Bytes()), Size: int64(buf.Len())}, nil
}

func (d *captureDest) TryReusingBlob(_ context.Context, info types.BlobInfo, _ types.BlobInfoCache, _ bool) (bool, types.BlobInfo, error) {
	return true, types.BlobInfo{Digest: info.Digest, Size: info.Size}, nil
}

func (d *captureDest) PutManifest(_ context.Context, m []byte, instance *godigest.Digest) error {
	if instance != nil {
		return errors.New("strata-commit: a manifest list was to be written")
	}
	d.mu.Lock()
	d.manifest = bytes.Clone(m)
	d.mu.Unlock()
	return nil
}

func (d *captureDest) PutSignatures(_ context.Context, sigs [][]byte, _ *godigest.Digest) error {
	if len(sigs) > 0 {
		return errors.New("strata-commit: no signatures")
	}
	return nil
}

func (d *captureDest) Commit(context.Context, types.UnparsedImage) error { return nil }
