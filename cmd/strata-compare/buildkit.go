package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// buildkit is BuildKit's own daemon, rootless: `buildkitd` (OCI worker,
// runc, overlayfs snapshotter, host network) under RootlessKit, driven by
// `buildctl build` with the built-in Dockerfile frontend (a `# syntax=`
// line is ignored, as strata ignores it: there is no registry to pull a
// frontend image from). make buildkit-tools builds the three programs.
type buildkit struct {
	root, sock, buildctl string
	daemon               *exec.Cmd
	layout               string            // the OCI layout of the bases
	contexts             map[string]string // base name -> manifest digest in layout
}

// newBuildkit starts buildkitd on a state directory under root and waits
// until it answers. tools is where buildkitd, buildctl and rootlesskit
// are (else they are looked up on PATH).
func newBuildkit(root, tools string) (*buildkit, error) {
	find := func(n string) (string, error) {
		if tools != "" {
			if p := filepath.Join(tools, n); isExecutable(p) {
				return p, nil
			}
		}
		p, err := exec.LookPath(n)
		if err != nil {
			return "", fmt.Errorf("%s is not installed: make buildkit-tools builds it (then -tools DIR, or put it on PATH)", n)
		}
		return p, nil
	}
	var bins []string
	for _, n := range []string{"rootlesskit", "buildkitd", "buildctl"} {
		p, err := find(n)
		if err != nil {
			return nil, err
		}
		bins = append(bins, p)
	}
	xdg := filepath.Join(root, "xdg")
	if err := os.MkdirAll(xdg, 0o700); err != nil {
		return nil, err
	}
	k := &buildkit{root: root, sock: filepath.Join(root, "buildkitd.sock"), buildctl: bins[2], contexts: map[string]string{}}
	logf, err := os.Create(filepath.Join(root, "buildkitd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	daemon := []string{bins[1], "--oci-worker=true", "--containerd-worker=false", "--oci-worker-snapshotter=overlayfs",
		"--root", filepath.Join(root, "state"), "--addr", "unix://" + k.sock}
	if !inUserNS() {
		daemon = append([]string{bins[0], "--net=host", "--copy-up=/etc", "--disable-host-loopback"}, daemon...)
	}
	// Inside the user namespace strata's re-exec made (this command's
	// own, as root of it with the user's sub-uids), buildkitd runs as
	// it does under RootlessKit.
	k.daemon = exec.Command(daemon[0], daemon[1:]...)
	k.daemon.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+xdg)
	k.daemon.Stdout, k.daemon.Stderr = logf, logf
	k.daemon.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.daemon.Start(); err != nil {
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- k.daemon.Wait() }()
	for deadline := time.Now().Add(60 * time.Second); ; {
		if err := exec.Command(k.buildctl, "--addr", "unix://"+k.sock, "debug", "workers").Run(); err == nil {
			return k, nil
		}
		select {
		case err := <-exited:
			k.daemon = nil
			log, _ := os.ReadFile(filepath.Join(root, "buildkitd.log"))
			k.remove()
			return nil, fmt.Errorf("buildkitd exited (%v):\n%s", err, tail(string(log)))
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(root, "buildkitd.log"))
			k.remove()
			return nil, fmt.Errorf("buildkitd did not answer within 60 s:\n%s", tail(string(log)))
		}
	}
}

// inUserNS reports whether this process runs in a user namespace other
// than the initial one (whose uid_map maps every uid to itself).
func inUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func (k *buildkit) name() string { return "buildkit" }

// base records the manifest strata exported to layout:name; builds give
// it to FROM name as a named context (oci-layout://bases@DIGEST).
func (k *buildkit) base(layout, name string) error {
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("%s/index.json: %w", layout, err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == name {
			k.layout, k.contexts[name] = layout, m.Digest
			return nil
		}
	}
	return fmt.Errorf("%s holds no image named %s", layout, name)
}

func (k *buildkit) build(j job, dir string, t *timings, edit string) error {
	args := []string{"--addr", "unix://" + k.sock, "build", "--progress=plain", "--frontend", "dockerfile.v0",
		"--opt", "cmdline=", // the built-in frontend, whatever `# syntax=` says
		"--local", "context=" + j.context, "--local", "dockerfile=" + filepath.Dir(j.dockerfile),
		"--opt", "filename=" + filepath.Base(j.dockerfile)}
	if k.layout != "" {
		args = append(args, "--oci-layout", "bases="+k.layout)
	}
	for _, name := range slices.Sorted(maps.Keys(k.contexts)) {
		args = append(args, "--opt", "context:"+name+"=oci-layout://bases@"+k.contexts[name])
	}
	for _, key := range slices.Sorted(maps.Keys(j.args)) {
		args = append(args, "--opt", "build-arg:"+key+"="+j.args[key])
	}
	if j.target != "" {
		args = append(args, "--opt", "target="+j.target)
	}
	for _, id := range slices.Sorted(maps.Keys(j.secrets)) {
		p := filepath.Join(dir, "secret-"+id)
		if err := os.WriteFile(p, []byte(j.secrets[id]), 0o600); err != nil {
			return err
		}
		args = append(args, "--secret", "id="+id+",src="+p)
	}
	run := func(extra ...string) error {
		cmd := exec.Command(k.buildctl, append(slices.Clone(args), extra...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("buildctl build: %v\n%s", err, tail(out.String()))
		}
		return nil
	}
	return timed(t, j, edit, func() error { return run() }, func() error {
		// name=out:out makes the manifest's ref.name "out".
		return run("--output", "type=oci,tar=false,name=out:out,dest="+filepath.Join(dir, "buildkit"))
	})
}

// remove stops buildkitd (SIGTERM, then SIGKILL after 10 s) and deletes
// its state, whose files belong to sub-uids.
func (k *buildkit) remove() {
	if k.daemon != nil && k.daemon.Process != nil {
		pg := -k.daemon.Process.Pid
		_ = syscall.Kill(pg, syscall.SIGTERM)
		for i := 0; i < 40 && syscall.Kill(pg, 0) == nil; i++ {
			time.Sleep(250 * time.Millisecond)
		}
		_ = syscall.Kill(pg, syscall.SIGKILL)
		k.daemon = nil
	}
	removeInUserNS(k.root)
}

// removeInUserNS deletes dir inside the user's user namespace (as
// `buildah unshare` makes it), where files of its sub-uids can be
// removed, then what is left from outside.
func removeInUserNS(dir string) {
	if _, err := exec.LookPath("buildah"); err == nil {
		_ = exec.Command("buildah", "unshare", "rm", "-rf", dir).Run()
	}
	_ = os.RemoveAll(dir)
}
