package integration

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// TestSecretFile: a Go step reads a secret as a file (SecretFile) and not
// from its environment; the file, its mount point and the value are in
// no layer, the output is redacted, and a key the secret lacks fails the
// step before any container.
func TestSecretFile(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	const value = "file-s3cret-value"
	sec := builder.SecretFromMap("deploy", map[string]string{"TOKEN": value})
	bb := builder.FromArchive(busyboxTar(t))
	out := &lockedWriter{w: &strings.Builder{}}
	img := bb.RunCommands([]string{
		// The value itself must not be in a command (commands are keyed
		// and in the history): its digest is compared instead.
		`sha256sum /run/secrets/deploy/token | cut -c1-64 > /sum && test -z "$TOKEN" && echo ok > /ok`,
		`stat -c '%a' /run/secrets/deploy/token > /mode && echo "read $(cat /run/secrets/deploy/token)"`,
	}, builder.SecretFile(sec, "TOKEN", "/run/secrets/deploy/token"))
	res, err := s.Build(ctx, img, builder.WithOutput(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := readFromImage(t, s, res.ImageID, "ok"); got != "ok\n" {
		t.Errorf("/ok = %q (the secret was in the environment?)", got)
	}
	if got, want := readFromImage(t, s, res.ImageID, "sum"), fmt.Sprintf("%x\n", sha256.Sum256([]byte(value))); got != want {
		t.Errorf("the step read a file whose digest is %q, want %q", got, want)
	}
	if got := readFromImage(t, s, res.ImageID, "mode"); got != "400\n" {
		t.Errorf("the secret file's mode: %q", got)
	}
	if !strings.Contains(out.String(), "read ***") || holdsSecret(out.String(), value) {
		t.Errorf("output not redacted:\n%s", out.String())
	}
	if hasFile(t, s, res.ImageID, "run/secrets/deploy/token") || hasFile(t, s, res.ImageID, "run/secrets") {
		t.Error("the secret file or its mount point is in the image")
	}
	assertNotInImage(t, s, res.ImageID, value)

	_, err = s.Build(ctx, bb.RunCommands([]string{"true"}, builder.SecretFile(sec, "MISSING", "/run/x")))
	if err == nil || !strings.Contains(err.Error(), "holds no key MISSING") {
		t.Errorf("a missing key: %v", err)
	}
	if c, _ := counts(t, s.Store()); c != 0 {
		t.Errorf("%d working containers left", c)
	}
}
