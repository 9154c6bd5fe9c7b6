package runners

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"go.podman.io/buildah"
	"go.podman.io/buildah/pkg/chrootuser"
	"go.podman.io/storage/pkg/archive"
	"golang.org/x/sys/unix"
)

// mkdirs creates st.Mkdirs in the working container, resolving each path
// inside its root filesystem (a symlink cannot lead out of it). As Docker
// and BuildKit do for WORKDIR, the directories it creates belong to the
// image's current USER (resolved in the image's /etc/passwd and
// /etc/group); existing ones are left as they are.
func (r *Runtime) mkdirs(b *buildah.Builder, st Step) error {
	for _, d := range st.Mkdirs {
		mode := os.FileMode(0o755)
		if err := b.EnsureContainerPathAs(path.Clean("/"+d), b.User(), &mode); err != nil {
			return fmt.Errorf("%s: creating %s: %w", st.Name, d, err)
		}
	}
	return nil
}

// copySources runs one Dockerfile-style copy: several sources (globs and
// URLs allowed) from a context directory or from another image.
func (r *Runtime) copySources(ctx context.Context, b *buildah.Builder, st Step, c Copy) error {
	root := c.ContextDir
	preserve := false
	if c.FromImage != "" {
		mnt, err := r.store.MountImage(c.FromImage, nil, "")
		if err != nil {
			return fmt.Errorf("%s: mounting image %s to copy from: %w", st.Name, shortID(c.FromImage), err)
		}
		defer func() { _, _ = r.store.UnmountImage(c.FromImage, false) }()
		root = filepath.Join(mnt, filepath.Clean("/"+c.ContextDir))
		preserve = c.Chown == ""
	}
	var srcs []string
	for _, s := range c.Sources {
		if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
			srcs = append(srcs, s)
			continue
		}
		if c.Parents && strings.Contains(s, "/./") {
			// Keep the --parents pivot, which Join would clean away.
			srcs = append(srcs, strings.TrimSuffix(root, "/")+"/"+s)
			continue
		}
		srcs = append(srcs, filepath.Join(root, filepath.FromSlash(s)))
	}
	opts := buildah.AddAndCopyOptions{
		ContextDir:        root,
		Excludes:          c.Excludes,
		Chown:             c.Chown,
		Chmod:             c.Chmod,
		Checksum:          c.Checksum,
		PreserveOwnership: preserve,
		Parents:           c.Parents,
		MaxRetries:        2,
		RetryDelay:        time.Second,
	}
	if c.FromImage != "" {
		opts.IDMappingOptions = &b.IDMappingOptions
	}
	if err := chmodParents(b, c, srcs); err != nil {
		return fmt.Errorf("%s: creating %s: %w", st.Name, c.Dest, err)
	}
	groups := []srcGroup{{root, srcs}}
	if c.Extract && c.Chown != "" && c.FromImage == "" {
		// ADD --chown of a local archive: BuildKit gives the extracted
		// files the owner too (Buildah keeps the archive's).
		var cleanup func()
		var err error
		groups, cleanup, err = chownArchives(b, root, srcs, c.Chown)
		defer cleanup()
		if err != nil {
			return fmt.Errorf("%s: ADD --chown=%s: %w", st.Name, c.Chown, err)
		}
	}
	for _, g := range groups {
		o := opts
		o.ContextDir = g.contextDir
		if err := b.Add(c.Dest, c.Extract, o, g.srcs...); err != nil {
			return fmt.Errorf("%s: copying %s to %s: %w", st.Name, strings.Join(c.Sources, " "), c.Dest, err)
		}
	}
	return nil
}

// srcGroup is sources Buildah copies in one call, from one context
// directory.
type srcGroup struct {
	contextDir string
	srcs       []string
}

