package runners

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeBlob stores b in the layout at dir and returns its descriptor
// fields.
func writeLayoutBlob(t *testing.T, dir string, b []byte) (string, int) {
	t.Helper()
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	p := filepath.Join(dir, "blobs", "sha256", h)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + h, len(b)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// windowsLayout writes an OCI layout whose image is for Windows: one
// manifest, or (list) an index of two Windows manifests.
func windowsLayout(t *testing.T, list bool) string {
	dir := t.TempDir()
	cfg, cfgSize := writeLayoutBlob(t, dir, mustJSON(t, map[string]any{"architecture": "amd64", "os": "windows",
		"config": map[string]any{}, "rootfs": map[string]any{"type": "layers", "diff_ids": []string{}}}))
	man := mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfgSize},
		"layers": []any{}})
	md, ms := writeLayoutBlob(t, dir, man)
	top := map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
		"annotations": map[string]string{"org.opencontainers.image.ref.name": "win"}}
	if list {
		var entries []any
		for _, v := range []string{"10.0.17763.1", "10.0.20348.1"} {
			entries = append(entries, map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
				"platform": map[string]string{"os": "windows", "architecture": "amd64", "os.version": v}})
		}
		id, is := writeLayoutBlob(t, dir, mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}))
		top = map[string]any{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is,
			"annotations": map[string]string{"org.opencontainers.image.ref.name": "win"}}
	}
	idx := mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []any{top}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBaseConfigRefusesWindows: a Windows base (one manifest, or a list
// with Windows entries only) is refused, saying so, instead of failing
// later or building nonsense.
func TestBaseConfigRefusesWindows(t *testing.T) {
	r := &Resolver{}
	for _, list := range []bool{false, true} {
		dir := windowsLayout(t, list)
		_, err := r.BaseConfig(context.Background(), Base{Kind: BaseOCILayout, Ref: dir + ":win"})
		if err == nil || !strings.Contains(err.Error(), "is a Windows image") {
			t.Errorf("list=%v: %v", list, err)
		}
	}
}
