package integration

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var updateCompare = flag.Bool("update", false, "rewrite dockerfile/testdata/compare.golden (TestSideBySideWithBuildah)")

// TestSideBySideWithBuildah builds every Dockerfile of the corpus with
// strata and with Debian's `buildah bud --layers` (cmd/strata-compare, the
// tool behind make compare-buildah) and checks each outcome and each
// difference against dockerfile/testdata/compare.golden: which files both
// build the same, which differ and how (each a place where buildah 1.28
// departs from Docker's behaviour; README "Side by side"), which either
// refuses. strata must refuse nothing that buildah builds. It runs in
// make compare-golden, outside make test (a comparison of two builders).
func TestSideBySideWithBuildah(t *testing.T) {
	requireRootless(t)
	if testing.Short() {
		t.Skip("builds the corpus twice")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Skip("the buildah command is needed (make setup installs it)")
	}
	bin := tool(t, "STRATA_COMPARE", "./cmd/strata-compare")
	root := repoRoot()
	work := filepath.Join(storeRoot(t), "compare")
	cmd := exec.Command(bin, "-work", work, "-corpus", filepath.Join(root, "dockerfile", "testdata", "corpus"),
		"-context", filepath.Join(root, "dockerfile", "testdata", "context"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
		t.Fatalf("strata-compare: %v\n%s", err, out)
	}
	var got []string
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "== "):
			got = append(got, strings.TrimPrefix(l, "== "))
		case strings.HasSuffix(l, "(strata | buildah)"):
			got = append(got, l)
		case strings.HasPrefix(l, "   strata: ") || strings.HasPrefix(l, "   buildah: ") ||
			strings.Contains(l, "first try") || strings.Contains(l, "Dockerfiles:"):
			t.Log(l)
		}
	}
	for _, l := range got {
		if strings.HasSuffix(l, ": strata refused") {
			t.Errorf("strata refused what buildah built: %s", l)
		}
	}
	golden := filepath.Join(root, "dockerfile", "testdata", "compare.golden")
	text := strings.Join(got, "\n") + "\n"
	if *updateCompare {
		if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
			t.Fatalf("writing %s: %v\nits content would be:\n%s", golden, err, text)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != text {
		// The full output first, the changed lines last: a CI log that
		// keeps only its tail still says what changed.
		t.Logf("full output:\n%s", out)
		t.Errorf("the side-by-side results changed; if the change is right, run with -update or write this to %s:\n%s\nchanged lines (- golden, + this run):\n%s",
			golden, text, lineDiff(string(want), text))
	}
}

// lineDiff lists the lines only one of two texts holds.
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] == 0 {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] == 0 {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
