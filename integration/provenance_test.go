package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stratabuild/strata/attest"
)

// attestSetup is what the attestation tests share: the CLI, a busybox
// rootfs, a registry, a work directory and the flags of a store in it.
func attestSetup(t *testing.T) (bin, busybox, reg, root string, store []string) {
	t.Helper()
	requireRootless(t)
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed (make setup installs it)")
	}
	bin = strataCLI(t)
	busybox = busyboxTar(t)
	reg = startRegistry(t)
	root = t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
	store = []string{"--store", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run")}
	return bin, busybox, reg, root, store
}

// layoutBlob reads blob d of the OCI layout dir.
func layoutBlob(t *testing.T, dir, d string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
	if err != nil {
		t.Fatalf("blob %s of %s: %v", d, dir, err)
	}
	return b
}

// skopeoRaw returns skopeo inspect --raw of ref.
func skopeoRaw(t *testing.T, ref string) ([]byte, error) {
	t.Helper()
	args := []string{"inspect", "--raw"}
	if strings.HasPrefix(ref, "docker://") {
		args = append(args, "--tls-verify=false")
	}
	return exec.Command("skopeo", append(args, ref)...).Output()
}

func digestOf(s string) digest.Digest { return digest.Digest(s) }

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// regexpFind returns the first group of re's first match in s, or "".
func regexpFind(re, s string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if len(m) < 2 {
		return ""
	}
	return m[1]
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestProvenance: strata build attaches a SLSA provenance to a tagged
// oci: layout and to a push (Debian's docker-registry, which lacks the
// referrers API: the sha256-<hex> index); skopeo reads the referrers
// index and the artifact (its subject, its artifactType); the statement
// records the Dockerfile, the build argument, the base and the inputs by
// digest and holds no secret value or host path; strata verify
// reproduces every key from the unchanged context, names the step and
// the file after an edit, and refuses an attestation whose blob was
// replaced; --provenance=false attaches nothing.
func TestProvenance(t *testing.T) {
	bin, busybox, reg, root, store := attestSetup(t)
	const secretValue = "tok-value-5f1c8e29d7"
	secretFile := filepath.Join(root, "token")
	writeFile(t, secretFile, secretValue)
	ctxDir := filepath.Join(root, "ctx")
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), `FROM busybox
ARG GREETING=hi
COPY app/ /app/
RUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo $GREETING > /greeting
CMD ["cat", "/greeting"]
`)
	writeFile(t, filepath.Join(ctxDir, "app", "main.py"), "print('main')\n")
	writeFile(t, filepath.Join(ctxDir, "app", "lib.py"), "X = 1\n")
	layout := filepath.Join(root, "layout")
	common := append([]string{"--build-context", "busybox=archive:" + busybox, "--secret", "id=tok,src=" + secretFile}, store...)

	r := runCLI(t, bin, append(append([]string{"build", "--progress=plain", "--build-arg", "GREETING=hello",
		"--output", "oci:" + layout + ":v1", "--push", reg + "/app:v1", "--insecure-registry"}, common...), ctxDir)...)
	if r.code != 0 {
		t.Fatalf("build exited %d:\n%s", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, "provenance sha256:"); n != 2 {
		t.Errorf("%d provenance lines, want one for the layout and one for the push:\n%s", n, r.stderr)
	}

	// The layout: the image, and its referrers index under the tag
	// schema's name, read by skopeo.
	man, err := skopeoRaw(t, "oci:"+layout+":v1")
	if err != nil {
		t.Fatalf("skopeo inspect oci:%s:v1: %v", layout, err)
	}
	subject := "sha256:" + sha256Hex(man)
	checkReferrers := func(where string, raw []byte) string {
		t.Helper()
		var idx v1.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			t.Fatalf("%s: the referrers index does not parse: %v\n%s", where, err, raw)
		}
		if idx.MediaType != v1.MediaTypeImageIndex || len(idx.Manifests) != 1 {
			t.Fatalf("%s: referrers index %s with %d manifests, want 1:\n%s", where, idx.MediaType, len(idx.Manifests), raw)
		}
		m := idx.Manifests[0]
		if m.ArtifactType != attest.MediaTypeInToto || m.Annotations[attest.AnnotationPredicateType] != attest.PredicateSLSAProvenance {
			t.Errorf("%s: referrer %+v", where, m)
		}
		return m.Digest.String()
	}
	raw, err := skopeoRaw(t, "oci:"+layout+":"+attest.ReferrersTag(digestOf(subject)))
	if err != nil {
		t.Fatalf("skopeo inspect --raw of the layout's referrers index: %v", err)
	}
	attDigest := checkReferrers("layout", raw)
	var am v1.Manifest
	amRaw := layoutBlob(t, layout, attDigest)
	if err := json.Unmarshal(amRaw, &am); err != nil {
		t.Fatal(err)
	}
	if am.ArtifactType != attest.MediaTypeInToto || am.Subject == nil || am.Subject.Digest.String() != subject || am.Config.MediaType != v1.MediaTypeEmptyJSON || len(am.Layers) != 1 {
		t.Fatalf("attestation manifest:\n%s", amRaw)
	}
	statement := layoutBlob(t, layout, am.Layers[0].Digest.String())
	for _, leak := range []string{secretValue, root} {
		if strings.Contains(string(statement), leak) || strings.Contains(string(amRaw), leak) {
			t.Errorf("the attestation holds %q", leak)
		}
	}
	_, pv, err := attest.ParseProvenance(statement, subject)
	if err != nil {
		t.Fatal(err)
	}
	ext := pv.BuildDefinition.ExternalParameters
	if ext.Dockerfile == nil || ext.Dockerfile.File != "Dockerfile" || ext.Dockerfile.BuildArgs["GREETING"] != "hello" {
		t.Errorf("external parameters: %+v", ext.Dockerfile)
	}
	bf, err := os.Open(busybox)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	_, _ = io.Copy(h, bf)
	bf.Close()
	baseHex := hex.EncodeToString(h.Sum(nil))
	var haveBase, haveApp bool
	for _, d := range pv.BuildDefinition.ResolvedDependencies {
		haveBase = haveBase || strings.HasPrefix(d.Name, "base") && d.Digest["sha256"] == baseHex
		haveApp = haveApp || strings.Contains(d.Name, "COPY") && len(d.Digest["sha256"]) == 64
	}
	if !haveBase || !haveApp {
		t.Errorf("resolved dependencies lack the base archive (sha256:%s) or the COPY input: %+v", baseHex, pv.BuildDefinition.ResolvedDependencies)
	}

	// The registry: the tag schema's index and the artifact, by skopeo.
	regMan, err := skopeoRaw(t, "docker://"+reg+"/app:v1")
	if err != nil {
		t.Fatalf("skopeo inspect the pushed image: %v", err)
	}
	regSubject := "sha256:" + sha256Hex(regMan)
	raw, err = skopeoRaw(t, "docker://"+reg+"/app:"+attest.ReferrersTag(digestOf(regSubject)))
	if err != nil {
		t.Fatalf("skopeo inspect --raw of the registry's referrers index: %v", err)
	}
	regAtt := checkReferrers("registry", raw)
	raw, err = skopeoRaw(t, "docker://"+reg+"/app@"+regAtt)
	if err != nil {
		t.Fatalf("skopeo inspect --raw of the pushed attestation: %v", err)
	}
	var rm v1.Manifest
	if err := json.Unmarshal(raw, &rm); err != nil || rm.Subject == nil || rm.Subject.Digest.String() != regSubject || rm.ArtifactType != attest.MediaTypeInToto {
		t.Fatalf("pushed attestation manifest (%v):\n%s", err, raw)
	}

	// strata verify: every key reproduces, from the layout and from the
	// registry (the recorded Dockerfile and build argument are the
	// defaults; no secret value is needed).
	verify := func(image string, extra ...string) cliResult {
		args := append([]string{"verify", image, "--build-context", "busybox=archive:" + busybox}, store...)
		return runCLI(t, bin, append(append(args, extra...), "--context", ctxDir)...)
	}
	for _, image := range []string{"oci:" + layout + ":v1", "docker://" + reg + "/app:v1"} {
		r = verify(image, "--insecure-registry")
		if r.code != 0 || !strings.Contains(r.stdout, "5 of 5 steps reproduce") {
			t.Errorf("verify %s of the unchanged context exited %d:\n%s%s", image, r.code, r.stdout, r.stderr)
		}
	}
	// Another build argument than the recorded one is named.
	r = verify("oci:"+layout+":v1", "--build-arg", "GREETING=bye")
	if r.code != 1 || !strings.Contains(r.stdout, "step 3 (RUN): DIFFERS: env GREETING changed") || !strings.Contains(r.stdout, "step 4 (CMD): DIFFERS: parent changed") {
		t.Errorf("verify with another GREETING exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// One file edited: its COPY differs, naming it, and the RUN after.
	writeFile(t, filepath.Join(ctxDir, "app", "lib.py"), "X = 2\n")
	r = verify("oci:" + layout + ":v1")
	if r.code != 1 || !strings.Contains(r.stdout, "2 of 5 steps reproduce") ||
		!regexpMatch(`step 2 \(COPY\): DIFFERS: app/lib\.py changed`, r.stdout) || !strings.Contains(r.stdout, "step 3 (RUN): DIFFERS: parent changed (step 2 differs)") {
		t.Errorf("verify after editing app/lib.py exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, filepath.Join(ctxDir, "app", "lib.py"), "X = 1\n")

	// --provenance=false: nothing attached.
	r = runCLI(t, bin, append(append([]string{"build", "--provenance=false", "--build-arg", "GREETING=plain", "--output", "oci:" + layout + ":plain"}, common...), ctxDir)...)
	if r.code != 0 || strings.Contains(r.stderr, "provenance sha256:") {
		t.Fatalf("--provenance=false exited %d:\n%s", r.code, r.stderr)
	}
	man2, err := skopeoRaw(t, "oci:"+layout+":plain")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := skopeoRaw(t, "oci:"+layout+":"+attest.ReferrersTag(digestOf("sha256:"+sha256Hex(man2)))); err == nil {
		t.Error("--provenance=false: the layout has a referrers index for the image")
	}
	r = verify("oci:" + layout + ":plain")
	if r.code != 1 || !strings.Contains(r.stderr, "has no strata provenance") {
		t.Errorf("verify of an image without provenance exited %d:\n%s", r.code, r.stderr)
	}

	// A statement replaced in the layout is refused, naming the image.
	if err := os.WriteFile(filepath.Join(layout, "blobs", "sha256", am.Layers[0].Digest.Encoded()), []byte(`{"_type":"forged"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = verify("oci:" + layout + ":v1")
	if r.code != 1 || !strings.Contains(r.stderr, "oci:"+layout+":v1") || !strings.Contains(r.stderr, "its content has digest") {
		t.Errorf("verify of a replaced statement exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// layoutPredicate returns the predicate of predicateType attached to the
// image tagged tag in the OCI layout dir, read by hand from index.json
// and the referrers index the tag schema names.
func layoutPredicate(t *testing.T, dir, tag, predicateType string) []byte {
	t.Helper()
	var idx v1.Index
	if err := json.Unmarshal(mustRead(t, filepath.Join(dir, "index.json")), &idx); err != nil {
		t.Fatal(err)
	}
	subject := ""
	for _, m := range idx.Manifests {
		if m.Annotations[v1.AnnotationRefName] == tag {
			subject = m.Digest.String()
		}
	}
	if subject == "" {
		t.Fatalf("%s has no image tagged %s", dir, tag)
	}
	for _, m := range idx.Manifests {
		if m.Annotations[v1.AnnotationRefName] != attest.ReferrersTag(digestOf(subject)) {
			continue
		}
		var refs v1.Index
		if err := json.Unmarshal(layoutBlob(t, dir, m.Digest.String()), &refs); err != nil {
			t.Fatal(err)
		}
		for _, r := range refs.Manifests {
			if r.Annotations[attest.AnnotationPredicateType] != predicateType {
				continue
			}
			var am v1.Manifest
			if err := json.Unmarshal(layoutBlob(t, dir, r.Digest.String()), &am); err != nil {
				t.Fatal(err)
			}
			var st attest.Statement
			if err := json.Unmarshal(layoutBlob(t, dir, am.Layers[0].Digest.String()), &st); err != nil {
				t.Fatal(err)
			}
			if st.PredicateType != predicateType || len(st.Subject) != 1 || "sha256:"+st.Subject[0].Digest["sha256"] != subject {
				t.Fatalf("statement %s: predicate %s, subject %+v (want %s)", r.Digest, st.PredicateType, st.Subject, subject)
			}
			return st.Predicate
		}
	}
	t.Fatalf("%s:%s has no %s attestation", dir, tag, predicateType)
	return nil
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sbomPackages lists an SPDX document's packages as "name@version".
func sbomPackages(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	var d struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name        string `json:"name"`
			VersionInfo string `json:"versionInfo"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("the SBOM does not parse: %v", err)
	}
	if d.SPDXVersion != "SPDX-2.3" {
		t.Errorf("SBOM version %q, want SPDX-2.3", d.SPDXVersion)
	}
	out := map[string]bool{}
	for _, p := range d.Packages {
		out[p.Name+"@"+p.VersionInfo] = true
	}
	return out
}

// requireSBOMTool skips unless strata-sbom is there (make integration
// builds it from the sbom module and sets STRATA_SBOM).
func requireSBOMTool(t *testing.T) {
	t.Helper()
	if os.Getenv("STRATA_SBOM") != "" {
		return
	}
	if _, err := exec.LookPath("strata-sbom"); err != nil {
		t.Skip("needs strata-sbom (the sbom module's command: make integration builds it and sets STRATA_SBOM)")
	}
}

// TestSBOM: strata build --sbom attaches an SPDX 2.3 SBOM of the image to
// a tagged layout: it lists the Debian package of the dpkg database, the
// Python package of a dist-info directory and the Go modules of a Go
// binary, with their versions, and no host path.
func TestSBOM(t *testing.T) {
	requireRootless(t)
	requireSBOMTool(t)
	bin := strataCLI(t)
	busybox := busyboxTar(t)
	root := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
	store := []string{"--store", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run")}
	ctxDir := filepath.Join(root, "ctx")
	writeFile(t, filepath.Join(ctxDir, "status"), "Package: hello\nStatus: install ok installed\nPriority: optional\nSection: devel\nInstalled-Size: 280\nMaintainer: Test <t@example.com>\nArchitecture: amd64\nVersion: 2.10-3\nDescription: example package\n\n")
	writeFile(t, filepath.Join(ctxDir, "dist", "requests-2.31.0.dist-info", "METADATA"), "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n")
	writeFile(t, filepath.Join(ctxDir, "dist", "requests-2.31.0.dist-info", "RECORD"), "requests/__init__.py,,\n")
	writeFile(t, filepath.Join(ctxDir, "dist", "requests", "__init__.py"), "")
	// A Go binary with its module list: the strata CLI itself.
	goBin, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "tool"), goBin, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), `FROM busybox
COPY status /var/lib/dpkg/status
COPY dist/ /usr/lib/python3/dist-packages/
COPY tool /usr/local/bin/tool
`)
	layout := filepath.Join(root, "layout")
	r := runCLI(t, bin, append(append([]string{"build", "--progress=plain", "--sbom", "--build-context", "busybox=archive:" + busybox,
		"--output", "oci:" + layout + ":v1"}, store...), ctxDir)...)
	if r.code != 0 {
		t.Fatalf("build --sbom exited %d:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "sbom sha256:") || !strings.Contains(r.stderr, "provenance sha256:") {
		t.Errorf("no sbom and provenance lines:\n%s", r.stderr)
	}
	doc := layoutPredicate(t, layout, "v1", attest.PredicateSPDX)
	pkgs := sbomPackages(t, doc)
	for _, want := range []string{"hello@2.10-3", "requests@2.31.0", "go.podman.io/buildah@v1.44.0"} {
		if !pkgs[want] {
			t.Errorf("the SBOM does not list %s (it lists %d packages)", want, len(pkgs))
		}
	}
	if strings.Contains(string(doc), root) {
		t.Errorf("the SBOM holds the host path %s", root)
	}
	// --sbom with no output that holds attestations: a usage error
	// before any step.
	r = runCLI(t, bin, append(append([]string{"build", "--sbom", "--build-context", "busybox=archive:" + busybox}, store...), ctxDir)...)
	if r.code == 0 || !strings.Contains(r.stderr, "SBOM") {
		t.Errorf("--sbom without an output: exit %d:\n%s", r.code, r.stderr)
	}
}

// TestVerifySpecFile: a spec-file build's provenance names the spec file
// (relative to the context) and its digest; strata verify then needs only
// the context: every key reproduces, and after an edit the step and the
// file are named.
func TestVerifySpecFile(t *testing.T) {
	requireRootless(t)
	bin := strataCLI(t)
	busybox := busyboxTar(t)
	root := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", root).Run() })
	store := []string{"--store", filepath.Join(root, "graph"), "--runroot", filepath.Join(root, "run")}
	ctxDir := filepath.Join(root, "ctx")
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "busybox.tar"), bb, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ctxDir, "strata.yaml"), "base: {from_archive: busybox.tar}\nsteps:\n  - run_commands: [\"echo spec > /s\"]\n  - add_local_dir: {local: src, remote: /src, copy: true}\n")
	writeFile(t, filepath.Join(ctxDir, "src", "a.txt"), "a\n")
	layout := filepath.Join(root, "layout")
	r := runCLI(t, bin, append(append([]string{"build", "--spec", filepath.Join(ctxDir, "strata.yaml"), "--output", "oci:" + layout + ":v1"}, store...), ctxDir)...)
	if r.code != 0 {
		t.Fatalf("spec build exited %d:\n%s", r.code, r.stderr)
	}
	var pv attest.Provenance
	if err := json.Unmarshal(layoutPredicate(t, layout, "v1", attest.PredicateSLSAProvenance), &pv); err != nil {
		t.Fatal(err)
	}
	if sp := pv.BuildDefinition.ExternalParameters.Spec; pv.BuildDefinition.ExternalParameters.Definition != "spec" || sp == nil || sp.File != "strata.yaml" || !strings.HasPrefix(sp.Digest, "sha256:") {
		t.Fatalf("external parameters: %+v", pv.BuildDefinition.ExternalParameters)
	}
	verify := func() cliResult {
		return runCLI(t, bin, append(append([]string{"verify", "oci:" + layout + ":v1"}, store...), "--context", ctxDir)...)
	}
	if r = verify(); r.code != 0 || !strings.Contains(r.stdout, "3 of 3 steps reproduce") {
		t.Errorf("verify of the unchanged context exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, filepath.Join(ctxDir, "src", "a.txt"), "b\n")
	if r = verify(); r.code != 1 || !regexpMatch(`step 2 \(AddLocalDir\): DIFFERS: .*a\.txt changed`, r.stdout) {
		t.Errorf("verify after an edit exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
