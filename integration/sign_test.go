package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.podman.io/image/v5/signature/sigstore"

	"github.com/stratabuild/strata/attest"
)

// sigstoreSkopeo returns a skopeo that verifies sigstore signatures:
// $STRATA_SKOPEO (make skopeo-tool builds it; Debian's skopeo is built
// with sigstore disabled).
func sigstoreSkopeo(t *testing.T) string {
	t.Helper()
	p := os.Getenv("STRATA_SKOPEO")
	if p == "" {
		t.Skip("needs a skopeo with sigstore, named by STRATA_SKOPEO: Debian's says \"Debian-local change: sigstore disabled\" (make skopeo-tool builds one; make integration sets it)")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("STRATA_SKOPEO=%s: %v (run make skopeo-tool)", p, err)
	}
	return p
}

// TestSignedPush: strata build --sign-by-sigstore-private-key signs the
// pushed image and its provenance; skopeo (upstream's, built by make
// skopeo-tool), with a policy that requires sigstoreSigned by the public
// key, accepts the signed image,
// refuses an unsigned one and refuses the tag once it names another
// image, and so does strata verify --sigstore-public-key; a wrong
// passphrase fails before any step runs and pushes nothing; the passphrase
// appears nowhere.
func TestSignedPush(t *testing.T) {
	verifier := sigstoreSkopeo(t)
	bin, busybox, reg, root, store := attestSetup(t)

	const passphrase = "pass-3b8e1f0c97d2"
	keys, err := sigstore.GenerateKeyPair([]byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, passFile := filepath.Join(root, "key.private"), filepath.Join(root, "key.pub"), filepath.Join(root, "pass")
	writeFile(t, priv, string(keys.PrivateKey))
	writeFile(t, pub, string(keys.PublicKey))
	writeFile(t, passFile, passphrase+"\n")
	regD := filepath.Join(root, "registries.d")
	writeFile(t, filepath.Join(regD, "sigstore.yaml"), fmt.Sprintf("docker:\n  %s:\n    use-sigstore-attachments: true\n", reg))
	policy := filepath.Join(root, "policy.json")
	writeFile(t, policy, fmt.Sprintf(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{%q:[{"type":"sigstoreSigned","keyPath":%q,"signedIdentity":{"type":"matchRepoDigestOrExact"}}]}}}`, reg, pub))

	ctxDir := filepath.Join(root, "ctx")
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), "FROM busybox\nARG N=1\nRUN echo $N > /n\n")
	build := func(extra ...string) cliResult {
		args := append([]string{"build", "--progress=plain", "--build-context", "busybox=archive:" + busybox, "--insecure-registry", "--registries.d", regD}, store...)
		return runCLI(t, bin, append(append(args, extra...), ctxDir)...)
	}
	// skopeo copy with the policy: does it accept ref?
	accepts := func(ref string) (bool, string) {
		out, err := exec.Command(verifier, "--policy", policy, "--registries.d", regD, "copy", "--remove-signatures", "--src-tls-verify=false",
			"docker://"+ref, "oci:"+filepath.Join(t.TempDir(), "copy")+":x").CombinedOutput()
		return err == nil, string(out)
	}

	r := build("--push", reg+"/app:v1", "--sign-by-sigstore-private-key", priv, "--sign-passphrase-file", passFile)
	if r.code != 0 {
		t.Fatalf("signed build exited %d:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "signed docker://"+reg+"/app:v1") || !strings.Contains(r.stderr, "signed the attestation sha256:") {
		t.Errorf("no signing lines:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, passphrase) {
		t.Error("the passphrase is in the build's output")
	}
	if ok, out := accepts(reg + "/app:v1"); !ok {
		t.Fatalf("skopeo refused the signed image:\n%s", out)
	}
	// The provenance's signature is there too, under the tag schema.
	man, err := skopeoRaw(t, "docker://"+reg+"/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := skopeoRaw(t, "docker://"+reg+"/app:"+attest.ReferrersTag(digestOf("sha256:"+sha256Hex(man))))
	if err != nil {
		t.Fatalf("referrers index: %v", err)
	}
	att := regexpFind(`"digest":"(sha256:[0-9a-f]{64})"`, string(raw))
	if att == "" {
		t.Fatalf("no attestation in %s", raw)
	}
	if _, err := skopeoRaw(t, "docker://"+reg+"/app:sha256-"+strings.TrimPrefix(att, "sha256:")+".sig"); err != nil {
		t.Errorf("the attestation %s has no signature: %v", att, err)
	}

	// strata verify with the public key: the image's and the
	// provenance's signatures, then every key.
	verify := func(ref string) cliResult {
		args := append([]string{"verify", "docker://" + ref, "--sigstore-public-key", pub, "--registries.d", regD, "--insecure-registry",
			"--build-context", "busybox=archive:" + busybox}, store...)
		return runCLI(t, bin, append(args, ctxDir)...)
	}
	if r = verify(reg + "/app:v1"); r.code != 0 || !strings.Contains(r.stdout, "3 of 3 steps reproduce") {
		t.Errorf("verify --sigstore-public-key of the signed image exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Unsigned: refused, by skopeo and by strata verify.
	r = build("--build-arg", "N=2", "--push", reg+"/app:unsigned")
	if r.code != 0 {
		t.Fatalf("unsigned build exited %d:\n%s", r.code, r.stderr)
	}
	if ok, out := accepts(reg + "/app:unsigned"); ok {
		t.Errorf("skopeo accepted an unsigned image:\n%s", out)
	}
	if r = verify(reg + "/app:unsigned"); r.code != 1 || !strings.Contains(r.stderr, "is not signed by the key") || !strings.Contains(r.stderr, reg+"/app:unsigned") {
		t.Errorf("verify of an unsigned image exited %d:\n%s", r.code, r.stderr)
	}
	// A signature for another digest: app:v1's signature copied to where
	// the unsigned image's would be. Both skopeo and strata verify refuse
	// it.
	unsignedMan, err := skopeoRaw(t, "docker://"+reg+"/app:unsigned")
	if err != nil {
		t.Fatal(err)
	}
	sigOf := func(man []byte) string { return "docker://" + reg + "/app:sha256-" + sha256Hex(man) + ".sig" }
	if out, err := exec.Command("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests",
		sigOf(man), sigOf(unsignedMan)).CombinedOutput(); err != nil {
		t.Fatalf("copying a signature onto the unsigned image: %v\n%s", err, out)
	}
	if _, err := skopeoRaw(t, sigOf(unsignedMan)); err != nil {
		t.Fatalf("the copied signature is not there: %v", err)
	}
	if ok, out := accepts(reg + "/app:unsigned"); ok {
		t.Errorf("skopeo accepted a signature made for another digest:\n%s", out)
	} else {
		t.Logf("skopeo, a signature for another digest: %s", strings.TrimSpace(out))
	}
	if r = verify(reg + "/app:unsigned"); r.code != 1 || !strings.Contains(r.stderr, "is not signed by the key") || !strings.Contains(r.stderr, reg+"/app:unsigned") {
		t.Errorf("verify with a signature for another digest exited %d:\n%s", r.code, r.stderr)
	}
	// The tag replaced by another image: refused.
	if out, err := exec.Command("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+reg+"/app:unsigned", "docker://"+reg+"/app:v1").CombinedOutput(); err != nil {
		t.Fatalf("retagging: %v\n%s", err, out)
	}
	if ok, out := accepts(reg + "/app:v1"); ok {
		t.Errorf("skopeo accepted app:v1 after it was replaced by an unsigned image:\n%s", out)
	}
	if r = verify(reg + "/app:v1"); r.code != 1 || !strings.Contains(r.stderr, "is not signed by the key") {
		t.Errorf("verify of the replaced tag exited %d:\n%s", r.code, r.stderr)
	}

	// A wrong passphrase: fails before any step, pushes nothing, and
	// does not say the passphrase.
	writeFile(t, passFile, "wrong-"+passphrase+"\n")
	r = build("--build-arg", "N=3", "--push", reg+"/app:bad", "--sign-by-sigstore-private-key", priv, "--sign-passphrase-file", passFile)
	if r.code == 0 || !strings.Contains(r.stderr, "SignBy") || stepLine.MatchString(r.stderr) || strings.Contains(r.stderr, passphrase) {
		t.Errorf("wrong passphrase: exit %d:\n%s", r.code, r.stderr)
	}
	if _, err := skopeoRaw(t, "docker://"+reg+"/app:bad"); err == nil {
		t.Error("a build with a wrong passphrase pushed its image")
	}
	// Signing without a push is a usage error.
	r = build("--sign-by-sigstore-private-key", priv, "--sign-passphrase-file", passFile)
	if r.code != 2 || !strings.Contains(r.stderr, "--push") {
		t.Errorf("signing without --push: exit %d:\n%s", r.code, r.stderr)
	}
}
