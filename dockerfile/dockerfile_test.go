package dockerfile

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// header reads "# args: K=V ...", "# contexts: name ..." and "# target:
// name" lines at the top of a corpus file.
func header(t *testing.T, data []byte) Options {
	t.Helper()
	o := Options{Platform: "linux/amd64", BaseConfig: fakeBaseConfig}
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		if v, ok := strings.CutPrefix(l, "# args:"); ok {
			o.BuildArgs = map[string]string{}
			for _, kv := range strings.Fields(v) {
				k, val, _ := strings.Cut(kv, "=")
				o.BuildArgs[k] = val
			}
		}
		if v, ok := strings.CutPrefix(l, "# contexts:"); ok {
			o.Contexts = map[string]bool{}
			for _, name := range strings.Fields(v) {
				o.Contexts[name] = true
			}
		}
		if v, ok := strings.CutPrefix(l, "# target:"); ok {
			o.Target = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "# platform:"); ok {
			o.Platform = strings.TrimSpace(v)
		}
	}
	return o
}

// fakeBaseConfig stands in for registry lookups: busybox has a PATH and
// no working directory; other images have an empty config.
func fakeBaseConfig(ref string) (*BaseConfig, error) {
	switch ref {
	case "onbuild-image":
		return &BaseConfig{WorkingDir: "/app", OnBuild: []string{"COPY app.txt /app/", "RUN echo $HOME built"}, Env: []string{"HOME=/root"}}, nil
	case "onbuild-bad":
		return &BaseConfig{OnBuild: []string{"FROM x"}}, nil
	}
	if strings.HasPrefix(ref, "busybox") {
		return &BaseConfig{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}, nil
	}
	return nil, nil
}

type stageView struct {
	Index    int
	Name     string `json:",omitempty"`
	Base     string
	Platform string `json:",omitempty"`
	Ops      []opView
}

type opView struct {
	Line        int
	Instruction string
	Args        []string     `json:",omitempty"`
	KV          []KV         `json:",omitempty"`
	Exec        bool         `json:",omitempty"`
	Shell       []string     `json:",omitempty"`
	Env         []KV         `json:",omitempty"`
	ProxyEnv    []KV         `json:",omitempty"`
	Mounts      []mountView  `json:",omitempty"`
	Network     string       `json:",omitempty"`
	Devices     []string     `json:",omitempty"`
	Copy        *copyView    `json:",omitempty"`
	Health      *Healthcheck `json:",omitempty"`
	ResetCmd    bool         `json:",omitempty"`
}

type copyView struct {
	Add          bool     `json:",omitempty"`
	Sources      []string `json:",omitempty"`
	Inline       []Inline `json:",omitempty"`
	Dest         string
	From         string   `json:",omitempty"`
	Chown, Chmod string   `json:",omitempty"`
	Link         bool     `json:",omitempty"`
	Parents      bool     `json:",omitempty"`
	KeepGitDir   bool     `json:",omitempty"`
	Excludes     []string `json:",omitempty"`
	Checksum     string   `json:",omitempty"`
	Unpack       *bool    `json:",omitempty"`
}

type mountView struct {
	Type, Target, Source, ID, Sharing, Env string  `json:",omitempty"`
	ReadOnly, Required                     bool    `json:",omitempty"`
	Mode, UID, GID                         *uint64 `json:",omitempty"`
	From                                   string  `json:",omitempty"`
}

// fromView names where a COPY --from or a mount's from= reads: a stage,
// a named build context or an image.
func fromView(stage *Stage, context, image string) string {
	switch {
	case stage != nil:
		return "stage " + stage.Ref()
	case context != "":
		return "context " + context
	case image != "":
		return "image " + image
	}
	return ""
}

