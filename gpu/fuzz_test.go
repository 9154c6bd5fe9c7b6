package gpu

import "testing"

// FuzzParseRequest: parsing never panics, and a request's canonical form
// parses back to itself (the form that enters cache keys is stable).
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"any", "all", "H100", "h100:2", "A100-80GB", "H100!", "T4:0", "A10G:x", "", "H100+", "a100-40gb:8"} {
		f.Add(s, "A100")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, specs := range [][]string{{a}, {a, b}} {
			r, err := ParseRequest(specs...)
			if err != nil {
				continue
			}
			again, err := ParseRequest(splitCanonical(r.String())...)
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", r.String(), specs, err)
			}
			if again.String() != r.String() {
				t.Fatalf("%q -> %q -> %q", specs, r.String(), again.String())
			}
		}
	})
}

func splitCanonical(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
