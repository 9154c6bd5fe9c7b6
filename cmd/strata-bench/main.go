// Command strata-bench times strata against Debian's `buildah bud --layers`
// on the same 10-step recipe over a busybox base, in the same run, and prints
// both with their ratios: cold build, no-change rebuild, and rebuild after
// editing one copied file. Run it as an ordinary user (make bench does).
// A last case has two runners with empty stores share a registry cache
// (CacheTo on A, CacheFrom on B) and reports how many steps B ran.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/rootfs"
)

func main() {
	if builder.InitReexec() {
		return
	}
	makeBase := flag.String("make-base", "", "only write a busybox rootfs tarball to this path and exit")
	work := flag.String("work", "/tmp/strata-bench", "scratch directory (emptied first)")
	peers := flag.Bool("peers", false, "time strata build against buildah bud and BuildKit's buildctl, command against command (needs -compare and -cli)")
	compare := flag.String("compare", "", "the strata-compare binary (-peers)")
	cli := flag.String("cli", "", "the strata binary (-peers)")
	tools := flag.String("tools", "", "the directory of buildkitd, buildctl and rootlesskit (-peers; make buildkit-tools)")
	rounds := flag.Int("rounds", 3, "rounds of every case (-peers)")
	attestRun := flag.Bool("attest", false, "time what provenance, SBOM and signing add to strata build of a Python app on the minbase (needs -cli and -sbom)")
	sbomTool := flag.String("sbom", "", "the strata-sbom binary (-attest)")
	minbase := flag.String("minbase", "/var/tmp/strata-test-cache/minbase-bookworm-v2.tar", "the Debian minbase archive for the apt case (-peers)")
	flag.Parse()
	if *makeBase != "" {
		if err := rootfs.WriteBusyboxFile(*makeBase); err != nil {
			fail(err)
		}
		return
	}
	if *attestRun {
		if *cli == "" || *sbomTool == "" {
			fail(fmt.Errorf("-attest needs -cli and -sbom"))
		}
		if err := runAttest(*work, *cli, *sbomTool, *minbase, *rounds); err != nil {
			fail(err)
		}
		return
	}
	if *peers {
		if *compare == "" || *cli == "" {
			fail(fmt.Errorf("-peers needs -compare and -cli"))
		}
		if err := runPeers(*work, *compare, *cli, *tools, *minbase, *rounds); err != nil {
			fail(err)
		}
		return
	}
	if err := run(*work); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "strata-bench:", err)
	os.Exit(1)
}

// The recipe: 4 RUN, COPY of a directory, 4 RUN, CMD = 10 steps on the base.
var runs = []string{
	"mkdir -p /work && echo 1 > /work/1",
	"echo 2 > /work/2",
	"seq 1 1000 > /work/seq",
	"sha256sum /work/seq > /work/seq.sum",
}
var runsAfter = []string{
	"cat /app/data.txt > /work/data",
	"ls -1 /app > /work/listing", // names only: the two sides edit the context at different minutes
	"echo 8 > /work/8",
	"wc -l /work/seq > /work/count",
}

func recipe(base, app string) builder.Image {
	img := builder.FromArchive(base)
	for _, r := range runs {
		img = img.RunCommands([]string{r})
	}
	img = img.AddLocalDir(app, "/app", builder.Copy())
	for _, r := range runsAfter {
		img = img.RunCommands([]string{r})
	}
	return img.Cmd([]string{"cat", "/work/data"})
}

func dockerfile(from string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", from)
	for _, r := range runs {
		fmt.Fprintf(&b, "RUN %s\n", r)
	}
	b.WriteString("COPY app/ /app/\n")
	for _, r := range runsAfter {
		fmt.Fprintf(&b, "RUN %s\n", r)
	}
	b.WriteString(`CMD ["cat", "/work/data"]` + "\n")
	return b.String()
}

type times struct{ cold, warm, edit time.Duration }

