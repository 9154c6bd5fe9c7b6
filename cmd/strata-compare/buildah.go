package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// buildah is Debian's `buildah bud --layers` (1.28), rootless, runc,
// overlay, host network, on its own store.
type buildah struct {
	root   string
	global []string
	env    []string
}

// remove deletes buildah's store: its containers and images through
// buildah, then the directories inside buildah's user namespace.
func (b *buildah) remove() {
	_, _ = b.run("rm", "--all")
	_, _ = b.run("rmi", "--all", "--force")
	_, _ = b.run("unshare", "rm", "-rf", filepath.Join(b.root, "graph"), filepath.Join(b.root, "run"))
	_ = os.RemoveAll(b.root)
}

func newBuildah(root string) (*buildah, error) {
	if _, err := exec.LookPath("buildah"); err != nil {
		return nil, errors.New("the buildah command is not installed (apt-get install --no-install-recommends buildah)")
	}
	xdg := filepath.Join(root, "xdg")
	if err := os.MkdirAll(xdg, 0o700); err != nil {
		return nil, err
	}
	return &buildah{
		root:   root,
		global: []string{"--root", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run"), "--storage-driver", "overlay"},
		env:    append(os.Environ(), "XDG_RUNTIME_DIR="+xdg),
	}, nil
}

func (b *buildah) run(args ...string) (string, error) {
	cmd := exec.Command("buildah", append(slices.Clone(b.global), args...)...)
	cmd.Env = b.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("buildah %s: %v\n%s", args[0], err, tail(out.String()+errOut.String()))
	}
	return out.String(), nil
}

func (b *buildah) build(j job, dir string, t *timings, edit string) error {
	tag := "localhost/compare-" + filepath.Base(dir)
	args := []string{"bud", "--layers", "--runtime", "runc", "--network", "host", "--pull=never", "-f", j.dockerfile, "-t", tag}
	for _, k := range slices.Sorted(maps.Keys(j.args)) {
		args = append(args, "--build-arg", k+"="+j.args[k])
	}
	if j.target != "" {
		args = append(args, "--target", j.target)
	}
	for _, id := range slices.Sorted(maps.Keys(j.secrets)) {
		p := filepath.Join(dir, "secret-"+id)
		if err := os.WriteFile(p, []byte(j.secrets[id]), 0o600); err != nil {
			return err
		}
		args = append(args, "--secret", "id="+id+",src="+p)
	}
	args = append(args, j.context)
	return timed(t, j, edit, func() error {
		_, err := b.run(args...)
		return err
	}, func() error {
		_, err := b.run("push", "--quiet", tag, "oci:"+filepath.Join(dir, "buildah")+":out")
		return err
	})
}

func (b *buildah) name() string { return "buildah" }

// base pulls the base image strata exported to layout:name and names it
// localhost/NAME, which FROM NAME finds.
func (b *buildah) base(layout, name string) error {
	id, err := b.run("pull", "-q", "oci:"+layout+":"+name)
	if err != nil {
		return err
	}
	_, err = b.run("tag", strings.TrimSpace(id), "localhost/"+name)
	return err
}
