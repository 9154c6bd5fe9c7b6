package integration

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
)

var shortDigest = regexp.MustCompile(`sha256:[0-9a-f]{8}…`)

// TestExplainedMisses builds an image once, then asks Explain about
// changed definitions: each kind of change is reported with its exact
// message, on the first step that runs, and the steps after it say their
// parent changed.
func TestExplainedMisses(t *testing.T) {
	requireRootless(t)
	ctx := context.Background()
	s := openSession(t)
	tarA := busyboxTar(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.py"), "print(1)\n")
	writeFile(t, filepath.Join(dir, "run.sh"), "echo run\n")
	writeFile(t, filepath.Join(dir, "old.txt"), "old\n")
	tok := builder.SecretFromMap("tok", map[string]string{"TOKEN": "first-value"})

	type def struct {
		base   string
		cmd    string
		env    string
		gpu    bool
		ignore []string
		force  bool
		secret builder.Secret
	}
	mk := func(d def) builder.Image {
		img := builder.FromArchive(d.base)
		ropts := []builder.RunOption{builder.WithEnv(map[string]string{"MODE": d.env}), builder.WithSecrets(d.secret)}
		if d.gpu {
			ropts = append(ropts, builder.GPU("any"))
		}
		if d.force {
			ropts = append(ropts, builder.ForceBuild())
		}
		aopts := []builder.AddOption{builder.Copy()}
		if d.ignore != nil {
			aopts = append(aopts, builder.Ignore(d.ignore...))
		}
		return img.RunCommands([]string{d.cmd}, ropts...).
			AddLocalDir(dir, "/app", aopts...).
			RunCommands([]string{"ls /app"})
	}
	orig := def{base: tarA, cmd: "echo a", env: "x", secret: tok}
	if _, err := s.Build(ctx, mk(orig), builder.WithTag("app")); err != nil {
		t.Fatal(err)
	}
	explain := func(d def, tag string) []string {
		t.Helper()
		var opts []builder.BuildOption
		if tag != "" {
			opts = append(opts, builder.WithTag(tag))
		}
		ex, err := s.Explain(ctx, mk(d), opts...)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ex {
			r := "cached"
			if !e.Cached {
				r = shortDigest.ReplaceAllString(e.Reason, "sha256:X…")
			}
			out = append(out, r)
		}
		return out
	}
	if got := explain(orig, "app"); strings.Join(got, "|") != "cached|cached|cached|cached" {
		t.Fatalf("unchanged definition: %q", got)
	}

	changed := func(f func(*def)) def { d := orig; f(&d); return d }
	tarB := filepath.Join(t.TempDir(), "b.tar")
	raw, err := os.ReadFile(tarA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tarB, append(raw, make([]byte, 1024)...), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		d     def
		edit  func()
		undo  func()
		want  []string
		notag bool
	}{
		{name: "argument", d: changed(func(d *def) { d.cmd = "echo b" }),
			want: []string{"cached", `argument changed ["echo a"] -> ["echo b"]`, "parent changed (step 1 rebuilt)", "parent changed (step 2 rebuilt)"}},
		{name: "env", d: changed(func(d *def) { d.env = "y" }),
			want: []string{"cached", `env MODE changed ("x" -> "y")`, "parent changed (step 1 rebuilt)", "parent changed (step 2 rebuilt)"}},
		{name: "option", d: changed(func(d *def) { d.gpu = true }),
			want: []string{"cached", `option gpu added ("any")`, "parent changed (step 1 rebuilt)", "parent changed (step 2 rebuilt)"}},
		{name: "file content", d: orig,
			edit: func() { writeFile(t, filepath.Join(dir, "main.py"), "print(2)\n") },
			undo: func() { writeFile(t, filepath.Join(dir, "main.py"), "print(1)\n") },
			want: []string{"cached", "cached", "main.py changed (sha256:X… -> sha256:X…)", "parent changed (step 2 rebuilt)"}},
		{name: "file mode", d: orig,
			edit: func() { os.Chmod(filepath.Join(dir, "run.sh"), 0o755) },
			undo: func() { os.Chmod(filepath.Join(dir, "run.sh"), 0o644) },
			want: []string{"cached", "cached", "run.sh mode changed (0644 -> 0755)", "parent changed (step 2 rebuilt)"}},
		{name: "file added and removed", d: orig,
			edit: func() {
				writeFile(t, filepath.Join(dir, "new.py"), "new\n")
				os.Remove(filepath.Join(dir, "old.txt"))
			},
			undo: func() {
				os.Remove(filepath.Join(dir, "new.py"))
				writeFile(t, filepath.Join(dir, "old.txt"), "old\n")
			},
			want: []string{"cached", "cached", "1 file added (new.py), 1 file removed (old.txt)", "parent changed (step 2 rebuilt)"}},
		{name: "ignore pattern", d: changed(func(d *def) { d.ignore = []string{"*.tmp"} }),
			want: []string{"cached", "cached", `ignore patterns changed [] -> ["*.tmp"]`, "parent changed (step 2 rebuilt)"}},
		{name: "base digest", d: changed(func(d *def) { d.base = tarB }),
			want: []string{"base image changed (sha256:X… -> sha256:X…)", "parent changed (step 0 rebuilt)", "parent changed (step 1 rebuilt)", "parent changed (step 2 rebuilt)"}},
		{name: "base digest, no name", d: changed(func(d *def) { d.base = tarB }), notag: true,
			want: []string{"no earlier build of this image in this cache", "no earlier build of this image in this cache", "no earlier build of this image in this cache", "no earlier build of this image in this cache"}},
		{name: "force", d: changed(func(d *def) { d.force = true }),
			want: []string{"cached", "forced (ForceBuild)", "forced (step 1 forced)", "forced (step 1 forced)"}},
		{name: "secret value", d: changed(func(d *def) {
			d.secret = builder.SecretFromMap("tok", map[string]string{"TOKEN": "second-value"})
		}), want: []string{"cached", "cached", "cached", "cached"}},
		{name: "without a name, by parent", d: changed(func(d *def) { d.cmd = "echo b" }), notag: true,
			want: []string{"cached", `argument changed ["echo a"] -> ["echo b"]`, "parent changed (step 1 rebuilt)", "parent changed (step 2 rebuilt)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.edit != nil {
				c.edit()
				defer c.undo()
			}
			tag := "app"
			if c.notag {
				tag = ""
			}
			got := explain(c.d, tag)
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("reasons:\n got %q\nwant %q", got, c.want)
			}
		})
	}

	// Build reports the same reason in its result and progress line.
	var out strings.Builder
	res, err := s.Build(ctx, mk(changed(func(d *def) { d.cmd = "echo b" })), builder.WithTag("app"), builder.WithOutput(&out))
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Steps[1].Reason; r != `argument changed ["echo a"] -> ["echo b"]` {
		t.Errorf("StepResult.Reason = %q", r)
	}
	if !strings.Contains(out.String(), `RUN (argument changed ["echo a"] -> ["echo b"])`) {
		t.Errorf("progress does not give the reason:\n%s", out.String())
	}
	if strings.Contains(out.String(), "first-value") {
		t.Error("the progress output holds the secret's value")
	}

	// ForceBuildAll (what strata build --force-build passes) forces every
	// step of the session, base included, and says so.
	root := filepath.Dir(s.Store().GraphRoot())
	s2, err := builder.Open(ctx, builder.WithStore(s.Store().GraphRoot(), filepath.Join(root, "run")), builder.ForceBuildAll())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ex, err := s2.Explain(ctx, mk(orig), builder.WithTag("app"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ex {
		got = append(got, e.Reason)
	}
	if want := []string{"forced (ForceBuildAll)", "forced (step 0 forced)", "forced (step 0 forced)", "forced (step 0 forced)"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("ForceBuildAll reasons:\n got %q\nwant %q", got, want)
	}
}
