package builder

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stratabuild/strata/runners"
)

// planOutcome is everything a planned chain gives the runner, as text,
// or the error that planning (or the chain) reports.
func planOutcome(t *testing.T, img Image, dirs ...string) (string, error) {
	t.Helper()
	if err := img.Err(); err != nil {
		return "", err
	}
	pe := newPlanEnv(&runners.Resolver{}, nil, dirs[0])
	p, err := plan(context.Background(), img, pe)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	var walk func(prefix string, p *Plan)
	walk = func(prefix string, p *Plan) {
		for _, st := range p.Steps {
			fmt.Fprintf(&b, "%s%d %s force=%v key=%s\n%s\n", prefix, st.Index, st.Method, st.Force, st.Key, runView(t, st, dirs...))
			for i, dp := range st.deps {
				walk(fmt.Sprintf("%s%d.%d/", prefix, st.Index, i), dp)
			}
		}
	}
	walk("", p)
	return b.String(), nil
}

// baseOutcome is what a base constructor recorded (no registry is asked):
// the base's source, and the steps it adds.
func baseOutcome(img Image) (string, error) {
	if err := img.Err(); err != nil {
		return "", err
	}
	var b strings.Builder
	for n := img.root(); n != nil; n = n.parent {
		if n.base != nil {
			fmt.Fprintf(&b, "base %s %#v\n", n.base.method, n.base.src)
		} else {
			fmt.Fprintf(&b, "step %s %q %#v\n", n.step.method, n.step.args, n.step.opts)
		}
	}
	return ptrRE.ReplaceAllString(b.String(), "(ptr)"), nil
}

