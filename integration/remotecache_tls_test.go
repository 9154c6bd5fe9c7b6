package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

// TestRemoteCacheTLS shares a layer cache through a registry that serves
// HTTPS with a self-signed certificate made by the test: runners that trust
// it (WithRegistryCertDir) push and pull (an image and its provenance
// too); a runner that does not refuses
// the registry once, with a note, and builds locally.
func TestRemoteCacheTLS(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	addr, certs := startRegistryTLS(t)
	repo := addr + "/cache/tls"
	img := builder.FromArchive(busyboxTar(t)).
		RunCommands([]string{"echo one > /one"}).
		RunCommands([]string{"echo two > /two"})

	a := openSession(t, builder.WithRegistryCertDir(certs))
	var outA strings.Builder
	if _, err := a.Build(ctx, img, builder.CacheTo(repo), builder.WithOutput(&outA)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(outA.String(), "cache-to") {
		t.Fatalf("pushing over TLS failed:\n%s", outA.String())
	}
	// An image pushed there gets its provenance over the same TLS
	// settings (the certificates of WithRegistryCertDir).
	pushed, err := a.Build(ctx, img, builder.Push(addr+"/app/tls:1"))
	if err != nil {
		t.Fatal(err)
	}
	if atts := pushed.Exports[0].Attestations; len(atts) != 1 {
		t.Errorf("attestations pushed over TLS: %+v", atts)
	}
	b := openSession(t, builder.WithRegistryCertDir(certs))
	res, err := b.Build(ctx, img, builder.CacheFrom(repo))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range res.Steps {
		if !st.Remote {
			t.Errorf("runner B: step %d %s was not taken from the registry", st.Index, st.Method)
		}
	}
	if got := readFromImage(t, b, res.ImageID, "two"); got != "two\n" {
		t.Errorf("/two = %q", got)
	}
	// No trust: the certificate is refused, the build goes on locally.
	c := openSession(t)
	var outC strings.Builder
	res, err = c.Build(ctx, img, builder.CacheFrom(repo), builder.WithOutput(&outC))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(outC.String(), "cache-from "+repo); n != 1 || !strings.Contains(outC.String(), "certificate") {
		t.Errorf("want one note about the certificate, got %d:\n%s", n, outC.String())
	}
	for _, st := range res.Steps[1:] {
		if st.Remote || st.Cached {
			t.Errorf("runner C: step %d did not run locally", st.Index)
		}
	}
}
