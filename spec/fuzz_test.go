package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: Parse never panics, and whatever parses maps onto an image
// whose Err is nil (every invalid argument is reported by Parse).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/cases/*.*")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		img, err := Parse(data, "fuzz.yaml", "testdata/cases")
		if err == nil && img.Err() != nil {
			t.Fatalf("Parse returned no error but the image has one: %v", img.Err())
		}
	})
}
