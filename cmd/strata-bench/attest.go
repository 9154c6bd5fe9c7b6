package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.podman.io/image/v5/signature/sigstore"
)

// attestModes are the variants timed: the same cached build written out
// with no attestation, the default provenance, an SBOM too, and (pushes
// only) signed.
var attestModes = []struct {
	name string
	args []string
	push bool // pushes only
}{
	{"none", []string{"--provenance=false"}, false},
	{"provenance", nil, false},
	{"sbom", []string{"--sbom"}, false},
	{"sbom+signed", []string{"--sbom", "--sign-by-sigstore-private-key", "KEY", "--sign-passphrase-file", "PASS"}, true},
}

// runAttest times what provenance, SBOM and signing add to strata build of
// a Python app image on the Debian minbase (python3-minimal and hello from
// the mirror the minbase names, 51 app files, CMD): the build is made once,
// then each round writes it out with each mode, to a push (layers already
// in the registry after the first) and to a fresh oci: layout.
func runAttest(work, cli, sbomTool, minbase string, rounds int) error {
	if _, err := os.Stat(minbase); err != nil {
		return fmt.Errorf("-attest needs the minbase archive %s (make test makes it): %w", minbase, err)
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	ctxDir := filepath.Join(work, "ctx")
	if err := os.MkdirAll(filepath.Join(ctxDir, "app"), 0o755); err != nil {
		return err
	}
	files := map[string]string{"Dockerfile": "FROM minbase\n" +
		"RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3-minimal hello && rm -rf /var/lib/apt/lists/*\n" +
		"COPY app/ /app/\nCMD [\"python3\", \"/app/main.py\"]\n", "app/main.py": "print('hi')\n"}
	for i := 1; i <= 50; i++ {
		files[fmt.Sprintf("app/mod%d.py", i)] = fmt.Sprintf("def f(): return %d\n", i)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	keys, err := sigstore.GenerateKeyPair([]byte("bench"))
	if err != nil {
		return err
	}
	key, pass, regD := filepath.Join(work, "key"), filepath.Join(work, "pass"), filepath.Join(work, "registries.d")
	reg, stop, err := startRegistry(filepath.Join(work, "registry"))
	if err != nil {
		return err
	}
	defer stop()
	if err := os.MkdirAll(regD, 0o755); err != nil {
		return err
	}
	for p, data := range map[string]string{key: string(keys.PrivateKey), pass: "bench\n",
		filepath.Join(regD, "sigstore.yaml"): "docker:\n  " + reg + ":\n    use-sigstore-attachments: true\n"} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			return err
		}
	}
	common := []string{"build", "--progress=plain", "--store", filepath.Join(work, "graph"), "--runroot", filepath.Join(work, "run"),
		"--build-context", "minbase=archive:" + minbase, "--insecure-registry", "--registries.d", regD}
	strata := func(args ...string) (float64, string, error) {
		cmd := exec.Command(cli, append(append(append([]string(nil), common...), args...), ctxDir)...)
		cmd.Env = append(os.Environ(), "STRATA_SBOM="+sbomTool)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, "", fmt.Errorf("strata %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return time.Since(start).Seconds(), string(out), nil
	}
	if _, _, err := strata(); err != nil {
		return err
	}
	// The layers go to the registry once, before the timed pushes.
	if _, _, err := strata("--provenance=false", "--push", reg+"/app-warm:0"); err != nil {
		return err
	}
	pushT := map[string][]float64{}
	ociT := map[string][]float64{}
	for round := 1; round <= rounds; round++ {
		for _, m := range attestModes {
			args := make([]string, len(m.args))
			for i, a := range m.args {
				args[i] = strings.NewReplacer("KEY", key, "PASS", pass).Replace(a)
			}
			d, _, err := strata(append(args, "--push", fmt.Sprintf("%s/app-%s:%d", reg, strings.ReplaceAll(m.name, "+", "-"), round))...)
			if err != nil {
				return err
			}
			pushT[m.name] = append(pushT[m.name], d)
			if m.push {
				continue
			}
			d, _, err = strata(append(args, "--output", fmt.Sprintf("oci:%s/out-%s-%d:app", work, m.name, round))...)
			if err != nil {
				return err
			}
			ociT[m.name] = append(ociT[m.name], d)
		}
	}
	fmt.Printf("== what attestations add: strata build of a Python app on the minbase, every step cached, %d rounds, medians [min-max], seconds\n", rounds)
	fmt.Println("| output | " + strings.Join(modeNames(), " | ") + " |")
	fmt.Println("| --- |" + strings.Repeat(" --- |", len(attestModes)))
	row := func(what string, t map[string][]float64) {
		cells := []string{}
		for _, m := range attestModes {
			cells = append(cells, spread(t[m.name]))
		}
		fmt.Printf("| %s | %s |\n", what, strings.Join(cells, " | "))
	}
	row("push (the layers already in the registry)", pushT)
	row("oci:DIR:TAG (layers compressed each time)", ociT)
	sizes, err := attestationSizes(filepath.Join(work, fmt.Sprintf("out-sbom-%d", rounds)))
	if err != nil {
		return err
	}
	fmt.Println("attestation sizes:", sizes)
	return os.RemoveAll(work)
}

func modeNames() []string {
	var out []string
	for _, m := range attestModes {
		out = append(out, m.name)
	}
	return out
}

// attestationSizes reads an OCI layout's referrers indexes and says how
// large each statement is.
func attestationSizes(dir string) (string, error) {
	read := func(v any, parts ...string) error {
		b, err := os.ReadFile(filepath.Join(append([]string{dir}, parts...)...))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	type desc struct {
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations"`
	}
	var idx struct{ Manifests []desc }
	if err := read(&idx, "index.json"); err != nil {
		return "", err
	}
	var out []string
	for _, m := range idx.Manifests {
		if !strings.HasPrefix(m.Annotations["org.opencontainers.image.ref.name"], "sha256-") {
			continue
		}
		var refs struct{ Manifests []desc }
		if err := read(&refs, "blobs", "sha256", strings.TrimPrefix(m.Digest, "sha256:")); err != nil {
			return "", err
		}
		for _, r := range refs.Manifests {
			var am struct{ Layers []desc }
			if err := read(&am, "blobs", "sha256", strings.TrimPrefix(r.Digest, "sha256:")); err != nil {
				return "", err
			}
			out = append(out, fmt.Sprintf("%s %.1f KB", r.Annotations["in-toto.io/predicate-type"], float64(am.Layers[0].Size)/1024))
		}
	}
	return strings.Join(out, ", "), nil
}