func run(work string) error {
	_ = exec.Command("rm", "-rf", work).Run()
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	rootTar := filepath.Join(work, "busybox-rootfs.tar")
	if err := rootfs.WriteBusyboxFile(rootTar); err != nil {
		return err
	}
	ctxDir := filepath.Join(work, "context")
	app := filepath.Join(ctxDir, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		return err
	}
	data := filepath.Join(app, "data.txt")
	write := func(s string) error { return os.WriteFile(data, []byte(s), 0o644) }
	if err := write("v1\n"); err != nil {
		return err
	}
	ctx := context.Background()

	// strata
	s, err := builder.Open(ctx, builder.WithStore(filepath.Join(work, "strata", "graph"), filepath.Join(work, "strata", "run")))
	if err != nil {
		return err
	}
	defer s.Close()
	// Import the base outside the timings, as the buildah side does.
	if _, err := s.Build(ctx, builder.FromArchive(rootTar)); err != nil {
		return err
	}
	var st times
	timeIt := func(d *time.Duration, want int) error {
		t0 := time.Now()
		res, err := s.Build(ctx, recipe(rootTar, app))
		*d = time.Since(t0)
		if err != nil {
			return err
		}
		ran := 0
		for _, x := range res.Steps {
			if !x.Cached {
				ran++
			}
		}
		if ran != want {
			return fmt.Errorf("strata ran %d steps, expected %d", ran, want)
		}
		return nil
	}
	if err := timeIt(&st.cold, 10); err != nil {
		return err
	}
	if err := timeIt(&st.warm, 0); err != nil {
		return err
	}
	if err := write("v2\n"); err != nil {
		return err
	}
	if err := timeIt(&st.edit, 6); err != nil {
		return err
	}

	// buildah bud --layers, same recipe, own store.
	if err := write("v1\n"); err != nil {
		return err
	}
	bt, err := buildahTimes(work, rootTar, ctxDir, write)
	if err != nil {
		fmt.Printf("buildah side skipped: %v\n", err)
	}
	fmt.Printf("\n10-step image on busybox (strata vs buildah bud --layers, same run)\n")
	fmt.Printf("%-28s %10s %10s %8s\n", "case", "strata", "buildah", "ratio")
	row := func(name string, a, b time.Duration) {
		ratio := "-"
		if b > 0 {
			ratio = fmt.Sprintf("%.1fx", b.Seconds()/a.Seconds())
		}
		fmt.Printf("%-28s %9.3fs %9.3fs %8s\n", name, a.Seconds(), b.Seconds(), ratio)
	}
	row("cold build", st.cold, bt.cold)
	row("no-change rebuild", st.warm, bt.warm)
	row("rebuild after 1-file edit", st.edit, bt.edit)
	fmt.Printf("(ratio = buildah time / strata time; above 1 means strata is faster)\n")
	fmt.Printf("per-step cold overhead: strata %.3fs, buildah %.3fs\n", st.cold.Seconds()/10, bt.cold.Seconds()/10)

	// Two runners sharing a registry cache.
	if err := write("v1\n"); err != nil {
		return err
	}
	if err := sharedCache(ctx, work, rootTar, app); err != nil {
		fmt.Printf("\nshared registry cache case skipped: %v\n", err)
	}
	return nil
}

