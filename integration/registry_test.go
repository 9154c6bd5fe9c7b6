package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/layers"
)

// startRegistry starts Debian's docker-registry (the distribution registry)
// on a free 127.0.0.1 port with its own storage, and stops it at the end of
// the test. It returns "127.0.0.1:PORT".
func startRegistry(t *testing.T) string { return startRegistryAuth(t, "", "") }

// startRegistryAuth starts a registry that requires user:password (htpasswd,
// bcrypt) when user is not empty.
func startRegistryAuth(t *testing.T, user, password string) string {
	t.Helper()
	addr, _ := startRegistryData(t, user, password)
	return addr
}

// startRegistryData is startRegistryAuth that also returns the registry's
// storage root (blobs under <root>/docker/registry/v2/blobs/sha256/), for
// tests that damage what the registry serves.
func startRegistryData(t *testing.T, user, password string) (addr, data string) {
	t.Helper()
	addr, data, _ = startRegistryConf(t, "", user, password, false)
	return addr, data
}

// startRegistryTLS starts a registry that serves HTTPS with a self-signed
// certificate made here for 127.0.0.1, and returns a directory holding that
// certificate as ca.crt (for builder.WithRegistryCertDir).
func startRegistryTLS(t *testing.T) (addr, certDir string) {
	t.Helper()
	addr, _, certDir = startRegistryConf(t, "", "", "", true)
	return addr, certDir
}

// startRegistryAt starts a plain registry on addr, a fixed address that a
// configuration made elsewhere names.
func startRegistryAt(t *testing.T, addr string) {
	t.Helper()
	startRegistryConf(t, addr, "", "", false)
}

// startRegistryConf starts a registry on listen ("" = a free 127.0.0.1
// port).
func startRegistryConf(t *testing.T, listen, user, password string, withTLS bool) (addr, data, certDir string) {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry not installed (make setup installs Debian's docker-registry)")
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("registry address %s: %v", listen, err)
	}
	addr = l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf("auth:\n  htpasswd:\n    realm: strata-test\n    path: %s\n", htpasswd)
	}
	scheme := "http"
	client := http.DefaultClient
	if withTLS {
		certDir = filepath.Join(dir, "certs")
		certFile, keyFile, pool := selfSignedCert(t, certDir)
		conf += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
		scheme = "https"
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting registry: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("registry log (%s):\n%s", logf.Name(), registryLogTail(string(b)))
			}
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry at %s did not start: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return addr, filepath.Join(dir, "data"), certDir
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its key
// into dir (the certificate also as ca.crt, as containers/image reads a
// certificate directory) and returns the paths and a pool that trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "strata test registry"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The server's files live beside the client's directory, not in it:
	// containers/image would read a *.key there as a client key.
	certFile, keyFile = filepath.Join(filepath.Dir(dir), "server.pem"), filepath.Join(filepath.Dir(dir), "server-key.pem")
	for p, b := range map[string][]byte{certFile: certPEM, keyFile: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		filepath.Join(dir, "ca.crt"): certPEM} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

func TestFromRegistryPinsDigest(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	reg := startRegistry(t)
	base := busyboxTar(t)

	// A publisher pushes a fixture image to the registry.
	pub := openSession(t, builder.WithInsecureRegistries())
	v1, err := pub.Build(ctx, builder.FromArchive(base).RunCommands([]string{"echo v1 > /version"}),
		builder.ExportTo("docker://"+reg+"/fixture/base:latest"))
	if err != nil {
		t.Fatalf("pushing fixture: %v", err)
	}
	_ = v1

	// A user builds from it, through the same code path as any registry.
	s := openSession(t, builder.WithInsecureRegistries())
	img := builder.FromRegistry(reg + "/fixture/base:latest").RunCommands([]string{"cat /version > /seen"})
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build from registry: %v", err)
	}
	if got := readFromImage(t, s, res.ImageID, "seen"); got != "v1\n" {
		t.Fatalf("/seen = %q", got)
	}
	p1, err := s.Plan(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p1.Steps[0].Description, "@sha256:") {
		t.Fatalf("base not pinned to a digest: %q", p1.Steps[0].Description)
	}
	res2, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res2); f != "CC" {
		t.Fatalf("rebuild from an unchanged tag: %s, want CC", f)
	}

	// The tag moves: the base key changes and every step runs again.
	if _, err := pub.Build(ctx, builder.FromArchive(base).RunCommands([]string{"echo v2 > /version"}),
		builder.ExportTo("docker://"+reg+"/fixture/base:latest")); err != nil {
		t.Fatal(err)
	}
	p2, err := s.Plan(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Steps[0].Key == p1.Steps[0].Key {
		t.Fatal("base key unchanged after the tag moved")
	}
	res3, err := s.Build(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if f := cachedFlags(res3); f != "RR" {
		t.Fatalf("after the tag moved: %s, want RR", f)
	}
	if got := readFromImage(t, s, res3.ImageID, "seen"); got != "v2\n" {
		t.Fatalf("/seen = %q after the tag moved", got)
	}
}

func TestFromOCILayoutAndArchives(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	base := busyboxTar(t)
	dir := t.TempDir()
	src := builder.FromArchive(base).RunCommands([]string{"echo layered > /l"})
	layout := filepath.Join(dir, "layout")
	ociArchive := filepath.Join(dir, "img.oci.tar")
	dockerArchive := filepath.Join(dir, "img.docker.tar")
	if _, err := s.Build(ctx, src, builder.ExportTo("oci:"+layout+":v1"),
		builder.ExportTo("oci-archive:"+ociArchive), builder.ExportTo("docker-archive:"+dockerArchive)); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]builder.Image{
		"oci layout":     builder.FromOCILayout(layout),
		"oci layout tag": builder.FromOCILayout(layout + ":v1"),
		"oci-archive":    builder.FromArchive(ociArchive),
		"docker-archive": builder.FromArchive(dockerArchive),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := s.Build(ctx, b.RunCommands([]string{"cat /l > /copy"}))
			if err != nil {
				t.Fatal(err)
			}
			if got := readFromImage(t, s, res.ImageID, "copy"); got != "layered\n" {
				t.Fatalf("/copy = %q", got)
			}
		})
	}
}