func view(f *File) []stageView {
	var out []stageView
	for _, s := range f.Stages {
		if !s.Needed {
			continue
		}
		sv := stageView{Index: s.Index, Name: s.Name, Platform: s.Platform}
		switch {
		case s.BaseStage != nil:
			sv.Base = "stage " + s.BaseStage.Ref()
		case s.BaseContext != "":
			sv.Base = "context " + s.BaseContext
		default:
			sv.Base = s.BaseImage
		}
		for _, op := range s.Ops {
			ov := opView{Line: op.Pos.Line, Instruction: op.Instruction, Args: op.Args, KV: op.KV, Exec: op.Exec,
				Shell: op.Shell, Env: op.Env, ProxyEnv: op.ProxyEnv, Network: op.Network, Devices: op.Devices,
				Health: op.Health, ResetCmd: op.ResetCmd}
			for _, m := range op.Mounts {
				ov.Mounts = append(ov.Mounts, mountView{Type: m.Type, Target: m.Target, Source: m.Source, ID: m.ID,
					Sharing: m.Sharing, Env: m.Env, ReadOnly: m.ReadOnly, Required: m.Required, Mode: m.Mode, UID: m.UID, GID: m.GID,
					From: fromView(m.FromStage, m.FromContext, m.FromImage)})
			}
			if c := op.Copy; c != nil {
				cv := &copyView{Add: c.Add, Sources: c.Sources, Inline: c.Inline, Dest: c.Dest, Chown: c.Chown, Chmod: c.Chmod,
					Link: c.Link, Parents: c.Parents, KeepGitDir: c.KeepGitDir, Excludes: c.Excludes, Checksum: c.Checksum, Unpack: c.Unpack,
					From: fromView(c.FromStage, c.FromContext, c.FromImage)}
				ov.Copy = cv
			}
			sv.Ops = append(sv.Ops, ov)
		}
		out = append(out, sv)
	}
	return out
}

// TestCorpus translates every corpus (and translate/) Dockerfile and compares the stages the
// target needs, op by op, with its golden file (go test -update rewrites
// them).
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("corpus has %d Dockerfiles, want at least 40", len(files))
	}
	// testdata/translate holds Dockerfiles that need what the build
	// comparison with buildah (cmd/strata-compare, which builds the
	// corpus) cannot give them: named build contexts, registry images.
	more, err := filepath.Glob("testdata/translate/*.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			o := header(t, data)
			o.Name = filepath.Base(f)
			df, err := Parse(data, o)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := json.MarshalIndent(struct {
				Target string
				Stages []stageView
				Notes  []string `json:",omitempty"`
			}{df.Target.Ref(), view(df), df.Notes}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(f, ".Dockerfile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("translation differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestErrors checks that each broken Dockerfile fails with the error (and
// position) in its golden file.
func TestErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			o := header(t, data)
			o.Name = filepath.Base(f)
			_, err = Parse(data, o)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Errorf("error %v (%T) is not a *dockerfile.Error", err, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".Dockerfile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("error = %q, want %q", got, want)
			}
		})
	}
}

// TestDuplicateStageName: as in BuildKit, a FROM names the stage of that
// name defined before it, while --from and --target name the last one;
// the reuse is a note, not an error.
func TestDuplicateStageName(t *testing.T) {
	data, err := os.ReadFile("testdata/corpus/74-duplicate-stage.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	o := header(t, data)
	df, err := Parse(data, o)
	if err != nil {
		t.Fatal(err)
	}
	if b := df.Stages[1].BaseStage; b == nil || b.Index != 0 {
		t.Errorf("FROM tool AS tool is based on %+v; want stage 0", b)
	}
	if f := df.Stages[2].Ops[0].Copy.FromStage; f == nil || f.Index != 1 {
		t.Errorf("COPY --from=tool reads %+v; want stage 1", f)
	}
	if len(df.Notes) != 1 || !strings.Contains(df.Notes[0], `stage name "tool" is used again`) {
		t.Errorf("notes %q; want one about the reused name", df.Notes)
	}
	o.Target = "tool"
	if df, err = Parse(data, o); err != nil || df.Target.Index != 1 {
		t.Errorf("--target tool builds %+v (%v); want stage 1", df.Target, err)
	}
}
