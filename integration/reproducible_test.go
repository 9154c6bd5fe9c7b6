package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
)

// TestSourceDateEpochReproducible builds one definition in two empty
// stores, seconds apart, with SourceDateEpoch: the manifest digests must
// match.
func TestSourceDateEpochReproducible(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	base := busyboxTar(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app", "main.sh"), "echo hi\n")
	writeFile(t, filepath.Join(src, "app", "data", "x.txt"), "data\n")
	img := builder.FromArchive(base).
		RunCommands([]string{"mkdir -p /out && echo built > /out/built && touch /out/a /out/b"}).
		AddLocalDir(filepath.Join(src, "app"), "/app", builder.Copy()).
		Env(map[string]string{"MODE": "prod"}).
		Cmd([]string{"/bin/sh", "/app/main.sh"})
	epoch := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var digests []string
	out := t.TempDir()
	for i := range 2 {
		s := openSession(t, builder.SourceDateEpoch(epoch))
		res, err := s.Build(ctx, img, builder.ExportTo("oci:"+filepath.Join(out, fmt.Sprintf("sde-%d", i))))
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		digests = append(digests, res.ManifestDigest)
		time.Sleep(1100 * time.Millisecond) // a different second for the second build
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds with SourceDateEpoch gave %s and %s", digests[0], digests[1])
	}
}

// TestReproducibleCleanup: a step that writes dated logs (as apt and dpkg
// do) makes two builds differ even with SourceDateEpoch; with
// ReproducibleCleanup the logs are removed before the commit and the two
// builds give one manifest digest. The step also sees SOURCE_DATE_EPOCH.
func TestReproducibleCleanup(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	base := busyboxTar(t)
	img := builder.FromArchive(base).RunCommands([]string{
		"mkdir -p /var/log/apt /var/cache/ldconfig",
		// busybox's date has no %N: a build within the same second as
		// the last would write the same date, so each log also gets a
		// value no other build writes, as a real log's pids and times do.
		"date +%s > /var/log/dpkg.log && cat /proc/sys/kernel/random/uuid >> /var/log/dpkg.log && cat /proc/sys/kernel/random/uuid > /var/log/apt/history.log && cat /proc/sys/kernel/random/uuid > /var/cache/ldconfig/aux-cache",
		"echo $SOURCE_DATE_EPOCH > /epoch",
	})
	epoch := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	build := func(opts ...builder.Option) string {
		s := openSession(t, append(opts, builder.SourceDateEpoch(epoch))...)
		res, err := s.Build(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFromImage(t, s, res.ImageID, "epoch"); got != "1704164645\n" {
			t.Errorf("the step saw SOURCE_DATE_EPOCH=%q", got)
		}
		if len(opts) > 0 && (hasFile(t, s, res.ImageID, "var/log/dpkg.log") || hasFile(t, s, res.ImageID, "var/log/apt/history.log")) {
			t.Error("ReproducibleCleanup left the logs")
		}
		return res.ManifestDigest
	}
	if a, b := build(), build(); a == b {
		t.Errorf("dated logs gave one digest without the cleanup (%s): the test proves nothing", a)
	}
	if a, b := build(builder.ReproducibleCleanup()), build(builder.ReproducibleCleanup()); a != b {
		t.Errorf("with ReproducibleCleanup two builds gave %s and %s", a, b)
	}
}
