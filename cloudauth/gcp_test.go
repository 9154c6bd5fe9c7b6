package cloudauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const testClientEmail = "builder@example-project.iam.gserviceaccount.com"

var (
	testKeysOnce sync.Once
	testKey      *rsa.PrivateKey // the service account's key, known to the fake
	otherKey     *rsa.PrivateKey // a key the fake does not know
)

func testKeys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	testKeysOnce.Do(func() {
		var err error
		if testKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if otherKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return testKey, otherKey
}

func pkcs8PEM(t testing.TB, k any) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// pemLines are the base64 lines of a PEM key: none may appear in an error.
func pemLines(p string) []string {
	var out []string
	for _, l := range strings.Split(p, "\n") {
		if len(l) >= 4 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// serviceAccountJSON is a key file like the one Google issues, with edit
// applied to its fields.
func serviceAccountJSON(t testing.TB, privPEM string, edit func(map[string]any)) string {
	m := map[string]any{
		"type":                        "service_account",
		"project_id":                  "example-project",
		"private_key_id":              leakKeyID,
		"private_key":                 privPEM,
		"client_email":                testClientEmail,
		"client_id":                   "123456789012345678901",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://oauth2.googleapis.com/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeGoogle is an OAuth 2.0 token endpoint that checks a jwt-bearer grant
// as Google does: the form, the JWT's RS256 signature against the service
// account's public key, and its claims. It answers failures with OAuth 2.0
// errors.
type fakeGoogle struct {
	pub     *rsa.PublicKey
	aud     string // expected audience; "" means the URL the request came to
	now     time.Time
	respond func(w http.ResponseWriter) // answer to a good request; nil: leakAccessToken

	mu        sync.Mutex
	requests  int
	assertion string // the last assertion received
	refusal   string
}

func newFakeGoogle(t testing.TB) *fakeGoogle {
	k, _ := testKeys(t)
	return &fakeGoogle{pub: &k.PublicKey, now: testNow}
}

func (f *fakeGoogle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	code, desc := f.check(r)
	f.refusal = desc
	if code != "" {
		writeJSON(w, http.StatusBadRequest, fmt.Sprintf(`{"error":%q,"error_description":%q}`, code, desc))
		return
	}
	if f.respond != nil {
		f.respond(w)
		return
	}
	writeJSON(w, 200, `{"access_token":"`+leakAccessToken+`","expires_in":3599,"token_type":"Bearer"}`)
}

func (f *fakeGoogle) check(r *http.Request) (code, desc string) {
	if r.Method != "POST" {
		return "invalid_request", "want POST"
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		return "invalid_request", "Content-Type " + ct
	}
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "invalid_request", "bad form"
	}
	if g := form.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		return "unsupported_grant_type", "Invalid grant_type: " + g
	}
	f.assertion = form.Get("assertion")
	parts := strings.Split(f.assertion, ".")
	if len(parts) != 3 {
		return "invalid_grant", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
	}
	enc := base64.RawURLEncoding
	var header struct{ Alg, Typ, Kid string }
	var claims struct {
		Iss, Scope, Aud, Sub string
		Iat, Exp             int64
	}
	hb, err1 := enc.DecodeString(parts[0])
	cb, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return "invalid_grant", "Invalid JWT: not base64url JSON"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(f.pub, crypto.SHA256, sum[:], sig) != nil {
		return "invalid_grant", "Invalid JWT Signature."
	}
	if header.Alg != "RS256" || header.Typ != "JWT" || header.Kid != leakKeyID {
		return "invalid_grant", fmt.Sprintf("Invalid JWT header %s", hb)
	}
	aud := f.aud
	if aud == "" {
		aud = "http://" + r.Host + r.URL.Path
		if r.TLS != nil {
			aud = "https://" + r.Host + r.URL.Path
		}
	}
	switch {
	case claims.Iss != testClientEmail:
		return "invalid_grant", "Invalid issuer " + claims.Iss
	case claims.Scope != "https://www.googleapis.com/auth/cloud-platform":
		return "invalid_scope", "Invalid scope " + claims.Scope
	case claims.Aud != aud:
		return "invalid_grant", "Invalid JWT audience " + claims.Aud + ", want " + aud
	case claims.Sub != "":
		return "invalid_grant", "unexpected sub"
	case claims.Iat != f.now.Unix() || claims.Exp != claims.Iat+3600:
		return "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	}
	return "", ""
}

func gcpSecret(t testing.TB, edit func(map[string]any)) map[string]string {
	k, _ := testKeys(t)
	return map[string]string{"SERVICE_ACCOUNT_JSON": serviceAccountJSON(t, pkcs8PEM(t, k), edit)}
}

func TestGCPExchange(t *testing.T) {
	k, _ := testKeys(t)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	for _, c := range []struct {
		name   string
		host   string
		secret func(tokenURI string) map[string]string
	}{
		{"PKCS #8 key, Artifact Registry", "us-central1-docker.pkg.dev", func(u string) map[string]string {
			return gcpSecret(t, func(m map[string]any) { m["token_uri"] = u })
		}},
		{"PKCS #1 key, gcr.io", "gcr.io", func(u string) map[string]string {
			return map[string]string{"SERVICE_ACCOUNT_JSON": serviceAccountJSON(t, pkcs1, func(m map[string]any) { m["token_uri"] = u })}
		}},
		{"regional gcr.io with port", "EU.GCR.IO:443", func(u string) map[string]string {
			return gcpSecret(t, func(m map[string]any) { m["token_uri"] = u })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := newFakeGoogle(t)
			srv := httptest.NewTLSServer(fake)
			defer srv.Close()
			g := &GCP{Client: srv.Client(), Now: fixedNow}
			got, err := g.Exchange(context.Background(), c.host, c.secret(srv.URL+"/token"))
			if err != nil {
				t.Fatalf("Exchange: %v (fake refused: %s)", err, fake.refusal)
			}
			want := Credentials{Username: "oauth2accesstoken", Password: leakAccessToken, ExpiresAt: testNow.Add(3599 * time.Second)}
			if got != want {
				t.Errorf("got %v (password ok: %v), want %v", got, got.Password == want.Password, want)
			}
		})
	}
}

// Without token_uri, and without TokenURL, the assertion goes to Google's
// documented endpoint, which is also its audience.
func TestGCPDefaultTokenURL(t *testing.T) {
	fake := newFakeGoogle(t)
	fake.aud = "https://oauth2.googleapis.com/token"
	var gotURL string
	g := &GCP{Now: fixedNow, Client: serveDirect(fake, func(r *http.Request) { gotURL = r.URL.String() })}
	secret := gcpSecret(t, func(m map[string]any) { delete(m, "token_uri") })
	if _, err := g.Exchange(context.Background(), "europe-docker.pkg.dev", secret); err != nil {
		t.Fatalf("Exchange: %v (fake refused: %s)", err, fake.refusal)
	}
	if gotURL != "https://oauth2.googleapis.com/token" {
		t.Errorf("request went to %s", gotURL)
	}
}

// TokenURL overrides token_uri, allows http, and any registry host.
func TestGCPTokenURLOverride(t *testing.T) {
	fake := newFakeGoogle(t)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	g := &GCP{TokenURL: srv.URL + "/t", Now: fixedNow}
	got, err := g.Exchange(context.Background(), "localhost:5000", gcpSecret(t, nil))
	if err != nil {
		t.Fatalf("Exchange: %v (fake refused: %s)", err, fake.refusal)
	}
	if got.Password != leakAccessToken {
		t.Errorf("wrong password")
	}
}

func TestGoogleRegistryHosts(t *testing.T) {
	for host, want := range map[string]bool{
		"gcr.io": true, "us.gcr.io": true, "eu.gcr.io": true, "asia.gcr.io": true,
		"us-central1-docker.pkg.dev": true, "europe-docker.pkg.dev": true,
		"docker.pkg.dev": false, "-docker.pkg.dev": false, "a.b-docker.pkg.dev": false,
		"a.b.gcr.io": false, ".gcr.io": false, "evilgcr.io": false, "gcr.io.evil.com": false,
		"us-central1-maven.pkg.dev": false, "docker.io": false, "": false,
	} {
		if got := isGoogleRegistry(host); got != want {
			t.Errorf("isGoogleRegistry(%q) = %v, want %v", host, got, want)
		}
	}
}

// Every failure, with secrets that carry the canary or are the test key:
// the error must say what is wrong and quote none of them.
func TestGCPErrors(t *testing.T) {
	k, other := testKeys(t)
	keyPEM := pkcs8PEM(t, k)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	canaryPEM := func(typ string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: []byte("garbage " + canary + " garbage")}))
	}
	sa := func(edit func(map[string]any)) map[string]string {
		return map[string]string{"SERVICE_ACCOUNT_JSON": serviceAccountJSON(t, keyPEM, edit)}
	}
	withKey := func(p string) map[string]string {
		return map[string]string{"SERVICE_ACCOUNT_JSON": serviceAccountJSON(t, p, nil)}
	}
	raw := func(s string) map[string]string { return map[string]string{"SERVICE_ACCOUNT_JSON": s} }
	respond := func(status int, ct, body string) func(*fakeGoogle) {
		return func(f *fakeGoogle) {
			f.respond = func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", ct)
				w.WriteHeader(status)
				io.WriteString(w, body)
			}
		}
	}
	ok200 := func(body string) func(*fakeGoogle) { return respond(200, "application/json", body) }
	for _, c := range []struct {
		name        string
		host        string // default us-docker.pkg.dev
		secret      map[string]string
		noOverride  bool
		fake        func(*fakeGoogle)
		want        []string
		wantEndpErr bool
	}{
		{name: "no SERVICE_ACCOUNT_JSON", secret: map[string]string{"AWS_ACCESS_KEY_ID": canary},
			want: []string{"secret has no SERVICE_ACCOUNT_JSON"}},
		{name: "empty SERVICE_ACCOUNT_JSON", secret: raw("  "),
			want: []string{"secret has an empty SERVICE_ACCOUNT_JSON"}},
		{name: "not JSON", secret: raw(`{"private_key": "` + canary),
			want: []string{"SERVICE_ACCOUNT_JSON is not valid JSON (syntax error at byte"}},
		{name: "bad JSON character", secret: raw(canary),
			want: []string{"SERVICE_ACCOUNT_JSON is not valid JSON"}},
		{name: "JSON array", secret: raw(`["` + canary + `"]`),
			want: []string{"SERVICE_ACCOUNT_JSON is not a JSON object"}},
		{name: "field of the wrong type", secret: raw(`{"type":"service_account","private_key":["` + canary + `"]}`),
			want: []string{`SERVICE_ACCOUNT_JSON field "private_key" has the wrong JSON type (want string)`}},
		{name: "user credentials, not a service account", secret: sa(func(m map[string]any) { m["type"] = "authorized_user" }),
			want: []string{`is of type "authorized_user"; only service account keys`}},
		{name: "no type", secret: sa(func(m map[string]any) { delete(m, "type") }),
			want: []string{`SERVICE_ACCOUNT_JSON has no "type"`}},
		{name: "no client_email", secret: sa(func(m map[string]any) { delete(m, "client_email") }),
			want: []string{"SERVICE_ACCOUNT_JSON has no client_email"}},
		{name: "no private_key", secret: sa(func(m map[string]any) { m["private_key"] = "" }),
			want: []string{"SERVICE_ACCOUNT_JSON has no private_key"}},
		{name: "private_key not PEM", secret: withKey("MIIEv" + canary + "AgEAMA0GCSqGSIb3DQEBAQUABIIEqTCCBKUCAQAC"),
			want: []string{"private_key is not a PEM block"}},
		{name: "private_key PEM without its end", secret: withKey(keyPEM[:200]),
			want: []string{"private_key is not a PEM block"}},
		{name: "private_key bad PKCS #8", secret: withKey(canaryPEM("PRIVATE KEY")),
			want: []string{"private_key is not a valid PKCS #8 key"}},
		{name: "private_key bad PKCS #1", secret: withKey(canaryPEM("RSA PRIVATE KEY")),
			want: []string{"private_key is not a valid PKCS #1 RSA key"}},
		{name: "private_key is EC", secret: withKey(pkcs8PEM(t, ecKey)),
			want: []string{"private_key is a *ecdsa.PrivateKey, not an RSA key"}},
		{name: "private_key is a certificate", secret: withKey(canaryPEM("CERTIFICATE")),
			want: []string{`private_key is a PEM "CERTIFICATE" block`}},
		{name: "token_uri over http", noOverride: true, secret: sa(func(m map[string]any) { m["token_uri"] = "http://oauth2.googleapis.com/token" }),
			want: []string{"token_uri that is not an https URL"}},
		{name: "not a Google host", noOverride: true, host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", secret: sa(nil),
			want: []string{`registry host "123456789012.dkr.ecr.us-east-1.amazonaws.com" is not a Google registry`}},
		{name: "key unknown to Google", secret: withKey(pkcs8PEM(t, other)),
			want: []string{"HTTP 400 Bad Request: invalid_grant: Invalid JWT Signature.", "key may be deleted or disabled"}, wantEndpErr: true},
		{name: "clock off", secret: sa(nil), fake: func(f *fakeGoogle) { f.now = testNow.Add(2 * time.Hour) },
			want: []string{"invalid_grant", "Check your iat and exp"}, wantEndpErr: true},
		{name: "400 echoing every secret", secret: sa(nil),
			fake: func(f *fakeGoogle) {
				f.respond = func(w http.ResponseWriter) {
					writeJSON(w, 400, fmt.Sprintf(`{"error":"invalid_grant","error_description":"bad %s kid %s key %s"}`,
						f.assertion, leakKeyID, strings.ReplaceAll(keyPEM, "\n", `\r\n`)))
				}
			},
			want: []string{"invalid_grant: bad <redacted> kid <redacted> key -----BEGIN PRIVATE KEY----- <redacted> <redacted>"}, wantEndpErr: true},
		{name: "403 Google error object", secret: sa(nil),
			fake: respond(403, "application/json", `{"error":{"code":403,"message":"Permission denied on service account","status":"PERMISSION_DENIED"}}`),
			want: []string{"HTTP 403 Forbidden: PERMISSION_DENIED: Permission denied on service account"}, wantEndpErr: true},
		{name: "401 invalid_client", secret: sa(nil),
			fake: respond(401, "application/json", `{"error":"invalid_client","error_description":"The OAuth client was not found."}`),
			want: []string{"HTTP 401 Unauthorized: invalid_client: The OAuth client was not found.", "unknown or disabled"}, wantEndpErr: true},
		{name: "502 HTML", secret: sa(nil),
			fake: respond(502, "text/html; charset=UTF-8", "<html>"+canary+"</html>"),
			want: []string{"HTTP 502 Bad Gateway (the response is not JSON, Content-Type text/html; charset=UTF-8)"}, wantEndpErr: true},
		{name: "empty 500", secret: sa(nil), fake: respond(500, "", ""),
			want: []string{"Google OAuth 2.0 token endpoint refused: HTTP 500 Internal Server Error"}, wantEndpErr: true},
		{name: "redirect is not followed", secret: sa(nil),
			fake: func(f *fakeGoogle) {
				f.respond = func(w http.ResponseWriter) {
					w.Header().Set("Location", "http://elsewhere.invalid/steal")
					w.WriteHeader(http.StatusPermanentRedirect)
				}
			},
			want: []string{"HTTP 308 Permanent Redirect (redirects are not followed)"}, wantEndpErr: true},
		{name: "200 not JSON", secret: sa(nil), fake: ok200(`{"access_token":"` + leakAccessToken),
			want: []string{"returned a malformed response"}},
		{name: "200 no access_token", secret: sa(nil), fake: ok200(`{"expires_in":3599,"token_type":"Bearer"}`),
			want: []string{"returned no access_token"}},
		{name: "200 not a bearer token", secret: sa(nil), fake: ok200(`{"access_token":"` + leakAccessToken + `","token_type":"mac ` + leakAccessToken + `"}`),
			want: []string{`token of type "mac <redacted>", want Bearer`}},
		{name: "200 expired token", secret: sa(nil), fake: ok200(`{"access_token":"` + leakAccessToken + `","expires_in":0}`),
			want: []string{"already expired token (expires_in 0)"}},
		{name: "200 negative expires_in", secret: sa(nil), fake: ok200(`{"access_token":"` + leakAccessToken + `","expires_in":-5}`),
			want: []string{"already expired token (expires_in -5)"}},
		{name: "200 absurd expires_in", secret: sa(nil), fake: ok200(`{"access_token":"` + leakAccessToken + `","expires_in":9223372036854775807}`),
			want: []string{"invalid expires_in"}},
		{name: "200 expires_in as a string", secret: sa(nil), fake: ok200(`{"access_token":"` + leakAccessToken + `","expires_in":"3599"}`),
			want: []string{"malformed response"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := newFakeGoogle(t)
			if c.fake != nil {
				c.fake(fake)
			}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			g := &GCP{TokenURL: srv.URL + "/token", Now: fixedNow}
			if c.noOverride {
				g.TokenURL = ""
				g.Client = serveDirect(fake, func(*http.Request) {})
			}
			host := c.host
			if host == "" {
				host = "us-docker.pkg.dev"
			}
			got, err := g.Exchange(context.Background(), host, c.secret)
			if err == nil {
				t.Fatalf("no error; got %v", got)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			var ee *EndpointError
			if isEE := errors.As(err, &ee); isEE != c.wantEndpErr {
				t.Errorf("error is an *EndpointError: %v, want %v", isEE, c.wantEndpErr)
			}
			if got != (Credentials{}) {
				t.Errorf("credentials returned with an error: %v", got)
			}
			secrets := append(pemLines(keyPEM), pemLines(pkcs8PEM(t, other))...)
			secrets = append(secrets, fake.assertion, leakAccessToken)
			if fake.assertion != "" {
				secrets = append(secrets, strings.Split(fake.assertion, ".")[2])
			}
			assertNoLeak(t, err, secrets...)
		})
	}
}

func TestGCPTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/token"
	srv.Close()
	_, err := (&GCP{TokenURL: u, Now: fixedNow}).Exchange(context.Background(), "gcr.io", gcpSecret(t, nil))
	if err == nil || !strings.Contains(err.Error(), "Google OAuth 2.0 token endpoint at "+u) {
		t.Errorf("err = %v", err)
	}
	k, _ := testKeys(t)
	assertNoLeak(t, err, pemLines(pkcs8PEM(t, k))...)

	_, err = (&GCP{TokenURL: "://bad", Now: fixedNow}).Exchange(context.Background(), "gcr.io", gcpSecret(t, nil))
	if err == nil || !strings.Contains(err.Error(), "bad token URL") {
		t.Errorf("err = %v", err)
	}
	assertNoLeak(t, err, pemLines(pkcs8PEM(t, k))...)
}