func TestStoreCacheConformance(t *testing.T) {
	requireRootless(t)
	s := openSession(t)
	base := busyboxTar(t)
	ids := map[int]string{}
	imageID := func(t *testing.T, i int) string {
		if id, ok := ids[i]; ok {
			return id
		}
		res, err := s.Build(context.Background(), builder.FromArchive(base).Env(map[string]string{"N": fmt.Sprint(i)}))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.ImageID
		return res.ImageID
	}
	cachetestRun(t, func(t *testing.T) layers.Cache { return layers.NewStoreCache(s.Store()) }, imageID)
}

func TestFromRegistryWithAuth(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	const user, password = "ci-user", "pa$$ word \"quoted\""
	reg := startRegistryAuth(t, user, password)
	base := busyboxTar(t)

	// The publisher authenticates through an auth.json named by
	// REGISTRY_AUTH_FILE, as podman users do.
	authFile := filepath.Join(t.TempDir(), "auth.json")
	enc := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	if err := os.WriteFile(authFile, []byte(`{"auths":{"`+reg+`":{"auth":"`+enc+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REGISTRY_AUTH_FILE", authFile)
	pub := openSession(t, builder.WithInsecureRegistries())
	if _, err := pub.Build(ctx, builder.FromArchive(base).RunCommands([]string{"echo private > /p"}),
		builder.ExportTo("docker://"+reg+"/private/base:1")); err != nil {
		t.Fatalf("push with auth.json: %v", err)
	}

	// The user passes credentials as a secret; no auth.json.
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "none.json"))
	s := openSession(t, builder.WithInsecureRegistries())
	good := builder.SecretFromMap("registry", map[string]string{"REGISTRY_USERNAME": user, "REGISTRY_PASSWORD": password})
	res, err := s.Build(ctx, builder.FromRegistry(reg+"/private/base:1", builder.WithRegistryAuth(good)).RunCommands([]string{"cat /p > /q"}))
	if err != nil {
		t.Fatalf("pull with secret credentials: %v", err)
	}
	if got := readFromImage(t, s, res.ImageID, "q"); got != "private\n" {
		t.Fatalf("/q = %q", got)
	}

	// Wrong or missing credentials: a clear error that names the step and
	// never shows the password.
	bad := builder.SecretFromMap("registry", map[string]string{"REGISTRY_USERNAME": user, "REGISTRY_PASSWORD": "wrong-password-xyz"})
	for name, img := range map[string]builder.Image{
		"wrong password": builder.FromRegistry(reg+"/private/base:1", builder.WithRegistryAuth(bad)),
		"no credentials": builder.FromRegistry(reg + "/private/base:1"),
	} {
		_, err := s.Build(ctx, img.RunCommands([]string{"true"}))
		if err == nil || !strings.Contains(err.Error(), "step 0 (FromRegistry)") {
			t.Fatalf("%s: got %v, want an error naming step 0", name, err)
		}
		if strings.Contains(err.Error(), "wrong-password-xyz") || strings.Contains(err.Error(), password) {
			t.Fatalf("%s: the error shows the password: %v", name, err)
		}
		if c, _ := counts(t, s.Store()); c != 0 {
			t.Fatalf("%s: %d containers left", name, c)
		}
	}
}

// registryLogTail is what a failed test shows of a registry's log: its
// last 40 lines, less the HEAD requests for blobs it lacks (every push
// asks them first), so that the test's own failure stays near the end
// of the output.
func registryLogTail(log string) string {
	var keep []string
	skipped := 0
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.Contains(l, "http.request.method=HEAD") && strings.Contains(l, "err.code=\"blob unknown\"") {
			skipped++
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > 40 {
		skipped += len(keep) - 40
		keep = keep[len(keep)-40:]
	}
	return fmt.Sprintf("(%d lines left out)\n%s", skipped, strings.Join(keep, "\n"))
}
