package runners

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	securejoin "github.com/cyphar/filepath-securejoin"
	"go.podman.io/buildah"
	"go.podman.io/storage/pkg/fileutils"
	"golang.org/x/sys/unix"
)

// A COPY of local files is written by this process straight into the
// working container's root filesystem (copyDirect), several files at a
// time, instead of through Buildah's copier, which tars the sources in one
// chrooted process, pipes the stream through a digester, and untars it in
// another, one file at a time (4-6 s against 1.2 s for 20,000 small files
// here). The result is what Buildah's Add writes: the same destination
// rules (a directory's contents, a file renamed or put into a directory,
// relative to WORKDIR), owners (root, or --chown's), modes with setuid,
// setgid and sticky bits, times, symbolic links and hard links, and the
// same .dockerignore exclusions. What it does not handle it leaves to
// Buildah before writing anything: URLs, globs, archives to extract,
// --from, --chmod, --parents, a checksum, exclusion patterns with "!"
// exceptions, sources with extended attributes or of other types, a
// symbolic link as a source or in the way of a target, and a target whose
// type differs from its source's.
//
// BuildahCopyEnv=1 copies every source through Buildah's Add instead.
const BuildahCopyEnv = "STRATA_BUILDAH_COPY"

// copyItem is one entry to write: src's copy at dst (inside the mounted
// root filesystem).
type copyItem struct {
	src, dst string
	info     fs.FileInfo
	link     string // for a hard link: the dst of the entry it links to
	// inTheWay: the image has a file at dst (removed before the write).
	inTheWay bool
}

