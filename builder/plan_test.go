package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/layers"
)

func tempTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func planKeys(t *testing.T, img Image) []layers.Key {
	t.Helper()
	p, err := img.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ks []layers.Key
	for _, s := range p.Steps {
		ks = append(ks, s.Key)
	}
	return ks
}

func lastKey(t *testing.T, img Image) layers.Key {
	ks := planKeys(t, img)
	return ks[len(ks)-1]
}

func TestKeySensitivity(t *testing.T) {
	dir := tempTree(t, map[string]string{"base.tar": "base", "other.tar": "other", "src/a.txt": "a", "src/b.tmp": "b", "conf": "c"})
	base := filepath.Join(dir, "base.tar")
	src := filepath.Join(dir, "src")
	build := func(mut func(*variant)) Image {
		v := variant{base: base, cmds: []string{"echo hi"}, env: map[string]string{"A": "1"}, runEnv: map[string]string{"R": "1"},
			ignore: []string{"*.tmp"}, dest: "/app", cmd: []string{"run"}, secret: "s3cret"}
		if mut != nil {
			mut(&v)
		}
		return v.image(src)
	}
	ref := lastKey(t, build(nil))
	if again := lastKey(t, build(nil)); again != ref {
		t.Fatalf("same definition, two keys: %s %s", ref, again)
	}
	cases := []struct {
		name string
		mut  func(*variant)
		same bool
	}{
		{"base content", func(v *variant) { v.base = filepath.Join(dir, "other.tar") }, false},
		{"command", func(v *variant) { v.cmds = []string{"echo ho"} }, false},
		{"command count", func(v *variant) { v.cmds = []string{"echo hi", "true"} }, false},
		{"env value", func(v *variant) { v.env = map[string]string{"A": "2"} }, false},
		{"run env", func(v *variant) { v.runEnv = map[string]string{"R": "2"} }, false},
		{"ignore pattern", func(v *variant) { v.ignore = []string{"*.txt"} }, false},
		{"destination", func(v *variant) { v.dest = "/srv" }, false},
		{"cmd", func(v *variant) { v.cmd = []string{"run", "--x"} }, false},
		{"shell", func(v *variant) { v.shell = []string{"/bin/bash", "-c"} }, false},
		{"step order", func(v *variant) { v.swap = true }, false},
		{"workdir", func(v *variant) { v.workdir = "/w" }, false},
		{"secret value", func(v *variant) { v.secret = "other-value" }, true},
		{"force build", func(v *variant) { v.force = true }, true},
		{"default shell spelled out", func(v *variant) { v.shell = []string{"/bin/sh", "-c"} }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := lastKey(t, build(tc.mut))
			if tc.same && k != ref {
				t.Errorf("%s changed the key", tc.name)
			}
			if !tc.same && k == ref {
				t.Errorf("%s did not change the key", tc.name)
			}
		})
	}
	// File content, mode and ignored files.
	if err := os.WriteFile(filepath.Join(src, "b.tmp"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if k := lastKey(t, build(nil)); k != ref {
		t.Error("editing an ignored file changed the key")
	}
	if err := os.Chmod(filepath.Join(src, "a.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k := lastKey(t, build(nil)); k == ref {
		t.Error("a file mode change did not change the key")
	}
	if err := os.Chmod(filepath.Join(src, "a.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("A"), 0o644); err != nil {
		t.Fatal(err)
	}
	if k := lastKey(t, build(nil)); k == ref {
		t.Error("a content change did not change the key")
	}
}

type variant struct {
	base        string
	cmds        []string
	env, runEnv map[string]string
	ignore      []string
	dest        string
	cmd         []string
	shell       []string
	swap, force bool
	workdir     string
	secret      string
}

func (v variant) image(src string) Image {
	img := FromArchive(v.base)
	if v.shell != nil {
		img = img.Shell(v.shell)
	}
	env := func(i Image) Image { return i.Env(v.env) }
	run := func(i Image) Image {
		opts := []RunOption{WithEnv(v.runEnv), WithSecrets(SecretFromMap("tok", map[string]string{"TOKEN": v.secret}))}
		if v.force {
			opts = append(opts, ForceBuild())
		}
		return i.RunCommands(v.cmds, opts...)
	}
	if v.swap {
		img = run(img).With(env)
	} else {
		img = env(img).With(run)
	}
	if v.workdir != "" {
		img = img.Workdir(v.workdir)
	}
	return img.AddLocalDir(src, v.dest, Copy(), Ignore(v.ignore...)).Cmd(v.cmd)
}

func TestNonCopyAddsComeLastAndDoNotTouchBuildKeys(t *testing.T) {
	dir := tempTree(t, map[string]string{"base.tar": "base", "conf": "1"})
	conf := filepath.Join(dir, "conf")
	img := FromArchive(filepath.Join(dir, "base.tar")).
		AddLocalFile(conf, "/etc/conf").
		RunCommands([]string{"true"}).
		Cmd([]string{"x"})
	p, err := img.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, s := range p.Steps {
		methods = append(methods, s.Method)
	}
	if got := strings.Join(methods, ","); got != "FromArchive,RunCommands,Cmd,AddLocalFile" {
		t.Fatalf("plan order %s", got)
	}
	if p.Steps[3].Index != 1 {
		t.Fatalf("moved step keeps its index: got %d", p.Steps[3].Index)
	}
	before := planKeys(t, img)
	if err := os.WriteFile(conf, []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	after := planKeys(t, img)
	for i := 0; i < 3; i++ {
		if before[i] != after[i] {
			t.Errorf("editing a non-copy file changed build step %d's key", i)
		}
	}
	if before[3] == after[3] {
		t.Error("editing a non-copy file did not change its own step's key")
	}
}

func TestDeferredErrorsNameTheStep(t *testing.T) {
	dir := tempTree(t, map[string]string{"base.tar": "b"})
	base := FromArchive(filepath.Join(dir, "base.tar"))
	cases := []struct {
		name string
		img  Image
		want string
	}{
		{"empty commands", base.RunCommands(nil), "step 1 (RunCommands): no commands given"},
		{"blank command", base.Env(map[string]string{"A": "1"}).RunCommands([]string{"true", " "}), "step 2 (RunCommands): command 2 is empty"},
		{"relative workdir", base.Workdir("rel"), "step 1 (Workdir): working directory \"rel\" must be an absolute path"},
		{"bad env name", base.Env(map[string]string{"A=B": "1"}), "step 1 (Env): bad variable name"},
		{"bad ignore", base.AddLocalDir(dir, "/x", Ignore("[")), "step 1 (AddLocalDir): ignore pattern"},
		{"relative remote", base.AddLocalFile("f", "x"), "step 1 (AddLocalFile): remote path \"x\" must be absolute"},
		{"missing local", base.AddLocalDir(filepath.Join(dir, "nope"), "/x"), "step 1 (AddLocalDir): local path"},
		{"file given to AddLocalDir", base.AddLocalDir(filepath.Join(dir, "base.tar"), "/x"), "is not a directory"},
		{"bad reference", FromRegistry("Bad::Ref"), "step 0 (FromRegistry): bad image reference"},
		{"missing archive", FromArchive(filepath.Join(dir, "nope.tar")), "step 0 (FromArchive): base archive"},
		{"unset secret", base.RunCommands([]string{"true"}, WithSecrets(SecretFromEnv("STRATA_TEST_UNSET_VAR"))), "step 1 (RunCommands): secret variable STRATA_TEST_UNSET_VAR is not set"},
		{"first error wins", base.RunCommands(nil).Workdir("rel"), "step 1 (RunCommands)"},
		{"registry auth without password", FromRegistry("example.com/a", WithRegistryAuth(SecretFromMap("r", map[string]string{"REGISTRY_USERNAME": "u"}))), "needs REGISTRY_USERNAME and REGISTRY_PASSWORD"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.img.Plan(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestImagesShareAndNeverChange(t *testing.T) {
	dir := tempTree(t, map[string]string{"base.tar": "b"})
	a := FromArchive(filepath.Join(dir, "base.tar")).RunCommands([]string{"echo a"})
	b := a.RunCommands([]string{"echo b"})
	c := a.Shell([]string{"/bin/bash", "-c"}).RunCommands([]string{"echo b"})
	ka, kb, kc := planKeys(t, a), planKeys(t, b), planKeys(t, c)
	if len(ka) != 2 || len(kb) != 3 {
		t.Fatalf("step counts %d %d", len(ka), len(kb))
	}
	if kb[1] != ka[1] || kc[1] != ka[1] {
		t.Error("derived images do not share the prefix's keys")
	}
	if kb[2] == kc[2] {
		t.Error("Shell did not change the later RunCommands key")
	}
	if again := planKeys(t, a); len(again) != 2 || again[1] != ka[1] {
		t.Error("deriving from an image changed it")
	}
	if Scratch().Err() != nil || (Image{}).RunCommands([]string{"x"}).Err() != nil {
		t.Error("the zero Image is not a usable scratch base")
	}
}

func TestSecretValueNeverInSpec(t *testing.T) {
	dir := tempTree(t, map[string]string{"base.tar": "b"})
	const value = "hunter2-very-secret"
	img := FromArchive(filepath.Join(dir, "base.tar")).
		RunCommands([]string{"use-token"}, WithSecrets(SecretFromMap("tok", map[string]string{"TOKEN": value})))
	p, err := img.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		enc, err := layers.Encode("", s.Spec)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(enc), value) || strings.Contains(s.Description, value) {
			t.Fatalf("secret value in %s's spec: %s", s.Name(), enc)
		}
	}
	if got := p.Steps[1].Spec.Secrets; len(got) != 1 || got[0] != "tok/TOKEN" {
		t.Fatalf("secret names in spec: %v", got)
	}
}

func TestForceBuildEnv(t *testing.T) {
	dir := tempTree(t, map[string]string{"base.tar": "b"})
	img := FromArchive(filepath.Join(dir, "base.tar")).RunCommands([]string{"true"})
	t.Setenv(EnvForceBuild, "1")
	p, err := img.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if !s.Force {
			t.Errorf("%s not forced with %s=1", s.Name(), EnvForceBuild)
		}
	}
}

func TestRedaction(t *testing.T) {
	r := redactorFor([]Secret{SecretFromMap("s", map[string]string{"K": "topsecret"})})
	err := r.err(&StepError{Step: "step 1 (RunCommands)", Command: "echo topsecret", ExitCode: 1, Tail: []string{"topsecret"}, Err: os.ErrInvalid})
	if strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("secret in error: %v", err)
	}
}

// TestLongChainPlans plans a 1000-step chain, checks that its keys are all
// different, and reports the cost per step (no timing assertion: the
// figure goes to RELIABILITY.md).
func TestLongChainPlans(t *testing.T) {
	img := Scratch()
	for i := range 1000 {
		img = img.RunCommands([]string{"echo " + strings.Repeat("x", i%50)})
	}
	start := time.Now()
	p, err := img.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if len(p.Steps) != 1001 {
		t.Fatalf("%d steps planned", len(p.Steps))
	}
	seen := map[layers.Key]bool{}
	for _, s := range p.Steps {
		if seen[s.Key] {
			t.Fatalf("two steps of the chain share key %s", s.Key)
		}
		seen[s.Key] = true
	}
	t.Logf("1000-step chain planned in %s (%s per step)", d, d/1000)
}

// TestBuildOptionScope: options given where they do nothing are errors
// that name them.
func TestBuildOptionScope(t *testing.T) {
	t.Parallel()
	var s *Session // neither call gets as far as using the session
	if _, err := s.Explain(context.Background(), Scratch(), WithTag("app"), ExportTo("oci:/tmp/x")); err == nil ||
		!strings.Contains(err.Error(), "ExportTo does not apply to Explain") {
		t.Errorf("Explain with ExportTo: %v", err)
	}
	if _, err := s.Build(context.Background(), Scratch(), WithSession(WithInsecureRegistries())); err == nil ||
		!strings.Contains(err.Error(), "WithSession does not apply to Session.Build") {
		t.Errorf("Session.Build with WithSession: %v", err)
	}
}
