package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ErrNoBusybox is returned when no static busybox binary is installed.
var ErrNoBusybox = errors.New("busybox not found (install Debian's busybox-static)")

// FindBusybox returns the path of the host's busybox binary.
func FindBusybox() (string, error) {
	if p, err := exec.LookPath("busybox"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBusybox
}

// WriteBusybox writes an uncompressed rootfs tar to w: /bin/busybox with a
// symlink per applet, /etc and /tmp, all owned by root, with a fixed
// modification time so the same busybox gives the same bytes.
func WriteBusybox(w io.Writer) error {
	bb, err := FindBusybox()
	if err != nil {
		return err
	}
	return WriteBusyboxFrom(w, bb)
}

// WriteBusyboxFrom is WriteBusybox with the busybox binary at bb, which
// may be for another architecture (Debian's busybox-static:arm64; listing
// its applets then runs it through the host's emulator).
func WriteBusyboxFrom(w io.Writer, bb string) error {
	body, err := os.ReadFile(bb)
	if err != nil {
		return fmt.Errorf("reading busybox: %w", err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("listing busybox applets: %w", err)
	}
	mtime := time.Unix(0, 0)
	tw := tar.NewWriter(w)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777},
	}
	for _, h := range hdrs {
		h.ModTime = mtime
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(body)), ModTime: mtime}); err != nil {
		return err
	}
	if _, err := tw.Write(body); err != nil {
		return err
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mtime}); err != nil {
			return err
		}
	}
	return tw.Close()
}

// WriteBusyboxFile writes the busybox rootfs tar to the file at path.
func WriteBusyboxFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteBusybox(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
