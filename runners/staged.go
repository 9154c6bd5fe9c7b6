package runners

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	godigest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	tsstorage "github.com/vbatts/tar-split/tar/storage"
	"go.podman.io/buildah"
	"go.podman.io/storage"
	drivers "go.podman.io/storage/drivers"
	"go.podman.io/storage/pkg/archive"
	"golang.org/x/sys/unix"
)

// A COPY/ADD step's files are written once. Buildah's commit would write
// the working container's files a second time, into the new layer (and
// deleting the container would then free every inode, which slows the next
// file creations on ext4). Instead, before the commit, stageLayer makes the
// layer itself: it reads the container layer's diff as the commit will
// (its digest, size, owners and tar-split), and builds the layer's
// directory out of hard links to the container's files through
// containers/storage's staged layers (what its partial pulls use). The
// layer gets the ID containers/image gives a layer of that content on that
// parent, so the commit that follows finds it and writes nothing. Where
// anything differs (another storage driver, a diff the commit alters) the
// commit writes the layer as before and the staged one is removed.

// stagedLayer is a layer stageLayer made for the commit of one container.
type stagedLayer struct {
	id      string
	created bool   // false: the layer was there already (another build)
	name    string // the layer's name until the commit took it (reap)
	// chain, when set, is the ID containers/image would give the layer
	// (stagedLayerID), which is not its ID: it becomes its name once the
	// image took it (dropStaged).
	chain string
}

// stageLayer stages the layer of b's container for the commit (see
// above). A nil result with a nil error means the shortcut does not apply.
func (r *Runtime) stageLayer(b *buildah.Builder) (*stagedLayer, error) {
	c, err := r.ws.Container(b.ContainerID)
	if err != nil {
		return nil, err
	}
	cl, err := r.store.Layer(c.LayerID)
	if err != nil {
		return nil, err
	}
	upper, err := r.store.DifferTarget(c.LayerID)
	if err != nil {
		return nil, nil // a driver without staged layers (vfs)
	}
	ts, err := tarSplitFile(r.store.RunRoot())
	if err != nil {
		return nil, err
	}
	tsDone := false
	defer func() {
		if !tsDone {
			ts.Close() // else the store closes it once it has read it
		}
	}()
	diffID, size, uids, gids, err := r.readDiff(c.LayerID, ts)
	if err != nil {
		return nil, err
	}
	id := stagedLayerID(cl.Parent, diffID)
	if _, err := r.store.Layer(id); err == nil {
		return &stagedLayer{id: id}, nil
	}
	if _, err := ts.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	st, err := os.Stat(upper)
	if err != nil {
		return nil, err
	}
	rootMode := st.Mode()
	out, err := r.store.PrepareStagedLayer(nil, &linkDiffer{src: upper})
	if err != nil {
		if out != nil && out.Target != "" {
			_ = r.store.CleanupStagedLayer(out)
		}
		if errors.Is(err, storage.ErrNotSupported) || errors.Is(err, drivers.ErrNotSupported) {
			return nil, nil
		}
		return nil, err
	}
	out.UncompressedDigest = diffID
	out.Size = size
	out.UIDs, out.GIDs = uids, gids
	out.TarSplit = ts
	out.RootDirMode = &rootMode
	tsDone = true // ApplyStagedLayer and CleanupStagedLayer close it
	// Named as a working container is, so that the reaper removes it
	// when this process dies before the commit takes it.
	name := containerName()
	if _, err := r.store.ApplyStagedLayer(storage.ApplyStagedLayerOptions{
		ID:          id,
		Names:       []string{name},
		ParentLayer: cl.Parent,
		DiffOutput:  out,
		DiffOptions: &drivers.ApplyDiffWithDifferOpts{},
	}); err != nil {
		_ = r.store.CleanupStagedLayer(out)
		return nil, err
	}
	return &stagedLayer{id: id, created: true, name: name}, nil
}

// stagedLayerID is the ID containers/image's storage destination gives the
// layer with uncompressed digest diffID on the layer parent (its layerID):
// with that ID the commit reuses the staged layer.
func stagedLayerID(parent string, diffID godigest.Digest) string {
	if parent == "" {
		return diffID.Encoded()
	}
	return godigest.Canonical.FromString(parent + "+" + diffID.Encoded()).Encoded()
}

