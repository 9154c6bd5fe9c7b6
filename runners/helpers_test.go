package runners

import (
	"archive/tar"
	"io"
	"testing"
)

func writeTar(t *testing.T, w io.Writer, files []string) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f, Mode: 0o644, Size: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTailWriter(t *testing.T) {
	t.Parallel()
	tw := newTailWriter(3)
	_, _ = io.WriteString(tw, "a\nb\nc")
	_, _ = io.WriteString(tw, "d\ne\nf")
	got := tw.Lines()
	want := []string{"cd", "e", "f"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %q, want %q", got, want)
	}
}
