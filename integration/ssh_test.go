package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// TestSSHAgentMount: a real ssh-agent holding a key the test makes is
// forwarded to RUN --mount=type=ssh (builder.SSH, as --ssh default): ssh-add
// -l inside the step lists the key; the socket is in no layer, and its
// path in no key (a second agent at another path takes the step from the
// cache). A required ssh mount with no agent fails before any container.
func TestSSHAgentMount(t *testing.T) {
	requireRootless(t)
	if testing.Short() {
		t.Skip("installs openssh-client from the mirror")
	}
	for _, tool := range []string{"ssh-agent", "ssh-add", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is needed (openssh-client)", tool)
		}
	}
	base := minbaseTar(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "strata-test-key", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	agent := func(name string) string {
		sock := filepath.Join(dir, name+".sock")
		cmd := exec.Command("ssh-agent", "-D", "-a", sock)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			exec.Command("sleep", "0.05").Run()
		}
		add := exec.Command("ssh-add", key)
		add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v\n%s", err, out)
		}
		return sock
	}
	sock := agent("a")
	writeFile(t, filepath.Join(dir, "Dockerfile"), `FROM minbase
RUN apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false update -q && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-client && \
    rm -rf /var/lib/apt/lists/*
RUN --mount=type=ssh ssh-add -l > /keys && echo "$SSH_AUTH_SOCK" > /sock-path
`)
	s := openSession(t)
	ctx := context.Background()
	df := func(opts ...builder.DockerfileOption) builder.Image {
		return builder.FromDockerfile(filepath.Join(dir, "Dockerfile"),
			append([]builder.DockerfileOption{builder.BuildContext("minbase", builder.FromArchive(base))}, opts...)...)
	}
	res, err := s.Build(ctx, df(builder.SSH("default", sock)))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFromImage(t, s, res.ImageID, "keys"); !strings.Contains(got, "strata-test-key (ED25519)") {
		t.Errorf("ssh-add -l in the step printed %q", got)
	}
	if got := readFromImage(t, s, res.ImageID, "sock-path"); got != "/run/buildkit/ssh_agent.0\n" {
		t.Errorf("SSH_AUTH_SOCK in the step: %q", got)
	}
	if hasFile(t, s, res.ImageID, "run/buildkit/ssh_agent.0") || hasFile(t, s, res.ImageID, "run/buildkit") {
		t.Error("the agent's socket (or its mount point) is in the image")
	}
	priv, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	assertNotInImage(t, s, res.ImageID, strings.TrimSpace(string(priv)))
	assertNotInImage(t, s, res.ImageID, sock)

	// Another agent at another path: the same key, every step cached.
	res2, err := s.Build(ctx, df(builder.SSH("default", agent("b"))))
	if err != nil {
		t.Fatal(err)
	}
	if res2.ImageID != res.ImageID {
		t.Errorf("another agent socket rebuilt the step: %s", cachedFlags(res2))
	}

	// required=true and no agent: an error naming the flag, no container.
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM minbase\nRUN --mount=type=ssh,id=deploy,required=true ssh-add -l\n")
	_, err = s.Build(ctx, df())
	if err == nil || !strings.Contains(err.Error(), "--ssh deploy") {
		t.Errorf("a required ssh mount with no agent: %v", err)
	}
	if c, _ := counts(t, s.Store()); c != 0 {
		t.Errorf("%d working containers left", c)
	}
}
