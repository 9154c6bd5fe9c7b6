package builder

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/stratabuild/strata/runners"
)

// EnvSBOMTool names the variable that names the strata-sbom binary SBOM
// runs (default: strata-sbom beside the running program, else on PATH).
const EnvSBOMTool = "STRATA_SBOM"

// SBOM attaches an SBOM of the final image to the same outputs as the
// provenance (pushes and tagged oci: layouts; one per platform manifest):
// an in-toto statement whose predicate (attest.PredicateSPDX) is an SPDX
// 2.3 JSON document of the image's root filesystem, made by Anchore's
// syft: Debian packages, Python packages, Go binaries and the other
// installed software syft finds in images. syft is large, so it lives in
// a module of its own, github.com/stratabuild/strata/sbom, whose command
// strata-sbom SBOM runs on the mounted image (see EnvSBOMTool); a build
// without it fails before any step runs, saying how to get it.
func SBOM() BuildOption {
	return named("SBOM", func(o *buildOptions) { o.sbom = "strata-sbom" })
}

// checkSBOM finds the strata-sbom binary for SBOM, before anything runs.
func checkSBOM(bo *buildOptions) error {
	if bo.sbom == "" || bo.wantProvenance {
		return nil
	}
	if !slices.ContainsFunc(bo.exports, getsAttestations) {
		return errors.New("SBOM attaches the SBOM to what the build writes out: add Push(REF) or ExportTo(\"oci:DIR:TAG\")")
	}
	p, err := sbomTool()
	if err != nil {
		return err
	}
	bo.sbom = p
	return nil
}

func sbomTool() (string, error) {
	if p := os.Getenv(EnvSBOMTool); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", errors.New("SBOM: " + EnvSBOMTool + "=" + p + ": " + err.Error())
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "strata-sbom")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("strata-sbom"); err == nil {
		return p, nil
	}
	return "", errors.New("SBOM needs the strata-sbom command (syft's cataloguer, a module of its own): build it with `cd sbom && go build -o DIR/strata-sbom ./cmd/strata-sbom` and put it beside strata, on PATH, or name it in " + EnvSBOMTool)
}

// sbomOf catalogs the image id (manifest digest d) with the strata-sbom
// binary tool.
func (s *Session) sbomOf(ctx context.Context, id, d, name, tool string, pr *progress) ([]byte, error) {
	if name == "" {
		name = "image"
	}
	b, err := s.rt.SBOM(ctx, id, runners.SBOMOptions{Tool: tool, Name: name, Version: d, Builder: "strata", BuilderVersion: strataVersion()})
	if err != nil {
		return nil, err
	}
	var doc struct {
		SPDXVersion string            `json:"spdxVersion"`
		Packages    []json.RawMessage `json:"packages"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.SPDXVersion == "" {
		return nil, errors.New("strata-sbom wrote no SPDX document: " + tool)
	}
	pr.printf("sbom: %d packages (%s)\n", len(doc.Packages), doc.SPDXVersion)
	return b, nil
}
