package runners

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

func TestNormalizeTag(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"app", "localhost/app:latest"},
		{"app:v1", "localhost/app:v1"},
		{"team/app", "localhost/team/app:latest"},
		{"localhost/app", "localhost/app:latest"},
		{"registry.example.com/app:2", "registry.example.com/app:2"},
		{"127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"},
	}
	for _, tc := range cases {
		got, err := NormalizeTag(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeTag(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "UPPER", "a b", "app@sha256:" + "00"} {
		if _, err := NormalizeTag(bad); err == nil {
			t.Errorf("NormalizeTag(%q): want an error", bad)
		}
	}
}

func TestArchiveTransport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, files []string, gz bool) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var w = f
		if gz {
			zw := gzip.NewWriter(f)
			defer zw.Close()
			writeTar(t, zw, files)
			return p
		}
		writeTar(t, w, files)
		return p
	}
	cases := []struct {
		name  string
		files []string
		gz    bool
		want  string
	}{
		{"rootfs", []string{"bin/sh", "etc/passwd"}, false, "tarball"},
		{"gzip rootfs", []string{"bin/sh"}, true, "tarball"},
		{"oci archive", []string{"blobs/sha256/00", "index.json", "oci-layout"}, false, "oci-archive"},
		{"docker archive", []string{"abc.json", "manifest.json"}, false, "docker-archive"},
	}
	for _, tc := range cases {
		got, err := archiveTransport(write(tc.name+".tar", tc.files, tc.gz))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	notTar := filepath.Join(dir, "x")
	_ = os.WriteFile(notTar, []byte("definitely not a tar archive, just some text that is long enough to fill a header block"), 0o644)
	if _, err := archiveTransport(notTar); err == nil {
		t.Error("a non-tar file was accepted")
	}
}
