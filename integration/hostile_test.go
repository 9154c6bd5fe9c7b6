package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/imagediff"
	"github.com/stratabuild/strata/pkg/rootfs"
)

// TestHostileLocalTree: links that point outside the source are copied as
// links and never followed; an unreadable file is a clear error naming it,
// before any container exists; names with newlines survive.
func TestHostileLocalTree(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	writeFile(t, filepath.Join(outside, "secret.txt"), "outside-the-source\n")
	src := filepath.Join(root, "src")
	writeFile(t, filepath.Join(src, "ok.txt"), "fine\n")
	writeFile(t, filepath.Join(src, "new\nline.txt"), "odd name\n")
	for name, target := range map[string]string{"abs": filepath.Join(outside, "secret.txt"), "up": "../outside/secret.txt", "etc": "/etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	s := openSession(t)
	base := builder.FromArchive(busyboxTar(t))
	res, err := s.Build(ctx, base.AddLocalDir(src, "/app", builder.Copy()))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	links := map[string]string{}
	eachEntry(t, s, res.ImageID, func(name string, h *tar.Header, r io.Reader) bool {
		b, _ := io.ReadAll(r)
		if strings.Contains(string(b), "outside-the-source") || strings.Contains(string(b), "root:x:0:0") {
			t.Errorf("%s holds a followed link's content", name)
		}
		if h.Typeflag == tar.TypeSymlink {
			links[name] = h.Linkname
		}
		return true
	})
	for name, target := range map[string]string{"app/abs": filepath.Join(outside, "secret.txt"), "app/up": "../outside/secret.txt", "app/etc": "/etc/passwd"} {
		if links[name] != target {
			t.Errorf("%s: link %q, want %q (links: %v)", name, links[name], target, links)
		}
	}
	if got := readFromImage(t, s, res.ImageID, "app/new\nline.txt"); got != "odd name\n" {
		t.Errorf("file with a newline in its name: %q", got)
	}

	// An unreadable file: a clear error that names it, no container. Inside
	// strata's user namespace the user's own files are root's and always
	// readable; a file of another user (here root's, made by make setup)
	// is not.
	const fixture = "/var/lib/strata-test-fixtures/unreadable"
	locked := filepath.Join(fixture, "locked.txt")
	if _, err := os.Lstat(locked); err != nil {
		t.Skipf("%s missing: make setup creates it (a root-owned mode-600 file)", locked)
	}
	if f, err := os.Open(locked); err == nil {
		f.Close()
		t.Skipf("this user can read %s (running as real root?)", locked)
	}
	_, err = s.Build(ctx, base.AddLocalDir(fixture, "/app", builder.Copy()))
	if err == nil || !strings.Contains(err.Error(), "step 1 (AddLocalDir)") || !strings.Contains(err.Error(), "locked.txt") {
		t.Fatalf("unreadable file: %v", err)
	}
	t.Logf("unreadable file: %v", err)
	if c, _ := counts(t, s.Store()); c != 0 {
		t.Fatalf("%d containers left", c)
	}
}

// TestHostileBaseArchive imports a rootfs tarball with absolute and
// escaping symlinks (and a file written through one), a device node, a
// setuid file and a hard link across directories: nothing is written
// outside the store, links stay links, the image's steps run and every
// layer reads back whole. An archive with an entry that climbs out of the
// root ("../") is refused with an error naming the entry.
func TestHostileBaseArchive(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "hostile.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(body))
		}
	}
	// A minimal runnable rootfs first: busybox's sh.
	bb, err := os.ReadFile(busyboxBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, string(bb))
	add(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, "")
	add(&tar.Header{Name: "abs", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow", Mode: 0o777}, "")
	add(&tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../..", Mode: 0o777}, "")
	add(&tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "dev/evil", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}, "")
	add(&tar.Header{Name: "bin/suid", Typeflag: tar.TypeReg, Mode: 0o4755}, "#!/bin/sh\n")
	add(&tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "a/target", Typeflag: tar.TypeReg, Mode: 0o644}, "linked\n")
	add(&tar.Header{Name: "b/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "b/hard", Typeflag: tar.TypeLink, Linkname: "a/target", Mode: 0o644}, "")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s := openSession(t)
	// The same entries plus one that climbs out: refused, naming it.
	climb := filepath.Join(dir, "climb.tar")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := os.Create(climb)
	ctw := tar.NewWriter(cf)
	_ = ctw.WriteHeader(&tar.Header{Name: "../../escaped-by-dotdot", Typeflag: tar.TypeReg, Mode: 0o644, Size: 8})
	_, _ = ctw.Write([]byte("escaped\n"))
	_ = ctw.Flush()
	_, _ = cf.Write(raw)
	cf.Close()
	_, err = s.Build(ctx, builder.FromArchive(climb).RunCommands([]string{"true"}))
	if err == nil || !strings.Contains(err.Error(), "step 0 (FromArchive)") || !strings.Contains(err.Error(), "../../escaped-by-dotdot") {
		t.Fatalf("archive with ../ entry: %v", err)
	}
	// A file written through one of the archive's own symlinks: refused.
	through := filepath.Join(dir, "through.tar")
	tf, _ := os.Create(through)
	_, _ = tf.Write(raw[:len(raw)-1024]) // without the end-of-archive blocks
	ttw := tar.NewWriter(tf)
	_ = ttw.WriteHeader(&tar.Header{Name: "up/through-link", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5})
	_, _ = ttw.Write([]byte("evil\n"))
	_ = ttw.Close()
	tf.Close()
	_, err = s.Build(ctx, builder.FromArchive(through).RunCommands([]string{"true"}))
	if err == nil || !strings.Contains(err.Error(), `goes through the symlink "up"`) {
		t.Fatalf("archive writing through a symlink: %v", err)
	}

	res, err := s.Build(ctx, builder.FromArchive(p).RunCommands([]string{"cat /b/hard > /hard-seen; ls -l /bin/suid > /suid-seen"}))
	// Whatever happened, nothing landed outside the store.
	for _, q := range []string{"/escaped-by-dotdot", "/tmp/escaped-by-dotdot", filepath.Join(dir, "escaped-by-dotdot"), "/through-link", "/tmp/through-link", filepath.Join(filepath.Dir(dir), "through-link")} {
		if _, err := os.Lstat(q); err == nil {
			t.Errorf("%s was written outside the store", q)
		}
	}
	if err != nil {
		t.Logf("hostile archive refused: %v", err)
		if !strings.Contains(err.Error(), "step 0 (FromArchive)") {
			t.Fatalf("the error does not name the base step: %v", err)
		}
		return
	}
	t.Log("hostile archive imported; checking what the image holds")
	if got := readFromImage(t, s, res.ImageID, "hard-seen"); got != "linked\n" {
		t.Errorf("hard link read %q", got)
	}
	if got := readFromImage(t, s, res.ImageID, "suid-seen"); !strings.HasPrefix(got, "-rwsr-xr-x") {
		t.Errorf("setuid file: %q", got)
	}
	var names []string
	eachEntry(t, s, res.ImageID, func(name string, h *tar.Header, _ io.Reader) bool {
		names = append(names, fmt.Sprintf("%s(%c)", name, h.Typeflag))
		return true
	})
	t.Logf("image entries: %v", names)
	for _, want := range []string{"abs(2)", "up(2)", "b/hard(1)", "bin/suid(0)"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("the layers read back without %s: %v", want, names)
		}
	}
}

func busyboxBinary(t *testing.T) string {
	t.Helper()
	p, err := rootfs.FindBusybox()
	if err != nil {
		t.Skip("busybox-static not installed (make setup installs it)")
	}
	return p
}

// TestManyFilesAndVariables: 20 000 local files and 3 000 step variables
// build, with the times reported (no timing assertion).
func TestManyFilesAndVariables(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	src := t.TempDir()
	for i := range 200 {
		d := filepath.Join(src, fmt.Sprintf("d%03d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range 100 {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d", j)), []byte(fmt.Sprint(i*100+j)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	vars := map[string]string{}
	for i := range 3000 {
		vars[fmt.Sprintf("V%04d", i)] = strings.Repeat("x", 20)
	}
	s := openSession(t)
	img := builder.FromArchive(busyboxTar(t)).
		AddLocalDir(src, "/many", builder.Copy()).
		RunCommands([]string{`find /many -type f | wc -l > /count && echo "$V2999" > /last`}, builder.WithEnv(vars))
	start := time.Now()
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cold := time.Since(start)
	if got := strings.TrimSpace(readFromImage(t, s, res.ImageID, "count")); got != "20000" {
		t.Fatalf("%s files in the image", got)
	}
	if got := readFromImage(t, s, res.ImageID, "last"); got != strings.Repeat("x", 20)+"\n" {
		t.Fatalf("/last = %q", got)
	}
	start = time.Now()
	if _, err := s.Build(ctx, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("20 000 files + 3 000 variables: cold build %s, no-change rebuild %s (walk and hash included)",
		cold.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestHugeBaseArchive: a base archive of 60 000 files in 600 directories
// imports, runs a step and exports whole (every file read back from the
// exported layout, blobs and diff IDs checked), with the times reported
// (no timing assertion).
func TestHugeBaseArchive(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	var bb bytes.Buffer
	if err := rootfs.WriteBusybox(&bb); err != nil {
		t.Skipf("busybox rootfs: %v", err)
	}
	p := filepath.Join(t.TempDir(), "huge.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	tr := tar.NewReader(&bb)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	const dirs, per = 600, 100
	for i := range dirs {
		d := fmt.Sprintf("data/d%03d/", i)
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		for j := range per {
			body := fmt.Sprint(i*per + j)
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sf%03d", d, j), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	root := storeRoot(t)
	s := openStoreAt(t, root)
	defer s.Close()
	img := builder.FromArchive(p).RunCommands([]string{"find /data -type f | wc -l > /count"})
	start := time.Now()
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cold := time.Since(start)
	if got := strings.TrimSpace(readFromImage(t, s, res.ImageID, "count")); got != fmt.Sprint(dirs*per) {
		t.Fatalf("the step saw %s files, want %d", got, dirs*per)
	}
	// The no-change rebuild runs in a second session, which hashes the
	// archive again (a session remembers digests by path, size and mtime).
	start = time.Now()
	s2 := openStoreAt(t, root)
	res2, err := s2.Build(ctx, img)
	s2.Close()
	if err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	if res2.ImageID != res.ImageID || !res2.Steps[1].Cached {
		t.Errorf("the rebuild in a new session was not taken from the cache")
	}
	layout := filepath.Join(t.TempDir(), "layout")
	start = time.Now()
	if _, err := s.Build(ctx, img, builder.ExportTo("oci:"+layout+":huge")); err != nil {
		t.Fatal(err)
	}
	export := time.Since(start)
	exported, err := imagediff.Load(layout, "huge")
	if err != nil {
		t.Fatalf("reading the export back: %v", err)
	}
	n := 0
	for name, f := range exported.Files {
		if strings.HasPrefix(name, "data/") && f.Type == 'f' {
			n++
		}
	}
	if n != dirs*per {
		t.Errorf("the export holds %d data files, want %d", n, dirs*per)
	}
	if got := exported.Files["data/d599/f099"]; got.Size != int64(len(fmt.Sprint(dirs*per-1))) {
		t.Errorf("last file read back as %+v", got)
	}
	t.Logf("%d-file base archive (%d MB): cold import + 1 step %s, no-change rebuild in a new session %s, export %s",
		dirs*per, fileSize(t, p)>>20, cold.Round(time.Millisecond), warm.Round(time.Millisecond), export.Round(time.Millisecond))
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
