package dockerfile

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the whole front end (BuildKit's parser
// and strata's translation): it must return a File or an error, never
// panic or hang.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/corpus", "testdata/errors"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.Dockerfile"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b, "")
			}
		}
	}
	f.Add([]byte("FROM a AS b\nCOPY --from=b / /\n"), "b")
	f.Fuzz(func(t *testing.T, data []byte, target string) {
		df, err := Parse(data, Options{Target: target, BaseConfig: fakeBaseConfig, BuildArgs: map[string]string{"A": "1"}})
		if err == nil && (df.Target == nil || !df.Target.Needed) {
			t.Fatalf("Parse succeeded without a translated target")
		}
	})
}
