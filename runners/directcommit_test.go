package runners

import (
	"encoding/json"
	"testing"

	godigest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/buildah/docker"
)

// TestWithLayerAdded: the layer is added to the manifest (uncompressed,
// of the format's media type), to the config's diff IDs and to the step's
// history entry, and the manifest names the new config; a history whose
// last entry already has a layer, or that does not count the layers, is
// refused (the commit is then Buildah's).
func TestWithLayerAdded(t *testing.T) {
	t.Parallel()
	base := godigest.FromString("base layer")
	diff := godigest.FromString("step layer")
	ociCfg := func(lastEmpty bool, entries int) []byte {
		c := v1.Image{RootFS: v1.RootFS{Type: "layers", DiffIDs: []godigest.Digest{base}}}
		c.Config.Env = []string{"A=1"}
		for i := 0; i < entries; i++ {
			c.History = append(c.History, v1.History{CreatedBy: "step", EmptyLayer: i == entries-1 && lastEmpty})
		}
		raw, _ := json.Marshal(c)
		return raw
	}
	ociMan := func(cfg []byte) []byte {
		raw, _ := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
			Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: godigest.FromBytes(cfg), Size: int64(len(cfg))},
			Layers: []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: base, Size: 10}}})
		return raw
	}
	dockerCfg := func(lastEmpty bool, entries int) []byte {
		c := docker.V2Image{V1Image: docker.V1Image{Config: &docker.Config{Env: []string{"A=1"}}},
			RootFS: &docker.V2S2RootFS{Type: "layers", DiffIDs: []godigest.Digest{base}}}
		for i := 0; i < entries; i++ {
			c.History = append(c.History, docker.V2S2History{CreatedBy: "step", EmptyLayer: i == entries-1 && lastEmpty})
		}
		raw, _ := json.Marshal(c)
		return raw
	}
	dockerMan := func(cfg []byte) []byte {
		m := docker.V2S2Manifest{Config: docker.V2S2Descriptor{MediaType: "application/vnd.docker.container.image.v1+json", Digest: godigest.FromBytes(cfg), Size: int64(len(cfg))},
			Layers: []docker.V2S2Descriptor{{MediaType: docker.V2S2MediaTypeUncompressedLayer, Digest: base, Size: 10}}}
		m.SchemaVersion, m.MediaType = 2, "application/vnd.docker.distribution.manifest.v2+json"
		raw, _ := json.Marshal(m)
		return raw
	}
	for _, tc := range []struct {
		name      string
		man, cfg  []byte
		layerType string
		wantErr   bool
	}{
		{"oci", ociMan(ociCfg(true, 2)), ociCfg(true, 2), v1.MediaTypeImageLayer, false},
		{"oci without history", ociMan(ociCfg(true, 0)), ociCfg(true, 0), v1.MediaTypeImageLayer, false},
		{"oci, last entry not empty", ociMan(ociCfg(false, 2)), ociCfg(false, 2), "", true},
		{"oci, history counts other layers", ociMan(ociCfg(true, 3)), ociCfg(true, 3), "", true},
		{"docker", dockerMan(dockerCfg(true, 2)), dockerCfg(true, 2), docker.V2S2MediaTypeUncompressedLayer, false},
		{"docker, last entry not empty", dockerMan(dockerCfg(false, 2)), dockerCfg(false, 2), "", true},
		{"unknown manifest", []byte(`{"mediaType":"x"}`), ociCfg(true, 2), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			man, cfg, err := withLayerAdded(tc.man, tc.cfg, diff, 2048)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; manifest %s", man)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Config struct {
					Digest godigest.Digest
					Size   int64
				}
				Layers []struct {
					MediaType string
					Digest    godigest.Digest
					Size      int64
				}
			}
			if err := json.Unmarshal(man, &m); err != nil {
				t.Fatal(err)
			}
			if m.Config.Digest != godigest.FromBytes(cfg) || m.Config.Size != int64(len(cfg)) {
				t.Errorf("the manifest names config %s (%d bytes), not the new one", m.Config.Digest, m.Config.Size)
			}
			if len(m.Layers) != 2 || m.Layers[1].Digest != diff || m.Layers[1].Size != 2048 || m.Layers[1].MediaType != tc.layerType {
				t.Errorf("layers %+v", m.Layers)
			}
			var c struct {
				Config struct{ Env []string }
				RootFS struct {
					DiffIDs []godigest.Digest `json:"diff_ids"`
				} `json:"rootfs"`
				History []struct {
					EmptyLayer bool `json:"empty_layer"`
				}
			}
			if err := json.Unmarshal(cfg, &c); err != nil {
				t.Fatal(err)
			}
			if len(c.RootFS.DiffIDs) != 2 || c.RootFS.DiffIDs[1] != diff {
				t.Errorf("diff IDs %v", c.RootFS.DiffIDs)
			}
			for i, h := range c.History {
				if h.EmptyLayer {
					t.Errorf("history entry %d still empty", i)
				}
			}
			if len(c.Config.Env) != 1 || c.Config.Env[0] != "A=1" {
				t.Errorf("the config's other fields changed: env %v", c.Config.Env)
			}
		})
	}
}
