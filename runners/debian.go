package runners

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Debian describes a Debian base made from a mirror with mmdebstrap
// (variant minbase), rootless through --mode=unshare.
type Debian struct {
	Suite string
	// Mirror is the archive URL; default http://deb.debian.org/debian, or
	// snapshot.debian.org's archive at Snapshot when that is set.
	Mirror string
	// Snapshot pins the mirror to snapshot.debian.org at this time.
	Snapshot time.Time
	// Include are extra packages installed in the base.
	Include []string
	// AptOptions are apt configuration lines written into the base
	// (mmdebstrap --aptopt), e.g. `Acquire::Check-Valid-Until "false"`.
	AptOptions []string
}

// MirrorURL returns the mirror the base is made from.
func (d Debian) MirrorURL() string {
	switch {
	case d.Mirror != "":
		return strings.TrimRight(d.Mirror, "/")
	case !d.Snapshot.IsZero():
		return "http://snapshot.debian.org/archive/debian/" + d.Snapshot.UTC().Format("20060102T150405Z")
	}
	return "http://deb.debian.org/debian"
}

func (d Debian) aptOptions() []string {
	opts := append([]string(nil), d.AptOptions...)
	if !d.Snapshot.IsZero() {
		// Snapshots serve Release files whose Valid-Until has passed.
		opts = append(opts, `Acquire::Check-Valid-Until "false"`)
	}
	return opts
}

// debianDigest identifies a Debian base by content: the suite's Release
// file as the mirror serves it now (it names the digest of every package
// index, so any change to the archive changes it), plus the settings.
func debianDigest(ctx context.Context, d Debian) (string, error) {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return "", fmt.Errorf("DebianMirror needs mmdebstrap on the host (apt-get install mmdebstrap): %w", err)
	}
	url := d.MirrorURL() + "/dists/" + d.Suite + "/Release"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("debian mirror: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading the Release file of %s: %w (is the mirror reachable?)", d.Suite, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading %s: %s (is %q a suite of this mirror?)", url, resp.Status, d.Suite)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	doc, _ := json.Marshal(map[string]any{
		"suite":       d.Suite,
		"release":     "sha256:" + hex.EncodeToString(h.Sum(nil)),
		"variant":     "minbase",
		"include":     d.Include,
		"apt_options": d.aptOptions(),
	})
	sum := sha256.Sum256(doc)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// importDebian runs mmdebstrap into a temporary tarball and imports it.
func (r *Runtime) importDebian(ctx context.Context, d Debian, report io.Writer) (string, error) {
	tmp, err := os.MkdirTemp("", fmt.Sprintf("strata-debian-%d-", os.Getpid()))
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	tarball := filepath.Join(tmp, "rootfs.tar")
	// Rootless, strata runs inside a user namespace where it is uid 0 but
	// may not mount proc or sys: mmdebstrap's unshare mode works there (it
	// maps its own namespace); root mode only for the real root.
	mode := "--mode=unshare"
	if !r.rootless {
		mode = "--mode=root"
	}
	args := []string{mode, "--variant=minbase", "--format=tar", "--quiet"}
	if len(d.Include) > 0 {
		args = append(args, "--include="+strings.Join(d.Include, ","))
	}
	for _, o := range d.aptOptions() {
		args = append(args, "--aptopt="+o)
	}
	args = append(args, d.Suite, tarball, d.MirrorURL())
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	tail := newTailWriter(20)
	var out io.Writer = tail
	if report != nil {
		out = io.MultiWriter(tail, report)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("mmdebstrap %s from %s: %w\nlast lines of output:\n  %s", d.Suite, d.MirrorURL(), err, strings.Join(tail.Lines(), "\n  "))
	}
	// The import of the tarball says nothing the bootstrap's own output
	// (above) did not.
	return r.pull(ctx, "tarball:"+tarball, nil, nil, "")
}