// TestEveryOptionAppliesOrFails passes every exported option to every
// step and base constructor whose signature accepts it. Each pair either
// changes what the plan gives the runner (or, for a base, what the base
// records), or is an error that names the option; an option that is
// accepted and does nothing fails the test.
func TestEveryOptionAppliesOrFails(t *testing.T) {
	dir := tempTree(t, map[string]string{
		"req.txt":              "numpy\n",
		"proj/pyproject.toml":  "[project]\nname='p'\ndependencies=['b>=1','a']\n[project.optional-dependencies]\ntest=['pytest']\n",
		"proj/uv.lock":         "lock",
		"proj/poetry.lock":     "lock",
		"other.lock":           "other lock",
		"env.yaml":             "name: base\n",
		"src/a.txt":            "a",
		"src/b.tmp":            "b",
		"mod/pkg/__init__.py":  "",
		"mod2/pkg/__init__.py": "other = 1\n",
		"conf":                 "c",
		"ctx2/conf":            "other",
		"Dockerfile":           "FROM base AS x\nARG A\nRUN echo hi $A\nFROM x\nCOPY conf /conf\n",
	})
	t.Setenv("PYTHONPATH", filepath.Join(dir, "mod"))
	mountRoot := t.TempDir()
	base := FromArchive(emptyRootfs(t))
	tok := SecretFromMap("tok", map[string]string{"TOKEN": "x"})
	reg := SecretFromMap("reg", map[string]string{"REGISTRY_USERNAME": "u", "REGISTRY_PASSWORD": "p"})
	gh := SecretFromMap("gh", map[string]string{"GITHUB_TOKEN": "t0k"})
	proj := filepath.Join(dir, "proj")
	pyproject := filepath.Join(proj, "pyproject.toml")

	runOpts := map[string]RunOption{
		"ForceBuild": ForceBuild(), "WithEnv": WithEnv(map[string]string{"E": "1"}), "WithSecrets": WithSecrets(tok),
		"GPU": GPU("any"), "CacheMount": CacheMount("/root/.cache"), "LockedCacheMount": LockedCacheMount("/root/.cache"),
	}
	pkgOpts := map[string]PackageOption{
		"FindLinks": FindLinks("/wheels"), "IndexURL": IndexURL("http://127.0.0.1:9/simple"),
		"ExtraIndexURL": ExtraIndexURL("http://127.0.0.1:9/extra"), "Pre": Pre(), "ExtraOptions": ExtraOptions("--no-deps"),
		"Requirements": Requirements(filepath.Join(dir, "req.txt")), "UvVersion": UvVersion("0.9.5"),
		"Groups": Groups("dev"), "Extras": Extras("gpu"), "Frozen": Frozen(false),
		"PoetryWith": PoetryWith("dev"), "PoetryWithout": PoetryWithout("docs"), "PoetryOnly": PoetryOnly("main"),
		"PoetryVersion": PoetryVersion("1.8.3"), "Lockfile": Lockfile(filepath.Join(dir, "other.lock")),
		"IgnoreLockfile": IgnoreLockfile(), "OldInstaller": OldInstaller(), "Channels": Channels("pytorch"),
		"SpecFile": SpecFile(filepath.Join(dir, "env.yaml")), "OptionalDependencies": OptionalDependencies("test"),
	}
	for name, o := range runOpts {
		pkgOpts[name] = o
	}
	addOpts := map[string]AddOption{
		"ForceBuild": ForceBuild(), "Copy": Copy(), "Ignore": Ignore("*.tmp"), "PythonPath": PythonPath(filepath.Join(dir, "mod2")),
	}
	stepOpts := map[string]StepOption{"ForceBuild": ForceBuild()}
	dfOpts := map[string]DockerfileOption{
		"ContextDir": ContextDir(filepath.Join(dir, "ctx2")), "BuildArgs": BuildArgs(map[string]string{"A": "1"}),
		"Target": Target("x"), "BuildContext": BuildContext("base", base.Env(map[string]string{"X": "1"})),
		"ContextFiles": ContextFiles(map[string]string{"conf": filepath.Join(dir, "src", "a.txt")}),
		"Ignore":       Ignore("conf"), "AddPython": AddPython("3.12"),
	}
	for name, o := range runOpts {
		dfOpts[name] = o
	}
	for name, o := range addOpts {
		dfOpts[name] = o.(DockerfileOption)
	}
	_ = gh

	type ctor struct {
		name string
		make func(opts []string) Image // applies the named options
	}
	groups := []struct {
		options []string
		ctors   []ctor
	}{
		{keys(stepOpts), []ctor{
			{"Env", func(o []string) Image { return base.Env(map[string]string{"A": "1"}, pickFrom(o, stepOpts)...) }},
			{"Workdir", func(o []string) Image { return base.Workdir("/w", pickFrom(o, stepOpts)...) }},
			{"Entrypoint", func(o []string) Image { return base.Entrypoint([]string{"/a"}, pickFrom(o, stepOpts)...) }},
			{"Cmd", func(o []string) Image { return base.Cmd([]string{"a"}, pickFrom(o, stepOpts)...) }},
		}},
		{keys(runOpts), []ctor{
			{"RunCommands", func(o []string) Image { return base.RunCommands([]string{"echo a"}, pickFrom(o, runOpts)...) }},
			{"RunFunction", func(o []string) Image { return base.RunFunction(lowerFn, []string{"a"}, pickFrom(o, runOpts)...) }},
		}},
		{keys(addOpts), []ctor{
			// A run step follows each, so that Copy (copied in place, not
			// added last) shows in the plan.
			{"AddLocalFile", func(o []string) Image {
				return base.AddLocalFile(filepath.Join(dir, "conf"), "/conf", pickFrom(o, addOpts)...).RunCommands([]string{"true"})
			}},
			{"AddLocalDir", func(o []string) Image {
				return base.AddLocalDir(filepath.Join(dir, "src"), "/src", pickFrom(o, addOpts)...).RunCommands([]string{"true"})
			}},
			{"CopyLocalDir", func(o []string) Image {
				return base.CopyLocalDir(filepath.Join(dir, "src"), "/src", pickFrom(o, addOpts)...).RunCommands([]string{"true"})
			}},
			{"AddLocalPythonSource", func(o []string) Image {
				return base.AddLocalPythonSource([]string{"pkg"}, pickFrom(o, addOpts)...).RunCommands([]string{"true"})
			}},
		}},
		{keys(pkgOpts), []ctor{
			{"AptInstall", func(o []string) Image { return base.AptInstall([]string{"git"}, pickFrom(o, pkgOpts)...) }},
			{"PipInstall", func(o []string) Image { return base.PipInstall([]string{"numpy"}, pickFrom(o, pkgOpts)...) }},
			{"PipInstallFromRequirements", func(o []string) Image {
				return base.PipInstallFromRequirements(filepath.Join(dir, "req.txt"), pickFrom(o, pkgOpts)...)
			}},
			{"PipInstallFromPyproject", func(o []string) Image { return base.PipInstallFromPyproject(pyproject, pickFrom(o, pkgOpts)...) }},
			{"PipInstallPrivateRepos", func(o []string) Image {
				return base.PipInstallPrivateRepos([]string{"github.com/ecorp/one@1.0"}, "erik", append([]PackageOption{WithSecrets(gh)}, pickFrom(o, pkgOpts)...)...)
			}},
			{"UvPipInstall", func(o []string) Image { return base.UvPipInstall([]string{"rich"}, pickFrom(o, pkgOpts)...) }},
			{"UvSync", func(o []string) Image { return base.UvSync(proj, pickFrom(o, pkgOpts)...) }},
			{"PoetryInstallFromFile", func(o []string) Image { return base.PoetryInstallFromFile(pyproject, pickFrom(o, pkgOpts)...) }},
			{"MicromambaInstall", func(o []string) Image { return base.MicromambaInstall([]string{"numpy"}, pickFrom(o, pkgOpts)...) }},
		}},
		{keys(dfOpts), []ctor{
			{"FromDockerfile", func(o []string) Image {
				return FromDockerfile(filepath.Join(dir, "Dockerfile"), append([]DockerfileOption{ContextDir(dir), BuildContext("base", base)}, pickFrom(o, dfOpts)...)...)
			}},
			{"DockerfileCommands", func(o []string) Image {
				return base.DockerfileCommands([]string{"ARG A", "RUN echo hi $A", "COPY conf /conf", "COPY --from=base /etc /e"},
					append([]DockerfileOption{ContextDir(dir), BuildContext("base", base)}, pickFrom(o, dfOpts)...)...)
			}},
		}},
	}
	for _, g := range groups {
		for _, c := range g.ctors {
			without, err := planOutcome(t, c.make(nil), mountRoot, dir)
			if err != nil {
				t.Fatalf("%s without options: %v", c.name, err)
			}
			for _, opt := range g.options {
				if c.name == "CopyLocalDir" && opt == "Copy" {
					continue // what CopyLocalDir does already: redundant, not ignored
				}
				t.Run(c.name+"/"+opt, func(t *testing.T) {
					with, err := planOutcome(t, c.make([]string{opt}), mountRoot, dir)
					switch {
					case err != nil && !strings.Contains(err.Error(), opt):
						t.Errorf("%s(%s): the error does not name the option: %v", c.name, opt, err)
					case err != nil && !strings.Contains(err.Error(), "step "):
						t.Errorf("%s(%s): the error does not name the step: %v", c.name, opt, err)
					case err == nil && with == without:
						t.Errorf("%s(%s) is accepted and changes nothing the runner is given", c.name, opt)
					}
				})
			}
		}
	}

	// Bases: what the base records (no registry is asked here).
	baseOpts := map[string]BaseOption{
		"WithRegistryAuth": WithRegistryAuth(reg), "Mirror": Mirror("http://127.0.0.1:9/debian"),
		"Include": Include("curl"), "AptOptions": AptOptions("Acquire::Retries \"3\";"),
		"AddPython": AddPython("3.12"), "UseDebianMirror": UseDebianMirror("bookworm"),
	}
	for _, c := range []ctor{
		{"FromRegistry", func(o []string) Image { return FromRegistry("registry.example.com/app:1", pickFrom(o, baseOpts)...) }},
		{"DebianMirror", func(o []string) Image { return DebianMirror("bookworm", pickFrom(o, baseOpts)...) }},
		{"DebianSlim", func(o []string) Image { return DebianSlim("3.11", pickFrom(o, baseOpts)...) }},
		{"Micromamba", func(o []string) Image { return Micromamba("3.11", pickFrom(o, baseOpts)...) }},
	} {
		without, err := baseOutcome(c.make(nil))
		if err != nil {
			t.Fatalf("%s without options: %v", c.name, err)
		}
		for _, opt := range keys(baseOpts) {
			t.Run(c.name+"/"+opt, func(t *testing.T) {
				with, err := baseOutcome(c.make([]string{opt}))
				switch {
				case err != nil && (!strings.Contains(err.Error(), opt) || !strings.Contains(err.Error(), c.name)):
					t.Errorf("%s(%s): the error names neither the option nor the base: %v", c.name, opt, err)
				case err == nil && with == without:
					t.Errorf("%s(%s) is accepted and changes nothing the base records", c.name, opt)
				}
			})
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pickFrom returns the options of m that names name, in order.
func pickFrom[V any](names []string, m map[string]V) []V {
	var out []V
	for _, n := range names {
		out = append(out, m[n])
	}
	return out
}

// TestSignByRefusesBadInput: SignBy's errors name it and say what to
// give; none holds the passphrase.
func TestSignByRefusesBadInput(t *testing.T) {
	const pass = "pw-6c1d9e"
	two := SecretFromMap("two", map[string]string{"A": pass, "B": "x"})
	for _, tc := range []struct {
		name string
		opts []BuildOption
		want string
	}{
		{"two variables", []BuildOption{SignBy("key", two), Push("127.0.0.1:1/x")}, "holds 2 variables"},
		{"no key", []BuildOption{SignBy("", SecretFromMap("p", map[string]string{"P": pass})), Push("127.0.0.1:1/x")}, "no key file"},
		{"no push", []BuildOption{SignBy("key", SecretFromMap("p", map[string]string{"P": pass})), ExportTo("oci:/tmp/x:y")}, "add Push"},
		{"missing key file", []BuildOption{SignBy(filepath.Join(t.TempDir(), "none.key"), SecretFromMap("p", map[string]string{"P": pass})), Push("127.0.0.1:1/x")}, "none.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bo buildOptions
			for _, o := range tc.opts {
				o.applyBuild(&bo)
			}
			err := bo.err
			if err == nil {
				_, err = openSigner(bo)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "SignBy") {
				t.Fatalf("error %v, want one naming SignBy and saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), pass) {
				t.Errorf("the error holds the passphrase: %v", err)
			}
		})
	}
}