// chmodParents makes the directories a copy with an octal Chmod creates
// with that mode (and the Chown owner), as BuildKit does; Buildah would
// make them 0755. They are the destination's parents, and the destination
// itself when it names a directory: it ends in "/", or the one source is
// a directory whose contents go there.
func chmodParents(b *buildah.Builder, c Copy, srcs []string) error {
	if c.Chmod == "" {
		return nil
	}
	m, err := strconv.ParseUint(c.Chmod, 8, 32)
	if err != nil {
		return nil // Buildah reports it
	}
	dir := c.Dest
	if !strings.HasSuffix(dir, "/") {
		dir = path.Dir(dir)
		if len(srcs) == 1 && !c.Parents {
			if fi, err := os.Stat(srcs[0]); err == nil && fi.IsDir() {
				dir = c.Dest
			}
		}
	}
	if dir == "/" || dir == "." {
		return nil
	}
	mode := os.FileMode(m)
	return b.EnsureContainerPathAs(dir, c.Chown, &mode)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// lockAll takes an exclusive flock on each file, creating it, and returns
// the func that releases them all. It gives up when ctx ends.
func lockAll(ctx context.Context, files []string) (func(), error) {
	var held []*os.File
	release := func() {
		for _, f := range held {
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
			f.Close()
		}
	}
	for _, p := range files {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			release()
			return nil, fmt.Errorf("cache mount lock: %w", err)
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			if err != unix.EWOULDBLOCK {
				f.Close()
				release()
				return nil, fmt.Errorf("cache mount lock %s: %w", p, err)
			}
			select {
			case <-ctx.Done():
				f.Close()
				release()
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		held = append(held, f)
	}
	return release, nil
}

// mountImages resolves mounts read from images: it mounts each image and
// points Src into its root filesystem (the path may not leave it).
func (r *Runtime) mountImages(ms []Mount) ([]Mount, error) {
	var out []Mount
	for _, m := range ms {
		if m.FromImage == "" {
			out = append(out, m)
			continue
		}
		mnt, err := r.store.MountImage(m.FromImage, nil, "")
		if err != nil {
			r.unmountImages(out)
			return nil, fmt.Errorf("mounting image %s for %s: %w", shortID(m.FromImage), m.Dest, err)
		}
		src, err := securejoin.SecureJoin(mnt, m.Src)
		if err != nil {
			_, _ = r.store.UnmountImage(m.FromImage, false)
			r.unmountImages(out)
			return nil, err
		}
		m.Src = src
		out = append(out, m)
	}
	return out, nil
}

func (r *Runtime) unmountImages(ms []Mount) {
	for _, m := range ms {
		if m.FromImage != "" {
			_, _ = r.store.UnmountImage(m.FromImage, false)
		}
	}
}

// removeInRoot removes the paths (a glob allowed in the last element) from
// the root filesystem at root. Directories are resolved inside root, so a
// symlink in the image cannot lead the removal out of it; a matching
// symlink is removed itself, never its target.
func removeInRoot(root string, paths []string) error {
	for _, p := range paths {
		dir, pattern := path.Split(path.Clean("/" + p))
		real, err := securejoin.SecureJoin(root, dir)
		if err != nil {
			return err
		}
		ents, err := os.ReadDir(real)
		if err != nil {
			continue // no such directory: nothing to remove
		}
		for _, e := range ents {
			if ok, _ := path.Match(pattern, e.Name()); ok {
				if err := os.RemoveAll(filepath.Join(real, e.Name())); err != nil {
					return fmt.Errorf("removing %s: %w", path.Join(dir, e.Name()), err)
				}
			}
		}
	}
	return nil
}

// chownArchives returns srcs, in order, in groups to copy: each local tar
// archive among them (globs expanded) replaced by an uncompressed copy,
// in a private directory of its own, whose entries all belong to chown's
// user and group, resolved in the working container's /etc/passwd and
// /etc/group as Buildah resolves --chown (a numeric user alone is also the
// group). cleanup removes the copies.
func chownArchives(b *buildah.Builder, root string, srcs []string, chown string) ([]srcGroup, func(), error) {
	dir := ""
	cleanup := func() {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	var uid, gid uint32
	resolved := false
	var out []srcGroup
	add := func(ctxDir, src string) {
		if n := len(out); n > 0 && out[n-1].contextDir == ctxDir {
			out[n-1].srcs = append(out[n-1].srcs, src)
			return
		}
		out = append(out, srcGroup{ctxDir, []string{src}})
	}
	for _, s := range srcs {
		if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
			add(root, s)
			continue
		}
		matches, err := filepath.Glob(s)
		if err != nil || len(matches) == 0 {
			add(root, s) // Buildah reports it
			continue
		}
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil || !st.Mode().IsRegular() || !archive.IsArchivePath(m) {
				add(root, m)
				continue
			}
			if !resolved {
				if uid, gid, err = copyOwner(b, chown); err != nil {
					return nil, cleanup, err
				}
				resolved = true
			}
			if dir == "" {
				if dir, err = os.MkdirTemp("", "strata-add-chown-"); err != nil {
					return nil, cleanup, err
				}
			}
			sub := filepath.Join(dir, strconv.Itoa(len(out)))
			if err := os.Mkdir(sub, 0o700); err != nil {
				return nil, cleanup, err
			}
			p := filepath.Join(sub, filepath.Base(m))
			if err := rewriteOwners(m, p, uid, gid); err != nil {
				return nil, cleanup, fmt.Errorf("%s: %w", filepath.Base(m), err)
			}
			// A group of its own: Buildah copies only from under the
			// context directory it is given.
			out = append(out, srcGroup{sub, []string{p}})
		}
	}
	return out, cleanup, nil
}

// copyOwner resolves a --chown spec in the working container.
func copyOwner(b *buildah.Builder, spec string) (uint32, uint32, error) {
	user, group, _ := strings.Cut(spec, ":")
	if n, err := strconv.ParseUint(user, 10, 32); err == nil {
		uid, gid := uint32(n), uint32(n)
		if group == "" {
			return uid, gid, nil
		}
		if g, err := strconv.ParseUint(group, 10, 32); err == nil {
			return uid, uint32(g), nil
		}
	}
	mnt, err := b.Mount(b.MountLabel)
	if err != nil {
		return 0, 0, err
	}
	if n, err := strconv.ParseUint(user, 10, 32); err == nil {
		g, err := chrootuser.GetGroup(mnt, group)
		return uint32(n), g, err
	}
	uid, gid, _, err := chrootuser.GetUser(mnt, spec)
	return uid, gid, err
}

// rewriteOwners writes the (possibly compressed) tar archive src to dst,
// uncompressed, with every entry owned by uid:gid.
func rewriteOwners(src, dst string, uid, gid uint32) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := archive.DecompressStream(f)
	if err != nil {
		return err
	}
	defer r.Close()
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer o.Close()
	tr, tw := tar.NewReader(r), tar.NewWriter(o)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		h.Uid, h.Gid, h.Uname, h.Gname = int(uid), int(gid), "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return o.Close()
}