// copyDirect copies c into b's mounted root filesystem root. It returns
// false, and has written nothing, when c is not a copy it handles.
func (r *Runtime) copyDirect(b *buildah.Builder, root string, c Copy) (bool, error) {
	if r.buildahCopy || c.FromImage != "" || c.Extract || c.Checksum != "" || c.Parents || c.Chmod != "" {
		return false, nil
	}
	ctxDir := c.ContextDir
	var sources []string
	if ctxDir != "" {
		for _, s := range c.Sources {
			if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.ContainsAny(s, "*?[\\") {
				return false, nil
			}
			p := filepath.Join(ctxDir, filepath.FromSlash(s))
			if rel, err := filepath.Rel(ctxDir, p); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				return false, nil
			}
			sources = append(sources, p)
		}
	} else {
		ctxDir = c.Src
		if !isDir(c.Src) {
			ctxDir = filepath.Dir(c.Src)
		}
		sources = []string{c.Src}
	}
	if len(sources) == 0 {
		return false, nil
	}
	pm, err := fileutils.NewPatternMatcher(c.Excludes)
	if err != nil || pm.Exclusions() {
		return false, nil
	}
	infos := make([]fs.FileInfo, len(sources))
	for i, s := range sources {
		fi, err := os.Lstat(s)
		if err != nil || !(fi.IsDir() || fi.Mode().IsRegular()) {
			return false, nil
		}
		if rel, _ := filepath.Rel(ctxDir, s); rel != "." {
			if ex, err := pm.Matches(filepath.ToSlash(rel)); err != nil || ex { //nolint:staticcheck // Buildah's own test
				return false, nil
			}
		}
		infos[i] = fi
	}
	uid, gid := uint32(0), uint32(0)
	if c.Chown != "" {
		if uid, gid, err = copyOwner(b, c.Chown); err != nil {
			return false, nil // Buildah reports it
		}
	}

	// Where the sources go, as Buildah's Add decides.
	dest := c.Dest
	mustDir := strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.") || dest == "" || len(sources) > 1
	if dest == "" || !filepath.IsAbs(dest) {
		d := filepath.Join("/"+b.WorkDir(), dest)
		if mustDir {
			d += "/"
		}
		dest = d
	}
	mustDir = mustDir || filepath.Clean(dest) == filepath.Clean(b.WorkDir())
	canBeFile := len(sources) == 1 && infos[0].Mode().IsRegular()
	if len(sources) == 1 && infos[0].IsDir() {
		mustDir = true
	}
	clean := filepath.Clean("/" + dest)
	parent, err := securejoin.SecureJoin(root, filepath.Dir(clean))
	if err != nil {
		return false, nil
	}
	last := filepath.Join(parent, filepath.Base(clean))
	if clean == "/" {
		last = root
	}
	fi, err := os.Lstat(last)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// A link to a directory is copied into, as Buildah resolves the
		// destination inside the root; any other link is Buildah's.
		if last, err = securejoin.SecureJoin(root, clean); err != nil {
			return false, nil
		}
		if fi, err = os.Lstat(last); err != nil || !fi.IsDir() {
			return false, nil
		}
	}
	extractDir, rename := last, ""
	switch {
	case err != nil && !os.IsNotExist(err):
		return false, nil
	case err != nil: // missing
		if !mustDir && canBeFile {
			extractDir, rename = parent, filepath.Base(clean)
		}
	case fi.Mode().IsRegular():
		if mustDir {
			return false, nil // Buildah's error: not a directory
		}
		extractDir, rename = parent, filepath.Base(clean)
	case !fi.IsDir():
		return false, nil
	}
	_, statErr := os.Lstat(extractDir)
	fresh := os.IsNotExist(statErr) // nothing under it can be in the way

	// The plan: every entry, parents before children.
	var items []copyItem
	links := map[[2]uint64]string{}
	planned := map[string]bool{} // non-directories, by destination
	add := func(src, dst string, fi fs.FileInfo) error {
		if !fi.IsDir() {
			if planned[dst] {
				// Two sources write one file: the last one wins, in order
				// (Buildah's copier), not as the parallel writes finish.
				return errNotDirect
			}
			planned[dst] = true
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
			return errNotDirect
		}
		if n, err := unix.Llistxattr(src, nil); err != nil && err != unix.ENOTSUP || n > 0 {
			return errNotDirect
		}
		it := copyItem{src: src, dst: dst, info: fi}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := links[k]; ok {
				it.link = first
			} else {
				links[k] = dst
			}
		}
		if !fresh {
			if have, err := os.Lstat(dst); err == nil {
				if have.Mode()&fs.ModeSymlink != 0 || have.IsDir() != fi.IsDir() || (!have.IsDir() && !have.Mode().IsRegular()) {
					return errNotDirect
				}
				it.inTheWay = !have.IsDir()
			} else if !os.IsNotExist(err) {
				return errNotDirect
			}
		}
		items = append(items, it)
		return nil
	}
	for i, s := range sources {
		// Hard links are kept within one source, as Buildah's copier
		// keeps them within one of its streams.
		clear(links)
		if infos[i].Mode().IsRegular() {
			name := rename
			if name == "" {
				name = filepath.Base(s)
			}
			if err := add(s, filepath.Join(extractDir, name), infos[i]); err != nil {
				return false, nil
			}
			continue
		}
		err := filepath.WalkDir(s, func(p string, d fs.DirEntry, werr error) error {
			if werr != nil {
				return werr
			}
			if p == s {
				return nil // the directory itself: its contents go into extractDir
			}
			rel, err := filepath.Rel(ctxDir, p)
			if err != nil {
				return err
			}
			ex, err := pm.Matches(filepath.ToSlash(rel)) //nolint:staticcheck // Buildah's own test
			if err != nil {
				return err
			}
			if ex {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sub, err := filepath.Rel(s, p)
			if err != nil {
				return err
			}
			return add(p, filepath.Join(extractDir, sub), fi)
		})
		if err != nil {
			return false, nil
		}
	}

	// Written from here on: errors are errors.
	rel, err := filepath.Rel(root, extractDir)
	if err != nil {
		return true, err
	}
	if err := mkdirOwned(root, rel, int(uid), int(gid)); err != nil {
		return true, fmt.Errorf("creating %s: %w", c.Dest, err)
	}
	var files, hardlinks, dirs []copyItem
	for _, it := range items {
		switch {
		case it.info.IsDir():
			if err := os.Mkdir(it.dst, 0o700); err != nil && !os.IsExist(err) {
				return true, err
			}
			if err := setMeta(it.dst, it.info, uid, gid, false); err != nil {
				return true, err
			}
			dirs = append(dirs, it)
		case it.link != "":
			hardlinks = append(hardlinks, it)
		default:
			files = append(files, it)
		}
	}
	if err := writeParallel(files, uid, gid); err != nil {
		return true, err
	}
	for _, it := range hardlinks {
		if err := removeIfThere(it); err != nil {
			return true, err
		}
		if err := os.Link(it.link, it.dst); err != nil {
			return true, err
		}
	}
	// Directory times last (deepest first): writing into them moved them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setTimes(dirs[i].dst, dirs[i].info); err != nil {
			return true, err
		}
	}
	return true, nil
}

