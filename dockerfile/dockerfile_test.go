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

// header reads "# args: K=V ..." and "# target: name" lines at the top of a
// corpus file.
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
		if v, ok := strings.CutPrefix(l, "# target:"); ok {
			o.Target = strings.TrimSpace(v)
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
	Index int
	Name  string `json:",omitempty"`
	Base  string
	Ops   []opView
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
	Excludes     []string `json:",omitempty"`
	Checksum     string   `json:",omitempty"`
	Unpack       *bool    `json:",omitempty"`
}

type mountView struct {
	Type, Target, Source, ID, Sharing, Env string  `json:",omitempty"`
	ReadOnly, Required                     bool    `json:",omitempty"`
	Mode, UID, GID                         *uint64 `json:",omitempty"`
}

func view(f *File) []stageView {
	var out []stageView
	for _, s := range f.Stages {
		if !s.Needed {
			continue
		}
		sv := stageView{Index: s.Index, Name: s.Name}
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
					Sharing: m.Sharing, Env: m.Env, ReadOnly: m.ReadOnly, Required: m.Required, Mode: m.Mode, UID: m.UID, GID: m.GID})
			}
			if c := op.Copy; c != nil {
				cv := &copyView{Add: c.Add, Sources: c.Sources, Inline: c.Inline, Dest: c.Dest, Chown: c.Chown, Chmod: c.Chmod,
					Link: c.Link, Excludes: c.Excludes, Checksum: c.Checksum, Unpack: c.Unpack}
				switch {
				case c.FromStage != nil:
					cv.From = "stage " + c.FromStage.Ref()
				case c.FromImage != "":
					cv.From = "image " + c.FromImage
				}
				ov.Copy = cv
			}
			sv.Ops = append(sv.Ops, ov)
		}
		out = append(out, sv)
	}
	return out
}

// TestCorpus translates every corpus Dockerfile and compares the stages the
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
