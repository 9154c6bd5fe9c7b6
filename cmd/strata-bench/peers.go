package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratabuild/strata/pkg/rootfs"
)

// peerCase is a Dockerfile timed command against command: strata build,
// buildah bud --layers and BuildKit's buildctl, a process per build, fresh
// stores, through strata-compare (which also checks that the images are
// the same).
type peerCase struct {
	name  string
	write func(dir string) (edit string, err error)
	// minbase: FROM minbase is the Debian minbase archive (-minbase)
	minbase bool
}

var peerCases = []peerCase{
	{"a: 10 steps on busybox", func(dir string) (string, error) {
		if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
			return "", err
		}
		for i := 0; i < 10; i++ {
			if err := os.WriteFile(filepath.Join(dir, "app", fmt.Sprintf("f%d.txt", i)), []byte(strings.Repeat("x", 100*i)), 0o644); err != nil {
				return "", err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "app", "data.txt"), []byte("data\n"), 0o644); err != nil {
			return "", err
		}
		return "app/data.txt", os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile("busybox")), 0o644)
	}, false},
	{"b: COPY of 20,000 files + 2 RUN", func(dir string) (string, error) {
		for d := 0; d < 100; d++ {
			sub := filepath.Join(dir, "tree", fmt.Sprintf("d%02d", d))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return "", err
			}
			for f := 0; f < 200; f++ {
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), []byte(fmt.Sprintf("%d/%d\n", d, f)), 0o644); err != nil {
					return "", err
				}
			}
		}
		df := "FROM busybox\nCOPY tree /tree\nRUN find /tree -type f | wc -l > /count\nRUN du -s /tree > /du\n"
		return "tree/d07/f042", os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644)
	}, false},
	{"c: apt-get install on minbase", func(dir string) (string, error) {
		if err := os.WriteFile(filepath.Join(dir, "app.txt"), []byte("app\n"), 0o644); err != nil {
			return "", err
		}
		// The mirror serves a dated snapshot whose Release files have
		// expired (as in TestMinbaseAptInstall).
		df := "FROM minbase\n" +
			"RUN apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false update -q && " +
			"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends hello && " +
			// apt's dated logs and caches differ from build to build.
			"rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log\n" +
			"COPY app.txt /app.txt\nRUN hello > /greeting\n"
		return "app.txt", os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644)
	}, true},
}

// floorTarCopy times `tar -c | tar -x` of case b's tree, the floor of
// writing its files once.
func floorTarCopy(work string) (float64, error) {
	src := filepath.Join(work, "floor-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return 0, err
	}
	if _, err := peerCases[1].write(src); err != nil {
		return 0, err
	}
	dst := filepath.Join(work, "floor-dst")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return 0, err
	}
	start := time.Now()
	if out, err := exec.Command("sh", "-c", "tar -C "+src+"/tree -cf - . | tar -C "+dst+" -xf -").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("tar | tar: %v: %s", err, out)
	}
	return time.Since(start).Seconds(), nil
}

// floorRunc times `runc run` of /bin/true in a rootless busybox bundle,
// the floor of one RUN step's container; it returns the median of five
// runs (the bundle is made once).
func floorRunc(work string) (float64, error) {
	bundle := filepath.Join(work, "runc-bundle")
	rootfsDir := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfsDir, 0o755); err != nil {
		return 0, err
	}
	tarPath := filepath.Join(work, "runc-busybox.tar")
	if err := rootfs.WriteBusyboxFile(tarPath); err != nil {
		return 0, err
	}
	if out, err := exec.Command("tar", "-C", rootfsDir, "-xf", tarPath).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("unpacking busybox: %v: %s", err, out)
	}
	spec := exec.Command("runc", "spec", "--rootless")
	spec.Dir = bundle
	if out, err := spec.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("runc spec --rootless: %v: %s", err, out)
	}
	cfgPath := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return 0, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return 0, err
	}
	proc, _ := cfg["process"].(map[string]any)
	if proc == nil {
		return 0, fmt.Errorf("runc spec wrote no process")
	}
	proc["terminal"], proc["args"] = false, []string{"/bin/true"}
	if b, err = json.Marshal(cfg); err != nil {
		return 0, err
	}
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return 0, err
	}
	var ts []float64
	for i := range 5 {
		run := exec.Command("runc", "--root", filepath.Join(work, "runc-state"), "run", fmt.Sprintf("strata-bench-floor-%d-%d", os.Getpid(), i))
		run.Dir = bundle
		start := time.Now()
		if out, err := run.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("runc run /bin/true: %v: %s", err, out)
		}
		ts = append(ts, time.Since(start).Seconds())
	}
	return median(ts), nil
}

