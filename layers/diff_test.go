package layers

import (
	"strings"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	tree := func(files ...TreeEntry) []Tree { return []Tree{{Input: "src", Files: files}} }
	f := func(p string, mode uint32, d string) TreeEntry { return TreeEntry{Path: p, Mode: mode, Digest: d} }
	in := func(d string) []Input { return []Input{{Name: "src", Digest: d}} }
	d1, d2 := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	cases := []struct {
		name     string
		old, cur Recipe
		want     string
	}{
		{"args", Recipe{Spec: Spec{Kind: KindRun, Args: []string{"git"}}}, Recipe{Spec: Spec{Kind: KindRun, Args: []string{"git", "curl"}}},
			`argument changed ["git"] -> ["git","curl"]`},
		{"base", Recipe{Spec: Spec{Kind: KindBase, Args: []string{d1}}}, Recipe{Spec: Spec{Kind: KindBase, Args: []string{d2}}},
			"base image changed (sha256:aaaaaaaa… -> sha256:bbbbbbbb…)"},
		{"env", Recipe{Spec: Spec{Kind: KindEnv, Env: map[string]string{"A": "1", "B": "x"}}}, Recipe{Spec: Spec{Kind: KindEnv, Env: map[string]string{"A": "2", "C": "y"}}},
			`env A changed ("1" -> "2"); env B removed; env C added ("y")`},
		{"label", Recipe{Spec: Spec{Kind: KindLabel, Env: map[string]string{"a": "1"}}}, Recipe{Spec: Spec{Kind: KindLabel, Env: map[string]string{"a": "2"}}},
			`label a changed ("1" -> "2")`},
		{"option", Recipe{Spec: Spec{Kind: KindCopy, Options: map[string]string{"chmod": "644"}}}, Recipe{Spec: Spec{Kind: KindCopy, Options: map[string]string{"chmod": "755"}}},
			`option chmod changed ("644" -> "755")`},
		{"kind", Recipe{Spec: Spec{Kind: KindRun}}, Recipe{Spec: Spec{Kind: KindEnv}}, "step kind changed (run -> env)"},
		{"secret names", Recipe{Spec: Spec{Kind: KindRun, Secrets: []string{"a/X"}}}, Recipe{Spec: Spec{Kind: KindRun}},
			`secrets changed ["a/X"] -> [] (names only: values are never keyed)`},
		{"files", Recipe{Spec: Spec{Kind: KindAdd, Inputs: in(d1)}, Trees: tree(f("a.py", 0o644, d1), f("gone", 0o644, d1), f("run.sh", 0o644, d1))},
			Recipe{Spec: Spec{Kind: KindAdd, Inputs: in(d2)}, Trees: tree(f("a.py", 0o644, d2), f("new", 0o644, d1), f("run.sh", 0o755, d1))},
			"a.py changed (sha256:aaaaaaaa… -> sha256:bbbbbbbb…), run.sh mode changed (0644 -> 0755), 1 file added (new), 1 file removed (gone)"},
		{"no trees", Recipe{Spec: Spec{Kind: KindAdd, Inputs: in(d1)}}, Recipe{Spec: Spec{Kind: KindAdd, Inputs: in(d2)}},
			"src changed (sha256:aaaaaaaa… -> sha256:bbbbbbbb…)"},
		{"same", Recipe{Spec: Spec{Kind: KindRun, Args: []string{"x"}}}, Recipe{Spec: Spec{Kind: KindRun, Args: []string{"x"}}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := strings.Join(Diff(c.old, c.cur), "; "); got != c.want {
				t.Errorf("Diff = %q, want %q", got, c.want)
			}
		})
	}
}

func TestRecipes(t *testing.T) {
	rs := OpenRecipes(t.TempDir())
	k := func(c string) Key { return Key("sha256:" + strings.Repeat(c, 64)) }
	old := Recipe{Key: k("1"), Parent: k("0"), Method: "RunCommands", Spec: Spec{Kind: KindRun}, Time: time.Unix(1, 0)}
	newer := Recipe{Key: k("2"), Parent: k("0"), Method: "RunCommands", Spec: Spec{Kind: KindRun}, Time: time.Unix(2, 0)}
	for _, r := range []Recipe{old, newer, {Key: k("3"), Method: "FromArchive"}} {
		if err := rs.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	kids, err := rs.Children(k("0"))
	if err != nil || len(kids) != 2 || kids[0].Key != k("2") {
		t.Fatalf("Children = %v, %v; want 2, newest first", kids, err)
	}
	if bases, _ := rs.Children(""); len(bases) != 1 {
		t.Errorf("bases = %v", bases)
	}
	if _, err := rs.Get(k("9")); err != ErrNotFound {
		t.Errorf("Get(missing) = %v", err)
	}
	if err := rs.PutImage("localhost/app:latest", []Key{k("3"), k("2")}); err != nil {
		t.Fatal(err)
	}
	if got := rs.Image("localhost/app:latest"); len(got) != 2 || got[1] != k("2") {
		t.Errorf("Image = %v", got)
	}
	if got := rs.Image("other"); got != nil {
		t.Errorf("Image(other) = %v", got)
	}
}
