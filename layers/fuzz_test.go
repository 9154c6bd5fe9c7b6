package layers

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzEncodeInjective: two specs that differ never encode alike (so never
// share a key), and a spec that cannot be encoded faithfully is refused.
func FuzzEncodeInjective(f *testing.F) {
	f.Add("echo a", "echo b", "K", "v", "sha256:ab")
	f.Add("a\x00b", "a", "", "\xff", "")
	f.Add("\xff", "\xfe", "k\u2028", "v", "p")
	f.Fuzz(func(t *testing.T, a, b, k, v, parent string) {
		specs := []Spec{
			{Kind: KindRun, Args: []string{a}},
			{Kind: KindRun, Args: []string{b}},
			{Kind: KindRun, Args: []string{a, b}},
			{Kind: KindRun, Args: []string{a + b}},
			{Kind: KindRun, Args: []string{a}, Env: map[string]string{k: v}},
			{Kind: KindEnv, Env: map[string]string{k: v}},
			{Kind: KindAdd, Args: []string{a}, Ignore: []string{b}},
			{Kind: KindAdd, Args: []string{a}, Inputs: []Input{{Name: k, Digest: v}}},
			{Kind: KindRun, Args: []string{a}, Options: map[string]string{k: v}},
		}
		enc := map[string]int{}
		for i, s := range specs {
			e, err := Encode(Key(parent), s)
			if err != nil {
				if !strings.Contains(err.Error(), "UTF-8") {
					t.Fatalf("spec %d: unexpected error %v", i, err)
				}
				continue
			}
			if j, ok := enc[string(e)]; ok && !reflect.DeepEqual(specs[j], s) {
				t.Fatalf("specs %d and %d differ but encode alike: %s", j, i, e)
			}
			enc[string(e)] = i
		}
	})
}
