package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// TestPullPolicy: a registry base pulled once is named in the store by its
// tag (as podman pull names it); after the tag moves at the registry,
// PullPolicy("never") and ("missing") build from the image the store holds
// without asking the registry, "always" (the default) from the new one;
// "never" with a tag the store lacks fails before any container.
func TestPullPolicy(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	base := busyboxTar(t)
	pub := openSession(t, builder.WithInsecureRegistries())
	push := func(v string) {
		t.Helper()
		if _, err := pub.Build(ctx, builder.FromArchive(base).RunCommands([]string{"echo " + v + " > /version"}),
			builder.ExportTo("docker://"+reg+"/fixture/pull:1")); err != nil {
			t.Fatal(err)
		}
	}
	push("v1")

	root := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
	graph, run := filepath.Join(root, "graph"), filepath.Join(root, "run")
	img := builder.FromRegistry(reg + "/fixture/pull:1").RunCommands([]string{"cat /version > /seen"})
	build := func(policy string, img builder.Image) (string, error) {
		t.Helper()
		opts := []builder.Option{builder.WithStore(graph, run), builder.WithInsecureRegistries()}
		if policy != "" {
			opts = append(opts, builder.PullPolicy(policy))
		}
		s, err := builder.Open(ctx, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		res, err := s.Build(ctx, img)
		if err != nil {
			return "", err
		}
		return readFromImage(t, s, res.ImageID, "seen"), nil
	}
	if got, err := build("", img); err != nil || got != "v1\n" {
		t.Fatalf("first build: %q, %v", got, err)
	}
	s, err := builder.Open(ctx, builder.WithStore(graph, run))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store().Image(reg + "/fixture/pull:1"); err != nil {
		t.Errorf("the pulled base is not named %s/fixture/pull:1 in the store: %v", reg, err)
	}
	s.Close()

	push("v2")
	for _, c := range []struct{ policy, want string }{{"never", "v1\n"}, {"missing", "v1\n"}, {"always", "v2\n"}, {"never", "v2\n"}} {
		if got, err := build(c.policy, img); err != nil || got != c.want {
			t.Errorf("after the tag moved, pull policy %s: %q, %v; want %q", c.policy, got, err, c.want)
		}
	}
	_, err = build("never", builder.FromRegistry(reg+"/fixture/absent:1").RunCommands([]string{"true"}))
	if err == nil || !strings.Contains(err.Error(), "pull policy is never") {
		t.Errorf("never, with a tag the store lacks: %v", err)
	}
}
