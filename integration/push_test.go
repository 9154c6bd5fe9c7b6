package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

type ociManifest struct {
	Layers []struct {
		MediaType string `json:"mediaType"`
	} `json:"layers"`
}

// TestPushWithSecretAndCompression pushes to a registry that needs
// credentials (given as a secret, no auth.json) with zstd layers, then
// pulls the image back through FromRegistry and runs it.
func TestPushWithSecretAndCompression(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	const user, password = "pusher", "push-secret-42"
	reg := startRegistryAuth(t, user, password)
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "none.json"))
	sec := builder.SecretFromMap("registry", map[string]string{"REGISTRY_USERNAME": user, "REGISTRY_PASSWORD": password})
	s := openSession(t, builder.WithInsecureRegistries())
	img := builder.FromArchive(busyboxTar(t)).RunCommands([]string{"echo pushed > /p"})
	pushed, err := s.Build(ctx, img, builder.Push(reg+"/team/app:1"), builder.PushAuth(sec),
		builder.LayerCompression("zstd"))
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	// The provenance went the same way, with the same credentials.
	if atts := pushed.Exports[0].Attestations; len(atts) != 1 {
		t.Errorf("attestations pushed: %+v, want the provenance", atts)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+reg+"/v2/team/app/manifests/1", nil)
	req.SetBasicAuth(user, password)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m ociManifest
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil || len(m.Layers) == 0 {
		t.Fatalf("manifest: %v %+v", err, m)
	}
	for _, l := range m.Layers {
		if !strings.HasSuffix(l.MediaType, "+zstd") {
			t.Fatalf("pushed layer is %s, want zstd", l.MediaType)
		}
	}
	// Pulled back and used as a base, through the user's code path.
	s2 := openSession(t, builder.WithInsecureRegistries())
	res, err := s2.Build(ctx, builder.FromRegistry(reg+"/team/app:1", builder.WithRegistryAuth(sec)).RunCommands([]string{"cat /p > /q"}))
	if err != nil {
		t.Fatalf("pull back: %v", err)
	}
	if got := readFromImage(t, s2, res.ImageID, "q"); got != "pushed\n" {
		t.Fatalf("/q = %q", got)
	}
	// Bad choices fail before anything is built.
	if _, err := s.Build(ctx, img, builder.LayerCompression("brotli")); err == nil || !strings.Contains(err.Error(), "brotli") {
		t.Fatalf("compression brotli: %v", err)
	}
}