// runPeers times every case against each reference, interleaved, rounds
// times, and prints medians with their range and the ratios.
func runPeers(work, compare, cli, tools, minbase string, rounds int) error {
	refs := []string{"buildah"}
	if _, err := os.Stat(filepath.Join(tools, "buildkitd")); err == nil {
		refs = append(refs, "buildkit")
	} else {
		fmt.Printf("(no BuildKit column: %s/buildkitd is missing; make buildkit-tools builds it)\n", tools)
	}
	_ = exec.Command("rm", "-rf", work).Run()
	// samples[case][metric][tool]
	samples := map[string]map[string]map[string][]float64{}
	add := func(c, metric, tool string, v float64) {
		if samples[c] == nil {
			samples[c] = map[string]map[string][]float64{}
		}
		if samples[c][metric] == nil {
			samples[c][metric] = map[string][]float64{}
		}
		samples[c][metric][tool] = append(samples[c][metric][tool], v)
	}
	haveMinbase := false
	if st, err := os.Stat(minbase); err == nil && st.Size() > 0 {
		haveMinbase = true
	} else {
		fmt.Printf("(no minbase case: %s is missing; the integration tests make it with mmdebstrap)\n", minbase)
	}
	var floors, runcFloors []float64
	for r := 1; r <= rounds; r++ {
		f, err := floorTarCopy(filepath.Join(work, fmt.Sprintf("floor%d", r)))
		if err != nil {
			return err
		}
		floors = append(floors, f)
		if f, err := floorRunc(filepath.Join(work, fmt.Sprintf("runc%d", r))); err != nil {
			fmt.Printf("(no runc floor this round: %v)\n", err)
		} else {
			runcFloors = append(runcFloors, f)
		}
		for ci, pc := range peerCases {
			if pc.minbase && !haveMinbase {
				continue
			}
			for _, ref := range refs {
				dir := filepath.Join(work, fmt.Sprintf("r%d-c%d-%s", r, ci, ref))
				ctx := filepath.Join(dir, "context")
				if err := os.MkdirAll(ctx, 0o755); err != nil {
					return err
				}
				edit, err := pc.write(ctx)
				if err != nil {
					return err
				}
				args := []string{"-ref", ref, "-tools", tools, "-cli", cli, "-work", filepath.Join(dir, "compare"),
					"-dockerfile", filepath.Join(ctx, "Dockerfile"), "-context", ctx, "-edit", edit}
				if pc.minbase {
					args = append(args, "-base", "minbase="+minbase)
				}
				cmd := exec.Command(compare, args...)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("%s against %s: %v\n%s", pc.name, ref, err, out.String())
				}
				rows := 0
				sc := bufio.NewScanner(&out)
				for sc.Scan() {
					f := strings.Fields(sc.Text())
					var metric string
					switch {
					case len(f) >= 5 && f[0] == "cold":
						metric, f = "cold", f[2:]
					case len(f) >= 5 && f[0] == "no-change":
						metric, f = "no-change", f[2:]
					case len(f) >= 5 && f[0] == "one-file-edit":
						metric, f = "edit", f[2:]
					default:
						continue
					}
					s, err1 := strconv.ParseFloat(strings.TrimSuffix(f[0], "s"), 64)
					p, err2 := strconv.ParseFloat(strings.TrimSuffix(f[1], "s"), 64)
					if err1 != nil || err2 != nil {
						continue
					}
					add(pc.name, metric, "strata", s)
					add(pc.name, metric, ref, p)
					rows++
				}
				if rows != 3 {
					return fmt.Errorf("%s against %s: no timings in strata-compare's output (the images differ?):\n%s", pc.name, ref, out.String())
				}
				fmt.Fprintf(os.Stderr, "round %d: %s against %s done\n", r, pc.name, ref)
			}
		}
	}
	fmt.Printf("\ncommand against command, %d rounds interleaved, a process per build, fresh stores (medians [min-max], seconds)\n", rounds)
	fmt.Printf("%-34s %-9s %-22s", "case", "", "strata")
	for _, ref := range refs {
		fmt.Printf(" %-22s %7s", ref, "ratio")
	}
	fmt.Println()
	for _, pc := range peerCases {
		if samples[pc.name] == nil {
			continue
		}
		for _, metric := range []string{"cold", "no-change", "edit"} {
			m := samples[pc.name][metric]
			fmt.Printf("%-34s %-9s %-22s", pc.name, metric, spread(m["strata"]))
			for _, ref := range refs {
				fmt.Printf(" %-22s %6.2fx", spread(m[ref]), median(m[ref])/median(m["strata"]))
			}
			fmt.Println()
		}
	}
	fmt.Println("(ratio = the peer's median / strata's; above 1 means strata is faster)")
	fmt.Printf("floor: tar -c | tar -x of case b's 20,000 files: %s s\n", spread(floors))
	fmt.Printf("floor: runc run of /bin/true, rootless busybox bundle (median of 5 per round): %s s\n", spread(runcFloors))
	_ = exec.Command("rm", "-rf", work).Run()
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return fmt.Sprintf("%.3f [%.3f-%.3f]", median(s), s[0], s[len(s)-1])
}
