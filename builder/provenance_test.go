package builder

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/runners"
)

const provenanceDockerfile = `FROM base AS build
ARG VERSION
COPY src /src
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && echo $VERSION > /out
FROM base
COPY --from=build /out /out
COPY app.txt /app/
`

func provenanceContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{"Dockerfile": provenanceDockerfile, "src/a.go": "package a\n", "app.txt": "v1\n"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestProvenanceOfDockerfile: the provenance of a multi-stage Dockerfile
// build records the Dockerfile relative to the context, the build
// arguments, one chain per stage with keys that recompute, the base by
// digest and the local inputs by digest; and no secret value, no proxy
// argument (they may hold credentials) and no host path.
func TestProvenanceOfDockerfile(t *testing.T) {
	ctx := context.Background()
	dir := provenanceContext(t)
	const secretValue = "s3cr3t-token-value-81723"
	const proxyPassword = "proxy-pw-0f3a"
	archive := emptyRootfs(t)
	img := FromDockerfile(filepath.Join(dir, "Dockerfile"), BuildContext("base", FromArchive(archive)),
		BuildArgs(map[string]string{"VERSION": "1.2", "HTTPS_PROXY": "http://proxyuser:" + proxyPassword + "@proxy.example:3128"}),
		WithSecrets(SecretFromMap("tok", map[string]string{"tok": secretValue})))
	p, err := img.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{resolver: &runners.Resolver{}}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pv := s.provenanceOf(img, p, buildOptions{}, "", t0, t0.Add(time.Second))
	b, err := json.Marshal(pv)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, leak := range []string{secretValue, proxyPassword, dir, archive, filepath.Dir(archive)} {
		if strings.Contains(text, leak) {
			t.Errorf("the provenance holds %q", leak)
		}
	}
	ext := pv.BuildDefinition.ExternalParameters
	if ext.Definition != "dockerfile" || ext.Dockerfile == nil || ext.Dockerfile.File != "Dockerfile" || ext.Dockerfile.BuildArgs["VERSION"] != "1.2" || !strings.HasPrefix(ext.Dockerfile.Digest, "sha256:") {
		t.Errorf("external parameters %+v (dockerfile %+v)", ext, ext.Dockerfile)
	}
	if ext.Platform != hostPlatform() || ext.Format != "oci" {
		t.Errorf("platform %q format %q", ext.Platform, ext.Format)
	}
	chains := pv.BuildDefinition.InternalParameters.Chains
	if len(chains) != 2 {
		t.Fatalf("%d chains, want the build stage and the image", len(chains))
	}
	last := chains[1].Steps
	if got, want := last[len(last)-1].Key, p.Steps[len(p.Steps)-1].Key; got != want {
		t.Errorf("the image chain ends with key %s, the plan with %s", got.Short(), want.Short())
	}
	if err := pv.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	// The secret is named, not valued.
	named := false
	for _, st := range chains[0].Steps {
		for _, n := range st.Spec.Secrets {
			named = named || strings.Contains(n, "tok")
		}
	}
	if !named {
		t.Error("the RUN's secret is not named in its recipe")
	}
	var base, inputs int
	for _, d := range pv.BuildDefinition.ResolvedDependencies {
		switch {
		case strings.HasPrefix(d.Name, "base"):
			base++
		case strings.Contains(d.Name, "input"):
			inputs++
		}
		if len(d.Digest["sha256"]) != 64 {
			t.Errorf("dependency %+v has no sha256 digest", d)
		}
	}
	if base != 1 || inputs < 2 {
		t.Errorf("resolved dependencies: %d bases, %d inputs, want 1 and at least 2: %+v", base, inputs, pv.BuildDefinition.ResolvedDependencies)
	}
	if md := pv.RunDetails.Metadata; md == nil || !md.StartedOn.Equal(t0) {
		t.Errorf("metadata %+v", md)
	}
	// With SOURCE_DATE_EPOCH, no times: the provenance is reproducible.
	sde := time.Unix(1700000000, 0)
	s.sde = &sde
	if pv := s.provenanceOf(img, p, buildOptions{}, "", t0, t0); pv.RunDetails.Metadata != nil || *pv.BuildDefinition.ExternalParameters.SourceDateEpoch != 1700000000 {
		t.Errorf("with SOURCE_DATE_EPOCH: metadata %+v", pv.RunDetails.Metadata)
	}
}

// TestVerifyProvenance: a provenance verifies against the same source;
// after one file changes, the step that copies it and the steps after it
// differ, and the file is named; a recipe changed in the provenance is
// found out.
func TestVerifyProvenance(t *testing.T) {
	ctx := context.Background()
	dir := provenanceContext(t)
	archive := emptyRootfs(t)
	def := func() Image {
		return FromDockerfile(filepath.Join(dir, "Dockerfile"), BuildContext("base", FromArchive(archive)),
			BuildArgs(map[string]string{"VERSION": "1.2"}))
	}
	p, err := def().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{resolver: &runners.Resolver{}}
	pv := s.provenanceOf(def(), p, buildOptions{}, "", time.Now(), time.Now())
	v, err := s.VerifyProvenance(ctx, def(), pv, "img", "sha256:x", "")
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK {
		for _, st := range v.Steps {
			t.Logf("%s: same=%v %s", st.Name(), st.Same, st.Why)
		}
		t.Fatalf("an unchanged source does not verify: notes %q", v.Notes)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.txt"), []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err = s.VerifyProvenance(ctx, def(), pv, "img", "sha256:x", "")
	if err != nil {
		t.Fatal(err)
	}
	var differs []string
	for _, st := range v.Steps {
		if !st.Same {
			differs = append(differs, st.Name()+": "+st.Why)
		}
	}
	if v.OK || len(differs) != 1 || !strings.Contains(differs[0], "COPY") || !strings.Contains(differs[0], "app.txt changed") {
		t.Fatalf("after editing app.txt: OK=%v, differing steps %q", v.OK, differs)
	}
	// A build argument given differently is named too.
	v, err = s.VerifyProvenance(ctx, FromDockerfile(filepath.Join(dir, "Dockerfile"), BuildContext("base", FromArchive(archive)),
		BuildArgs(map[string]string{"VERSION": "9"})), pv, "img", "sha256:x", "")
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || !strings.Contains(whyAll(v), "VERSION") {
		t.Errorf("another VERSION: %s", whyAll(v))
	}
	// A comment added to the Dockerfile changes no key; a note says the
	// file is not the one built.
	if err := os.WriteFile(filepath.Join(dir, "app.txt"), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("# a comment\n"+provenanceDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err = s.VerifyProvenance(ctx, def(), pv, "img", "sha256:x", "")
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK || len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "is not the one built") {
		t.Errorf("a comment in the Dockerfile: OK=%v notes %q: %s", v.OK, v.Notes, whyAll(v))
	}
	// A changed recipe in the provenance itself.
	pv.BuildDefinition.InternalParameters.Chains[0].Steps[1].Spec.Args = []string{"/forged"}
	v, err = s.VerifyProvenance(ctx, def(), pv, "img", "sha256:x", "")
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || !strings.Contains(whyAll(v), "does not follow from the recorded recipe") {
		t.Errorf("a forged recipe: %s", whyAll(v))
	}
}

func whyAll(v *Verification) string {
	var out []string
	for _, st := range v.Steps {
		if !st.Same {
			out = append(out, st.Name()+": "+st.Why)
		}
	}
	return strings.Join(append(out, v.Notes...), "\n")
}

// TestVerifyBaseGone: a base that no longer resolves (its archive is
// gone) is planned with the digest the provenance records, and a note
// says so; the keys still reproduce.
func TestVerifyBaseGone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	archive := emptyRootfs(t)
	def := func() Image {
		return FromArchive(archive).AddLocalDir(dir, "/app", Copy())
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := def().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{resolver: &runners.Resolver{}}
	pv := s.provenanceOf(def(), p, buildOptions{}, "", time.Now(), time.Now())
	if err := os.Remove(archive); err != nil {
		t.Fatal(err)
	}
	v, err := s.VerifyProvenance(ctx, def(), pv, "img", "sha256:x", "")
	if err != nil {
		t.Fatalf("a base that no longer resolves is fatal: %v", err)
	}
	if !v.OK || len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "no longer resolves") || !strings.Contains(v.Notes[0], "recorded digest") {
		t.Errorf("OK=%v notes %q: %s", v.OK, v.Notes, whyAll(v))
	}
}
