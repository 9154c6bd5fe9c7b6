package layers

import (
	"regexp"
	"strings"
	"testing"
)

func TestRemoteTagIsAValidTag(t *testing.T) {
	t.Parallel()
	k := Key("sha256:" + strings.Repeat("0123456789abcdef", 4))
	tag := RemoteTag(k)
	// The distribution spec's tag grammar.
	if !regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`).MatchString(tag) || tag != k.Hex() {
		t.Fatalf("tag %q", tag)
	}
}
