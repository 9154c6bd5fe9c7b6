package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/cloudauth"
)

// TestFromAWSECR pulls from a real registry whose password is only known
// to a local stand-in for ECR's GetAuthorizationToken: the build must
// exchange the AWS keys in the secret for it, through the same pull path a
// user hits, and never show any of the values.
func TestFromAWSECR(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	const registryPassword = "ecr-token-password-123"
	reg := startRegistryAuth(t, "AWS", registryPassword)

	authFile := filepath.Join(t.TempDir(), "auth.json")
	enc := base64.StdEncoding.EncodeToString([]byte("AWS:" + registryPassword))
	if err := os.WriteFile(authFile, []byte(`{"auths":{"`+reg+`":{"auth":"`+enc+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REGISTRY_AUTH_FILE", authFile)
	pub := openSession(t, builder.WithInsecureRegistries())
	if _, err := pub.Build(ctx, builder.FromArchive(busyboxTar(t)).RunCommands([]string{"echo from-ecr > /e"}),
		builder.ExportTo("docker://"+reg+"/team/base:1")); err != nil {
		t.Fatalf("push: %v", err)
	}
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "none.json"))

	var calls atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" ||
			!strings.Contains(r.Header.Get("Authorization"), "Credential=AKIDEXAMPLE/") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"UnrecognizedClientException","message":"bad request"}`))
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + registryPassword)),
			"expiresAt":          time.Now().Add(12 * time.Hour).Unix(), "proxyEndpoint": "http://" + reg,
		}}})
	}))
	defer fake.Close()

	secret := builder.SecretFromMap("aws", map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-key-canary", "AWS_REGION": "us-east-1",
	})
	s := openSession(t, builder.WithInsecureRegistries())
	img := builder.FromAWSECR(reg+"/team/base:1", secret, builder.WithCredentialExchange(&cloudauth.ECR{Endpoint: fake.URL})).
		RunCommands([]string{"cat /e > /f"})
	res, err := s.Build(ctx, img)
	if err != nil {
		t.Fatalf("build from ECR: %v", err)
	}
	if got := readFromImage(t, s, res.ImageID, "f"); got != "from-ecr\n" {
		t.Fatalf("/f = %q", got)
	}
	if calls.Load() == 0 {
		t.Fatal("the ECR endpoint was never asked")
	}

	// Refused credentials: a clear error naming the step, no secret shown.
	bad := builder.SecretFromMap("aws", map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDWRONG", "AWS_SECRET_ACCESS_KEY": "secret-key-canary", "AWS_REGION": "us-east-1",
	})
	_, err = s.Build(ctx, builder.FromAWSECR(reg+"/team/base:1", bad, builder.WithCredentialExchange(&cloudauth.ECR{Endpoint: fake.URL})).
		RunCommands([]string{"true"}))
	if err == nil || !strings.Contains(err.Error(), "step 0 (FromAWSECR)") || !strings.Contains(err.Error(), "UnrecognizedClientException") {
		t.Fatalf("refused exchange: %v", err)
	}
	if holdsSecret(err.Error(), "secret-key-canary") || holdsSecret(err.Error(), registryPassword) {
		t.Fatalf("the error shows a secret: %v", err)
	}
}
