package integration

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// pyDist is a small pure-Python distribution written by the test itself.
type pyDist struct {
	name, version string
	files         map[string]string // path inside the package -> content
	requires      []string
}

// pyIndex is a PEP 503 simple index served on 127.0.0.1, which build steps
// reach through the host network.
type pyIndex struct {
	URL   string // ".../simple"
	mu    sync.Mutex
	files map[string][]byte // file name -> content
	hits  []string
}

func normalizeDist(n string) string {
	return strings.ToLower(regexp.MustCompile(`[-_.]+`).ReplaceAllString(n, "-"))
}

func startPyIndex(t *testing.T) *pyIndex {
	t.Helper()
	ix := &pyIndex{files: map[string][]byte{}}
	srv := httptest.NewServer(http.HandlerFunc(ix.serve))
	t.Cleanup(srv.Close)
	ix.URL = srv.URL + "/simple"
	return ix
}

func (ix *pyIndex) serve(w http.ResponseWriter, r *http.Request) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.hits = append(ix.hits, r.URL.Path)
	switch {
	case strings.HasPrefix(r.URL.Path, "/files/"):
		b, ok := ix.files[strings.TrimPrefix(r.URL.Path, "/files/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/simple/"):
		project := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
		var names []string
		for f := range ix.files {
			if normalizeDist(distOfFile(f)) == project {
				names = append(names, f)
			}
		}
		if len(names) == 0 {
			http.NotFound(w, r)
			return
		}
		sort.Strings(names)
		fmt.Fprintln(w, "<!DOCTYPE html><html><body>")
		for _, f := range names {
			sum := sha256.Sum256(ix.files[f])
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%s\">%s</a><br/>\n", f, hex.EncodeToString(sum[:]), f)
		}
		fmt.Fprintln(w, "</body></html>")
	default:
		http.NotFound(w, r)
	}
}

// distOfFile returns the distribution name of a wheel or sdist file name.
func distOfFile(f string) string {
	if strings.HasSuffix(f, ".whl") {
		return strings.SplitN(f, "-", 2)[0]
	}
	base := strings.TrimSuffix(f, ".tar.gz")
	return base[:strings.LastIndex(base, "-")]
}

func (ix *pyIndex) add(name string, content []byte) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.files[name] = content
}

// addWheel builds a py3-none-any wheel of d and serves it.
func (ix *pyIndex) addWheel(t *testing.T, d pyDist) {
	t.Helper()
	under := strings.ReplaceAll(d.name, "-", "_")
	info := fmt.Sprintf("%s-%s.dist-info", under, d.version)
	var meta strings.Builder
	fmt.Fprintf(&meta, "Metadata-Version: 2.1\nName: %s\nVersion: %s\n", d.name, d.version)
	for _, r := range d.requires {
		fmt.Fprintf(&meta, "Requires-Dist: %s\n", r)
	}
	files := map[string]string{
		info + "/METADATA": meta.String(),
		info + "/WHEEL":    "Wheel-Version: 1.0\nGenerator: strata-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
	}
	for p, c := range d.files {
		files[p] = c
	}
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, p := range paths {
		w, err := zw.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(files[p]))
		sum := sha256.Sum256([]byte(files[p]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[p]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", info)
	w, err := zw.Create(info + "/RECORD")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(record.String()))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	ix.add(fmt.Sprintf("%s-%s-py3-none-any.whl", under, d.version), buf.Bytes())
}

// addSdist builds a setuptools sdist of d (installing it needs setuptools
// in the image and --no-build-isolation, as nothing else is reachable).
func (ix *pyIndex) addSdist(t *testing.T, d pyDist) {
	t.Helper()
	root := fmt.Sprintf("%s-%s", d.name, d.version)
	var deps []string
	for _, r := range d.requires {
		deps = append(deps, fmt.Sprintf("%q", r))
	}
	files := map[string]string{
		"PKG-INFO": fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", d.name, d.version),
		"pyproject.toml": fmt.Sprintf("[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n"+
			"[project]\nname = %q\nversion = %q\ndependencies = [%s]\n", d.name, d.version, strings.Join(deps, ", ")),
	}
	for p, c := range d.files {
		files[p] = c
	}
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, p := range paths {
		c := files[p]
		if err := tw.WriteHeader(&tar.Header{Name: root + "/" + p, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(c))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	ix.add(root+".tar.gz", buf.Bytes())
}

func (ix *pyIndex) requested(prefix string) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, h := range ix.hits {
		if strings.HasPrefix(h, prefix) {
			return true
		}
	}
	return false
}
