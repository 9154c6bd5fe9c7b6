package cloudauth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Every secret value in the tests contains canary, so that an error that
// quotes any secret, or any part of one, is caught by assertNoLeak.
const canary = "LEAKCANARY"

const (
	leakAccessKeyID = "AKIA" + canary + "00001"
	leakSecretKey   = "SeCrEt/" + canary + "+key0123456789abcdefghij"
	leakSession     = "FwoGZXIvYXdzE" + canary + "/session+token=="
	leakPassword    = "ecr-password-" + canary + "-0123456789"
	leakAccessToken = "ya29." + canary + ".access-token"
	leakKeyID       = "kid-" + canary + "-0123"
)

// testNow is the fixed clock of the tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// assertNoLeak fails the test if err's text contains the canary or any of
// the extra secret values (those of a generated key, which cannot carry the
// canary).
func assertNoLeak(t *testing.T, err error, extra ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	if strings.Contains(msg, canary) {
		t.Errorf("error leaks a secret: %s", msg)
	}
	for _, s := range extra {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error leaks secret %.12q...: %s", s, msg)
		}
	}
}

// roundTripFunc lets a test stand in for the network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// serveDirect returns a client whose every request is handled by h in
// process, after check has seen it: how tests reach the real AWS and Google
// URLs without a network.
func serveDirect(h http.Handler, check func(*http.Request)) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		check(r)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Result(), nil
	})}
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// Credentials never print their password, whatever the verb.
func TestCredentialsFormatting(t *testing.T) {
	c := Credentials{Username: "AWS", Password: leakPassword, ExpiresAt: testNow}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
		if got := fmt.Sprintf(verb, c); strings.Contains(got, canary) {
			t.Errorf("%s prints the password: %s", verb, got)
		}
	}
	if got := fmt.Sprint(&c); strings.Contains(got, canary) {
		t.Errorf("pointer prints the password: %s", got)
	}
	if got := (Credentials{Username: "u"}).String(); got != "{Username:u Password: ExpiresAt:unknown}" {
		t.Errorf("String() = %s", got)
	}
}

func TestSanitize(t *testing.T) {
	long := strings.Repeat("x", 1000)
	if got := sanitize("a\n\tb\x00 c  d"); got != "a b c d" {
		t.Errorf("sanitize = %q", got)
	}
	if got := []rune(sanitize(long)); len(got) != maxMessage+1 {
		t.Errorf("sanitize kept %d runes", len(got))
	}
	if got := sanitize("key=S1 token=S2", "S1", "", "S2"); got != "key=<redacted> token=<redacted>" {
		t.Errorf("sanitize = %q", got)
	}
}