// sharedCache times two runners with empty stores sharing one cache
// repository in a local docker-registry: A builds the recipe with CacheTo
// (its time includes the base import and waiting for the pushes), then B
// builds it with CacheFrom.
func sharedCache(ctx context.Context, work, rootTar, app string) error {
	addr, stop, err := startRegistry(filepath.Join(work, "registry"))
	if err != nil {
		return err
	}
	defer stop()
	repo := addr + "/bench/cache"
	runner := func(name string, opt builder.BuildOption) (time.Duration, *builder.Result, error) {
		dir := filepath.Join(work, "runner-"+name)
		s, err := builder.Open(ctx, builder.WithStore(filepath.Join(dir, "graph"), filepath.Join(dir, "run")),
			builder.WithInsecureRegistries())
		if err != nil {
			return 0, nil, err
		}
		defer s.Close()
		var out bytes.Buffer
		t0 := time.Now()
		res, err := s.Build(ctx, recipe(rootTar, app), opt, builder.WithOutput(&out))
		d := time.Since(t0)
		if err != nil {
			return d, nil, fmt.Errorf("runner %s: %w", name, err)
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "cache-") {
				fmt.Printf("runner %s: %s\n", name, l)
			}
		}
		return d, res, nil
	}
	ta, _, err := runner("A", builder.CacheTo(repo))
	if err != nil {
		return err
	}
	tb, resB, err := runner("B", builder.CacheFrom(repo))
	if err != nil {
		return err
	}
	ran, remote := 0, 0
	for _, x := range resB.Steps {
		switch {
		case x.Remote:
			remote++
		case !x.Cached:
			ran++
		}
	}
	fmt.Printf("\ntwo runners sharing a registry cache (empty stores, %d steps with the base)\n", len(resB.Steps))
	fmt.Printf("runner A cold, CacheTo:   %9.3fs (base import and pushes included)\n", ta.Seconds())
	fmt.Printf("runner B, CacheFrom:      %9.3fs (%.2fx A's time)\n", tb.Seconds(), tb.Seconds()/ta.Seconds())
	fmt.Printf("steps B ran: %d (target 0); from the registry: %d\n", ran, remote)
	return nil
}

// startRegistry starts Debian's docker-registry on a free 127.0.0.1 port
// with its storage under dir.
func startRegistry(dir string) (addr string, stop func(), err error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return "", nil, fmt.Errorf("docker-registry not installed (apt-get install docker-registry)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = l.Addr().String()
	l.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("docker-registry at %s did not start: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func buildahTimes(work, rootTar, ctxDir string, write func(string) error) (times, error) {
	var bt times
	if _, err := exec.LookPath("buildah"); err != nil {
		return bt, fmt.Errorf("buildah CLI not installed (apt-get install --no-install-recommends buildah)")
	}
	root := filepath.Join(work, "buildah")
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Join(root, "xdg"))
	_ = os.MkdirAll(filepath.Join(root, "xdg"), 0o700)
	global := []string{"--root", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run"), "--storage-driver", "overlay"}
	bud := func(args ...string) error {
		cmd := exec.Command("buildah", append(append([]string{}, global...), args...)...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("buildah %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return nil
	}
	// Import the base outside the timings: a one-step build from scratch.
	baseCtx := filepath.Join(work, "basectx")
	_ = os.MkdirAll(baseCtx, 0o755)
	if err := os.Link(rootTar, filepath.Join(baseCtx, "rootfs.tar")); err != nil {
		if err := copyFile(rootTar, filepath.Join(baseCtx, "rootfs.tar")); err != nil {
			return bt, err
		}
	}
	_ = os.WriteFile(filepath.Join(baseCtx, "Dockerfile"), []byte("FROM scratch\nADD rootfs.tar /\n"), 0o644)
	if err := bud("bud", "--runtime", "runc", "--network", "host", "-t", "localhost/bench-base", baseCtx); err != nil {
		return bt, err
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile("localhost/bench-base")), 0o644); err != nil {
		return bt, err
	}
	build := func(d *time.Duration) error {
		t0 := time.Now()
		err := bud("bud", "--layers", "--runtime", "runc", "--network", "host", "-t", "localhost/bench", ctxDir)
		*d = time.Since(t0)
		return err
	}
	if err := build(&bt.cold); err != nil {
		return bt, err
	}
	if err := build(&bt.warm); err != nil {
		return bt, err
	}
	if err := write("v2\n"); err != nil {
		return bt, err
	}
	if err := build(&bt.edit); err != nil {
		return bt, err
	}
	return bt, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