var errNotDirect = fmt.Errorf("not a copy strata writes itself")

// writeParallel writes the regular files and symbolic links of items, a
// few at a time.
func writeParallel(items []copyItem, uid, gid uint32) error {
	workers := min(runtime.GOMAXPROCS(0)*2, 8, len(items))
	if workers < 1 {
		return nil
	}
	next := make(chan copyItem)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for it := range next {
				if first == nil {
					first = writeOne(it, uid, gid)
				}
			}
			errs <- first
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func writeOne(it copyItem, uid, gid uint32) error {
	if err := removeIfThere(it); err != nil {
		return err
	}
	if it.info.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(it.src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, it.dst); err != nil {
			return err
		}
		return setMeta(it.dst, it.info, uid, gid, true)
	}
	return copyRegular(it, uid, gid)
}

// copyRegular writes the regular file it.dst (new) with it.src's contents,
// owner uid:gid, mode and times. It works on file descriptors: each path
// lookup in the working container's overlay mount costs more than the
// write of a small file.
func copyRegular(it copyItem, uid, gid uint32) error {
	in, err := unix.Open(it.src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: it.src, Err: err}
	}
	defer unix.Close(in)
	out, err := unix.Open(it.dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "open", Path: it.dst, Err: err}
	}
	closed := false
	defer func() {
		if !closed {
			unix.Close(out)
		}
	}()
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, err := unix.Read(in, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("copying %s: %w", it.src, &os.PathError{Op: "read", Path: it.src, Err: err})
		}
		if n == 0 {
			break
		}
		for w := buf[:n]; len(w) > 0; {
			m, err := unix.Write(out, w)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("copying %s: %w", it.src, &os.PathError{Op: "write", Path: it.dst, Err: err})
			}
			w = w[m:]
		}
	}
	// Owner, then mode (a change of owner drops setuid and setgid), then
	// the times (the writes moved them).
	if err := unix.Fchown(out, int(uid), int(gid)); err != nil {
		return &os.PathError{Op: "chown", Path: it.dst, Err: err}
	}
	if err := unix.Fchmod(out, uint32(unixMode(it.info.Mode()))); err != nil {
		return &os.PathError{Op: "chmod", Path: it.dst, Err: err}
	}
	if st, ok := it.info.Sys().(*syscall.Stat_t); ok {
		ts := [2]unix.Timespec{{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec}, unix.NsecToTimespec(it.info.ModTime().UnixNano())}
		// utimensat with no path is futimens: the times of out itself.
		if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(out), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
			return &os.PathError{Op: "utimes", Path: it.dst, Err: e}
		}
	}
	closed = true
	if err := unix.Close(out); err != nil {
		return &os.PathError{Op: "close", Path: it.dst, Err: err}
	}
	return nil
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// unixMode is the permission bits of m with setuid, setgid and sticky in
// their Unix places.
func unixMode(m fs.FileMode) uint32 {
	out := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		out |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		out |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		out |= unix.S_ISVTX
	}
	return out
}

// removeIfThere removes the file the image has where it goes.
func removeIfThere(it copyItem) error {
	if !it.inTheWay {
		return nil
	}
	if err := os.Remove(it.dst); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// setMeta gives p (a copy of an entry with info fi) the owner uid:gid and
// fi's mode and, with times, its access and modification times.
func setMeta(p string, fi fs.FileInfo, uid, gid uint32, times bool) error {
	if err := os.Lchown(p, int(uid), int(gid)); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	if times {
		return setTimes(p, fi)
	}
	return nil
}

func setTimes(p string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	ts := []unix.Timespec{{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec}, unix.NsecToTimespec(fi.ModTime().UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}