// readDiff reads the diff of layer as Buildah's commit does (uncompressed,
// from its parent) and returns its digest and size and the owners it
// names, writing its tar-split to ts.
func (r *Runtime) readDiff(layer string, ts io.Writer) (godigest.Digest, int64, []uint32, []uint32, error) {
	none := archive.Uncompressed
	rc, err := r.store.Diff("", layer, &storage.DiffOptions{Compression: &none})
	if err != nil {
		return "", 0, nil, nil, err
	}
	defer rc.Close()
	its, err := asm.NewInputTarStream(rc, tsstorage.NewJSONPacker(ts), tsstorage.NewDiscardFilePutter())
	if err != nil {
		return "", 0, nil, nil, err
	}
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(its, h)}
	tr := tar.NewReader(cr)
	uids, gids := map[uint32]bool{}, map[uint32]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", 0, nil, nil, fmt.Errorf("reading the layer diff: %w", err)
		}
		uids[uint32(hdr.Uid)], gids[uint32(hdr.Gid)] = true, true
	}
	// The end-of-archive blocks and any padding after them.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return "", 0, nil, nil, err
	}
	sorted := func(m map[uint32]bool) []uint32 {
		var out []uint32
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	return godigest.NewDigest(godigest.SHA256, h), cr.n, sorted(uids), sorted(gids), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// linkDiffer fills a staged layer's directory with hard links to the files
// of src (a working container's upper directory, which is in the layer
// format already: whiteouts and opaque directories as the driver writes
// them): directories are made anew with the same owner, mode, extended
// attributes and times; everything else is linked, so no file is written.
type linkDiffer struct{ src string }

func (d *linkDiffer) ApplyDiff(dest string, _ *archive.TarOptions, opts *drivers.DifferOptions) (drivers.DriverWithDifferOutput, error) {
	if opts != nil && opts.Format != drivers.DifferOutputFormatDir {
		return drivers.DriverWithDifferOutput{}, drivers.ErrNotSupported
	}
	if err := linkTree(d.src, dest); err != nil {
		return drivers.DriverWithDifferOutput{}, err
	}
	return drivers.DriverWithDifferOutput{}, nil
}

func (d *linkDiffer) Close() error { return nil }

// linkTree makes dst (an existing directory) a copy of the directory src
// whose non-directories are hard links to src's.
func linkTree(src, dst string) error {
	if err := copyDirMeta(src, dst, false); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		s, t := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if e.IsDir() {
			if err := os.Mkdir(t, 0o700); err != nil {
				return err
			}
			if err := linkTree(s, t); err != nil {
				return err
			}
			continue
		}
		if err := os.Link(s, t); err != nil {
			return err
		}
	}
	// The times last: linking into the directory moved them.
	return copyDirMeta(src, dst, true)
}

// copyDirMeta gives the directory dst src's owner, mode and extended
// attributes, or (times) its access and modification times.
func copyDirMeta(src, dst string, times bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	if times {
		ts := []unix.Timespec{st.Atim, st.Mtim}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "utimes", Path: dst, Err: err}
		}
		return nil
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: dst, Err: err}
	}
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		return &os.PathError{Op: "chmod", Path: dst, Err: err}
	}
	return copyXattrs(src, dst)
}

// copyXattrs copies every extended attribute of src to dst (the opaque
// marker of a directory among them).
func copyXattrs(src, dst string) error {
	sz, err := unix.Llistxattr(src, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(src, buf); err != nil {
		return err
	}
	for _, name := range splitNul(buf[:sz]) {
		vsz, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return err
		}
		val := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(src, name, val); err != nil {
			return err
		}
		if err := unix.Lsetxattr(dst, name, val[:vsz], 0); err != nil {
			return fmt.Errorf("setting %s on %s: %w", name, dst, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := slices.Index(b, 0)
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

// dropStaged removes a layer stageLayer created that the commit did not
// use (its image's top layer is another), and the name of one it did.
func (r *Runtime) dropStaged(sl *stagedLayer, imageID string) {
	if sl == nil || !sl.created {
		return
	}
	if imageID != "" {
		if img, err := r.store.Image(imageID); err == nil && img.TopLayer == sl.id {
			if sl.chain != "" {
				_ = r.store.SetNames(sl.id, []string{sl.chain})
			} else {
				_ = r.store.RemoveNames(sl.id, []string{sl.name})
			}
			return
		}
	}
	_ = r.store.DeleteLayer(sl.id)
}

// reapStaged removes the layers that strata processes which died staged
// (stageLayer, moveLayer) before their commit took them, or worked in
// (worklayer.go); a layer an image or another layer uses by now only
// loses its name.
func (r *Runtime) reapStaged() []string {
	ls, err := r.store.Layers()
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range ls {
		for _, n := range l.Names {
			pid, ok := ownerPID(n)
			if !ok || !r.deadOwner(pid) {
				continue
			}
			// A working container that is a bare layer (worklayer.go):
			// its step may still run under the OCI runtime, with the
			// layer's ID as its host name; stop it before its rootfs
			// goes away.
			if len(l.ID) >= 12 {
				if bundle := r.killRunning(l.ID[:12], true); bundle != "" {
					_ = removeRunDir(bundle)
				}
			}
			if err := r.store.DeleteLayer(l.ID); err == nil {
				out = append(out, n)
			} else if chain := stagedLayerID(l.Parent, l.UncompressedDigest); l.UncompressedDigest != "" && chain != l.ID {
				// An image took it (a working layer, worklayer.go): the
				// name containers/image looks it up by replaces the
				// owner's.
				_ = r.store.SetNames(l.ID, []string{chain})
			} else {
				_ = r.store.RemoveNames(l.ID, []string{n})
			}
			break
		}
	}
	return out
}

// tarSplitFile returns a file, with no name, for a layer's tar-split
// until the store takes it: in memory (memfd), so that no file is made on
// the disk (where a new file is an inode allocation, slow right after
// deletions), and nothing can be left behind; where memfd is missing, a
// file in dir, unlinked at once.
func tarSplitFile(dir string) (*os.File, error) {
	if fd, err := unix.MemfdCreate("strata-tar-split", unix.MFD_CLOEXEC); err == nil {
		return os.NewFile(uintptr(fd), "strata-tar-split"), nil
	}
	f, err := os.CreateTemp(dir, "strata-tar-split-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