// privateCopies replaces the Src of each Discard mount in ms with a
// private copy (owners, modes and times kept), writable; the returned func
// removes the copies.
func privateCopies(ms []Mount) (func(), error) {
	var dirs []string
	cleanup := func() {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}
	for i := range ms {
		m := &ms[i]
		if !m.Discard {
			continue
		}
		dir, err := os.MkdirTemp("", "strata-bind-rw-")
		if err != nil {
			return cleanup, err
		}
		dirs = append(dirs, dir)
		st, err := os.Stat(m.Src)
		if err != nil {
			return cleanup, fmt.Errorf("bind mount %s: %w", m.Dest, err)
		}
		to := filepath.Join(dir, "copy")
		if st.IsDir() {
			if err := os.Mkdir(to, st.Mode().Perm()); err != nil {
				return cleanup, err
			}
		}
		if err := copyAll(m.Src, to); err != nil {
			return cleanup, fmt.Errorf("bind mount %s,rw: %w", m.Dest, err)
		}
		m.Src, m.Writable = to, true
	}
	return cleanup, nil
}

// CopyFromImage copies the directory (or file) src of the image imageID
// into the existing directory dst: its contents, owners, modes and times
// kept.
func (r *Runtime) CopyFromImage(imageID, src, dst string) error {
	mnt, err := r.store.MountImage(imageID, nil, "")
	if err != nil {
		return fmt.Errorf("mounting image %s: %w", shortID(imageID), err)
	}
	defer func() { _, _ = r.store.UnmountImage(imageID, false) }()
	from, err := securejoin.SecureJoin(mnt, src)
	if err != nil {
		return err
	}
	if _, err := os.Stat(from); err != nil {
		return fmt.Errorf("%s in image %s: %w", src, shortID(imageID), err)
	}
	return copyAll(from, dst)
}

// copyAll copies from, owners, modes and times kept, to to: a directory's
// contents into the existing directory to, a file to the path to (or into
// it, when it is a directory).
func copyAll(from, to string) error {
	src := from
	if st, err := os.Stat(from); err == nil && st.IsDir() {
		src += "/."
	}
	if out, err := exec.Command("cp", "-a", src, to).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", from, err, bytes.TrimSpace(out))
	}
	return nil
}
