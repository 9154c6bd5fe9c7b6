package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// urlFile is a file an ADD step fetches from a URL: planning names it by
// its digest (the ADD --checksum, or the digest of the content read once
// to key the step) and Build downloads it into dir/name when the step
// runs, unless an earlier build left it there.
type urlFile struct {
	url, dir, name string
	digest         digest.Digest
}

// downloadTimeout bounds one request for an ADD URL.
const downloadTimeout = 5 * time.Minute

// lowerURL plans the download of src for an ADD step: the digest that
// keys it is want (ADD --checksum) when given, which costs no request;
// else the digest of the content, read without writing anything.
func (pe *planEnv) lowerURL(ctx context.Context, src, want string) (urlFile, error) {
	u, err := url.Parse(src)
	if err != nil {
		return urlFile{}, fmt.Errorf("ADD %s: %w", src, err)
	}
	name := path.Base(u.Path)
	if name == "" || name == "/" || name == "." {
		name = "download"
	}
	var d digest.Digest
	if want != "" {
		if d, err = digest.Parse(want); err != nil {
			return urlFile{}, fmt.Errorf("ADD --checksum=%s %s: %w (want sha256:<64 hex digits>, or sha384: or sha512:)", want, src, err)
		}
	} else if d, err = urlDigest(ctx, src); err != nil {
		return urlFile{}, err
	}
	dir := filepath.Join(pe.mountRoot, "downloads", d.Algorithm().String()+"-"+d.Encoded())
	return urlFile{url: src, dir: dir, name: name, digest: d}, nil
}

// urlDigest reads src and returns the sha256 digest of its content.
func urlDigest(ctx context.Context, src string) (digest.Digest, error) {
	body, cancel, err := get(ctx, src)
	if err != nil {
		return "", err
	}
	defer cancel()
	defer body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, body); err != nil {
		return "", fmt.Errorf("ADD %s: reading it: %w", src, err)
	}
	return digest.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), nil
}

// fetch downloads f into f.dir/f.name unless it is there, checking the
// content against f.digest before the file appears: a download whose
// digest differs leaves nothing behind.
func (f urlFile) fetch(ctx context.Context) error {
	file := filepath.Join(f.dir, f.name)
	if _, err := os.Stat(file); err == nil {
		return nil
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return fmt.Errorf("ADD %s: %w", f.url, err)
	}
	body, cancel, err := get(ctx, f.url)
	if err != nil {
		return err
	}
	defer cancel()
	defer body.Close()
	tmp, err := os.CreateTemp(f.dir, ".part-*")
	if err != nil {
		return fmt.Errorf("ADD %s: %w", f.url, err)
	}
	defer os.Remove(tmp.Name())
	v := f.digest.Verifier()
	if _, err := io.Copy(io.MultiWriter(tmp, v), body); err != nil {
		tmp.Close()
		return fmt.Errorf("ADD %s: downloading: %w", f.url, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ADD %s: %w", f.url, err)
	}
	if !v.Verified() {
		return fmt.Errorf("ADD %s: the download does not match %s (a wrong --checksum, or the content changed since the step was planned: build again)", f.url, f.digest)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("ADD %s: %w", f.url, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("ADD %s: %w", f.url, err)
	}
	return nil
}

// get starts a GET of src and returns its body, to be closed and then
// cancelled, or an error that says what to do.
func get(ctx context.Context, src string) (io.ReadCloser, context.CancelFunc, error) {
	cctx, cancel := context.WithTimeout(ctx, downloadTimeout)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, src, nil)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("ADD %s: %w", src, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("ADD %s: cannot download it (%w); check the URL and the network, or COPY a local copy", src, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, nil, fmt.Errorf("ADD %s: the server answered %s", src, resp.Status)
	}
	return resp.Body, cancel, nil
}
