package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// TestDockerfileFidelity builds corpus Dockerfiles whose effect only a
// built image shows and checks the files as BuildKit makes them: heredoc
// tab stripping and expansion, heredocs copied with --from, a reused
// stage name, the mode of the directories COPY --chmod creates, and
// several sources copied into a destination without a trailing slash,
// --exclude patterns that match inside each source, and an ARG after an
// ENV of the same name.
func TestDockerfileFidelity(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	bb := builder.FromArchive(busyboxTar(t))
	root := repoRoot()
	corpus := filepath.Join(root, "dockerfile", "testdata", "corpus")
	contextDir := filepath.Join(root, "dockerfile", "testdata", "context")
	type file struct {
		content string // "" for a directory
		mode    int64  // -1: the file must not be there
	}
	for _, tc := range []struct {
		dockerfile string
		want       map[string]file
	}{
		{"44-copy-exclude.Dockerfile", map[string]file{
			// --exclude patterns match inside each source.
			"dir/a.conf":         {"a=1\n", 0o644},
			"dir/cache/":         {"", -1},
			"dir/cache/blob.bin": {"", -1},
		}},
		{"64-argscope.Dockerfile", map[string]file{
			// An ARG with a value after ENV of the same name wins.
			"v3": {"[ignored]\n", 0o644},
		}},
		{"71-heredoc-chomp.Dockerfile", map[string]file{
			"chomped":      {"inner text\ndone\n", 0o644},
			"chomped-copy": {"line one\nline two\n", 0o644},
		}},
		{"72-heredoc-copy-expand.Dockerfile", map[string]file{
			"greeting": {"Hello 'world'!\nHello \"world\"!\nHello world!\n", 0o644},
			"literal":  {"Hello '${name}'!\n", 0o644},
		}},
		{"73-copy-from-heredoc.Dockerfile", map[string]file{
			"dst/file":  {"from-one\n", 0o644},
			"dst/a.txt": {"first\n", 0o644},
			"dst/b.txt": {"second\n", 0o644},
		}},
		{"74-duplicate-stage.Dockerfile", map[string]file{
			"which": {"first\nsecond\n", 0o644},
		}},
		{"75-copy-chmod-parents.Dockerfile", map[string]file{
			"opt/":                {"", 0o750},
			"opt/new/":            {"", 0o750},
			"opt/new/dir/":        {"", 0o750},
			"opt/new/dir/app.txt": {"app\n", 0o750},
			"srv/":                {"", 0o700},
			"srv/tree/":           {"", 0o700},
			"srv/tree/sub/":       {"", 0o700},
			"srv/tree/a.conf":     {"a=1\n", 0o700},
		}},
		{"76-copy-multi-source.Dockerfile", map[string]file{
			"exists/app.txt": {"app\n", 0o644},
			"multi/":         {"", 0o755},
			"multi/app.txt":  {"app\n", 0o644},
			"multi/a.conf":   {"a=1\n", 0o644},
		}},
	} {
		t.Run(tc.dockerfile, func(t *testing.T) {
			res, err := s.Build(ctx, builder.FromDockerfile(filepath.Join(corpus, tc.dockerfile),
				builder.ContextDir(contextDir), builder.BuildContext("busybox", bb)))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]file{}
			eachEntry(t, s, res.ImageID, func(name string, h *tar.Header, r io.Reader) bool {
				if h.Typeflag == tar.TypeDir && name != "" && name[len(name)-1] != '/' {
					name += "/"
				}
				if _, ok := tc.want[name]; ok {
					if _, seen := got[name]; !seen { // top layer first
						b, _ := io.ReadAll(r)
						got[name] = file{string(b), h.Mode & 0o7777}
					}
				}
				return true
			})
			for name, w := range tc.want {
				g, ok := got[name]
				switch {
				case w.mode == -1:
					if ok {
						t.Errorf("/%s is in the image; want it left out", name)
					}
				case !ok:
					t.Errorf("/%s is missing", name)
				case g != w:
					t.Errorf("/%s = %q mode %s; want %q mode %s", name, g.content, fmt.Sprintf("%04o", g.mode), w.content, fmt.Sprintf("%04o", w.mode))
				}
			}
		})
	}
}

// TestADDChownArchive: ADD --chown of a local archive (plain or gzip)
// gives the extracted files that owner, as BuildKit does (corpus 12
// against BuildKit); without --chown they keep the archive's owners.
func TestADDChownArchive(t *testing.T) {
	requireRootless(t)
	s := openSession(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "f/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 7, Gid: 7},
		{Name: "f/one.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4, Uid: 7, Gid: 7, Uname: "seven"},
		{Name: "f/link", Typeflag: tar.TypeSymlink, Linkname: "one.txt", Uid: 7, Gid: 7},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("one\n"))
		}
	}
	tw.Close()
	writeFile(t, filepath.Join(dir, "files.tar"), buf.String())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	writeFile(t, filepath.Join(dir, "files.tar.gz"), gz.String())
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nADD files.tar /unpacked/\nADD --chown=2:2 files.tar /owned/\nADD --chown=2:2 files.tar.gz /owned-gz/\n")
	res, err := s.Build(context.Background(), builder.FromDockerfile(filepath.Join(dir, "Dockerfile"), builder.BuildContext("busybox", builder.FromArchive(busyboxTar(t)))))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	eachEntry(t, s, res.ImageID, func(name string, h *tar.Header, _ io.Reader) bool {
		top, rest, _ := strings.Cut(name, "/")
		if rest == "" {
			return true
		}
		switch top {
		case "owned", "owned-gz":
			seen[top]++
			if h.Uid != 2 || h.Gid != 2 {
				t.Errorf("/%s is owned by %d:%d, want 2:2", name, h.Uid, h.Gid)
			}
		case "unpacked":
			seen[top]++
			if h.Uid != 7 || h.Gid != 7 {
				t.Errorf("/%s is owned by %d:%d, want the archive's 7:7", name, h.Uid, h.Gid)
			}
		}
		return true
	})
	for _, top := range []string{"owned", "owned-gz", "unpacked"} {
		if seen[top] != 3 {
			t.Errorf("%d entries under /%s, want 3", seen[top], top)
		}
	}
}
