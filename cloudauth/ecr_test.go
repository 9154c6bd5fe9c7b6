package cloudauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeECR is an ECR GetAuthorizationToken endpoint that checks a request as
// AWS documents it does: the operation header, the body, and the SigV4
// signature, which it recomputes from the received request with the secret
// key it knows for the access key. It answers failures with AWS JSON errors.
type fakeECR struct {
	keys    map[string]string // access key ID -> secret access key
	token   string            // session token required; "" for none
	region  string
	now     time.Time
	respond func(w http.ResponseWriter) // answer to a good request; nil: a token for leakPassword

	mu       sync.Mutex
	requests int
	refusal  string // why the last request was refused
}

func newFakeECR() *fakeECR {
	return &fakeECR{
		keys:   map[string]string{leakAccessKeyID: leakSecretKey},
		region: "us-east-1",
		now:    testNow,
	}
}

func (f *fakeECR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	code, msg := f.check(r)
	f.refusal = code
	if code != "" {
		status := http.StatusForbidden
		if code == "UnknownOperationException" || code == "SerializationException" {
			status = http.StatusBadRequest
		}
		w.Header().Set("X-Amzn-ErrorType", code+":http://internal.amazon.com/coral/com.amazon.coral.service/")
		writeJSON(w, status, fmt.Sprintf(`{"__type":"com.amazon.coral.service#%s","message":%q}`, code, msg))
		return
	}
	if f.respond != nil {
		f.respond(w)
		return
	}
	writeJSON(w, 200, ecrTokenBody("AWS:"+leakPassword, float64(f.now.Add(12*time.Hour).Unix())+0.25))
}

func ecrTokenBody(userPass string, expiresAt float64) string {
	return fmt.Sprintf(`{"authorizationData":[{"authorizationToken":%q,"expiresAt":%v,"proxyEndpoint":"https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}]}`,
		base64.StdEncoding.EncodeToString([]byte(userPass)), expiresAt)
}

// check returns the AWS error code and message for a bad request, or "".
func (f *fakeECR) check(r *http.Request) (code, msg string) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != "POST" || r.URL.Path != "/" {
		return "UnknownOperationException", "want POST /, got " + r.Method + " " + r.URL.Path
	}
	if got := r.Header.Get("X-Amz-Target"); got != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
		return "UnknownOperationException", "X-Amz-Target " + got
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
		return "SerializationException", "Content-Type " + got
	}
	if string(body) != "{}" {
		return "SerializationException", "body " + string(body)
	}

	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return "MissingAuthenticationTokenException", "Missing Authentication Token"
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(auth, ", ") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return "IncompleteSignatureException", "Authorization header is incomplete: " + auth
	}
	secret, ok := f.keys[cred[0]]
	if !ok {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	if got := r.Header.Get("X-Amz-Security-Token"); got != f.token {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	amzDate := r.Header.Get("X-Amz-Date")
	when, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || when.Sub(f.now).Abs() > 5*time.Minute {
		return "InvalidSignatureException", "Signature expired: " + amzDate
	}
	if cred[1] != amzDate[:8] || cred[2] != f.region || cred[3] != "ecr" || cred[4] != "aws4_request" {
		return "InvalidSignatureException", "Credential should be scoped to a valid region and service: " + fields["Credential"]
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !sort.StringsAreSorted(signed) {
		return "InvalidSignatureException", "SignedHeaders are not sorted"
	}
	must := []string{"content-type", "host", "x-amz-date", "x-amz-target"}
	if f.token != "" {
		must = append(must, "x-amz-security-token")
	}
	for _, h := range must {
		if !strings.Contains(";"+fields["SignedHeaders"]+";", ";"+h+";") {
			return "InvalidSignatureException", "header " + h + " is not signed"
		}
	}

	// The canonical request as the service rebuilds it from what it received.
	var headers strings.Builder
	for _, h := range signed {
		v := strings.Join(r.Header.Values(h), ",")
		if h == "host" {
			v = r.Host
		}
		headers.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	bodyHash := sha256.Sum256(body)
	creq := "POST\n/\n\n" + headers.String() + "\n" + fields["SignedHeaders"] + "\n" + hex.EncodeToString(bodyHash[:])
	creqHash := sha256.Sum256([]byte(creq))
	scope := strings.Join(cred[1:], "/")
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creqHash[:])
	key := []byte("AWS4" + secret)
	for _, part := range append(cred[1:], sts) {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(part))
		key = m.Sum(nil)
	}
	if want := hex.EncodeToString(key); !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		// Like AWS, quote the canonical request and string to sign, which
		// holds the session token: the client must redact it.
		return "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. " +
			"The Canonical String for this request should have been\n'" + creq + "'\n\nThe String-to-Sign should have been\n'" + sts + "'\n"
	}
	return "", ""
}

func ecrSecret() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     leakAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": leakSecretKey,
	}
}

const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

func TestECRExchange(t *testing.T) {
	for _, c := range []struct {
		name   string
		host   string
		secret map[string]string
		fake   func(*fakeECR)
	}{
		{name: "static keys, region from host", host: ecrHost, secret: ecrSecret()},
		{name: "session token", host: ecrHost,
			secret: func() map[string]string {
				s := ecrSecret()
				s["AWS_SESSION_TOKEN"] = leakSession
				return s
			}(),
			fake: func(f *fakeECR) { f.token = leakSession }},
		{name: "pasted values with white space", host: " " + strings.ToUpper(ecrHost) + ":443 ",
			secret: map[string]string{
				"AWS_ACCESS_KEY_ID":     leakAccessKeyID + "\n",
				"AWS_SECRET_ACCESS_KEY": " " + leakSecretKey + "\n",
			}},
		{name: "host region wins over AWS_REGION", host: "123456789012.dkr.ecr.eu-west-3.amazonaws.com",
			secret: func() map[string]string {
				s := ecrSecret()
				s["AWS_REGION"] = "us-east-1"
				return s
			}(),
			fake: func(f *fakeECR) { f.region = "eu-west-3" }},
		{name: "AWS_REGION for a host without one", host: "localhost:5000",
			secret: func() map[string]string {
				s := ecrSecret()
				s["AWS_REGION"] = "ap-southeast-2"
				s["AWS_DEFAULT_REGION"] = "us-west-1"
				return s
			}(),
			fake: func(f *fakeECR) { f.region = "ap-southeast-2" }},
		{name: "AWS_DEFAULT_REGION", host: "localhost:5000",
			secret: func() map[string]string {
				s := ecrSecret()
				s["AWS_DEFAULT_REGION"] = "us-west-1"
				return s
			}(),
			fake: func(f *fakeECR) { f.region = "us-west-1" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := newFakeECR()
			if c.fake != nil {
				c.fake(fake)
			}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			e := &ECR{Endpoint: srv.URL + "/", Now: fixedNow}
			got, err := e.Exchange(context.Background(), c.host, c.secret)
			if err != nil {
				t.Fatalf("Exchange: %v (fake refused: %s)", err, fake.refusal)
			}
			want := Credentials{Username: "AWS", Password: leakPassword,
				ExpiresAt: testNow.Add(12*time.Hour + 250*time.Millisecond)}
			if got != want {
				t.Errorf("got %+v (password ok: %v), want %+v", got, got.Password == want.Password, want)
			}
			if fake.requests != 1 {
				t.Errorf("%d requests, want 1", fake.requests)
			}
		})
	}
}

// Without Endpoint, the request goes to the region's documented endpoint.
func TestECRDefaultEndpoint(t *testing.T) {
	for _, c := range []struct{ host, region, url string }{
		{ecrHost, "us-east-1", "https://api.ecr.us-east-1.amazonaws.com/"},
		{"210987654321.dkr.ecr.ap-northeast-1.amazonaws.com", "ap-northeast-1", "https://api.ecr.ap-northeast-1.amazonaws.com/"},
		{"210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1", "https://api.ecr.cn-north-1.amazonaws.com.cn/"},
		{"210987654321.dkr.ecr.us-gov-west-1.amazonaws.com:443", "us-gov-west-1", "https://api.ecr.us-gov-west-1.amazonaws.com/"},
	} {
		t.Run(c.host, func(t *testing.T) {
			fake := newFakeECR()
			fake.region = c.region
			var gotURL string
			e := &ECR{Now: fixedNow, Client: serveDirect(fake, func(r *http.Request) { gotURL = r.URL.String() })}
			if _, err := e.Exchange(context.Background(), c.host, ecrSecret()); err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if gotURL != c.url {
				t.Errorf("request went to %s, want %s", gotURL, c.url)
			}
		})
	}
}

// Every failure, with secrets that all carry the canary: the error must say
// what is wrong and quote none of them.
func TestECRErrors(t *testing.T) {
	withSession := func() map[string]string {
		s := ecrSecret()
		s["AWS_SESSION_TOKEN"] = leakSession
		return s
	}
	without := func(key string) map[string]string {
		s := withSession()
		delete(s, key)
		return s
	}
	respond := func(status int, ct, body string) func(*fakeECR) {
		return func(f *fakeECR) {
			f.respond = func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", ct)
				w.WriteHeader(status)
				io.WriteString(w, body)
			}
		}
	}
	ok200 := func(body string) func(*fakeECR) { return respond(200, "application/x-amz-json-1.1", body) }
	for _, c := range []struct {
		name        string
		host        string // default ecrHost
		secret      map[string]string
		noEndpoint  bool
		fake        func(*fakeECR)
		want        []string
		wantEndpErr bool
	}{
		{name: "no access key", secret: without("AWS_ACCESS_KEY_ID"),
			want: []string{"secret has no AWS_ACCESS_KEY_ID"}},
		{name: "no secret key", secret: without("AWS_SECRET_ACCESS_KEY"),
			want: []string{"secret has no AWS_SECRET_ACCESS_KEY"}},
		{name: "empty secret key", secret: func() map[string]string {
			s := withSession()
			s["AWS_SECRET_ACCESS_KEY"] = " \n"
			return s
		}(), want: []string{"secret has an empty AWS_SECRET_ACCESS_KEY"}},
		{name: "nil secret", secret: nil, want: []string{"secret has no AWS_ACCESS_KEY_ID"}},
		{name: "not an ECR host", host: "ghcr.io", noEndpoint: true, secret: withSession(),
			want: []string{`registry host "ghcr.io" is not an Amazon ECR registry`}},
		{name: "ECR-like host without account", host: "dkr.ecr.us-east-1.amazonaws.com", noEndpoint: true, secret: withSession(),
			want: []string{"is not an Amazon ECR registry"}},
		{name: "no region anywhere", host: "localhost", secret: withSession(),
			want: []string{"secret has no AWS_REGION (or AWS_DEFAULT_REGION)", `"localhost" names no region`}},
		{name: "bad region", host: "localhost", secret: func() map[string]string {
			s := withSession()
			s["AWS_REGION"] = "Virginia"
			return s
		}(), want: []string{`"Virginia" is not an AWS region`}},
		{name: "wrong secret key", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; f.keys[leakAccessKeyID] = "another" + canary },
			want: []string{"HTTP 403", "InvalidSignatureException", "signature we calculated does not match",
				"<redacted>", "check AWS_SECRET_ACCESS_KEY"}, wantEndpErr: true},
		{name: "unknown access key", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; f.keys = map[string]string{} },
			want: []string{"HTTP 403", "UnrecognizedClientException", "security token included in the request is invalid",
				"check AWS_ACCESS_KEY_ID"}, wantEndpErr: true},
		{name: "session token refused", secret: withSession(),
			fake: func(f *fakeECR) { f.token = "other" + canary },
			want: []string{"UnrecognizedClientException"}, wantEndpErr: true},
		{name: "region mismatch", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; f.region = "eu-west-1" },
			want: []string{"InvalidSignatureException", "scoped to a valid region"}, wantEndpErr: true},
		{name: "clock skew", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; f.now = testNow.Add(time.Hour) },
			want: []string{"Signature expired"}, wantEndpErr: true},
		{name: "400 echoing every secret", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				respond(400, "application/x-amz-json-1.1", fmt.Sprintf(
					`{"__type":"com.amazon.coral.validate#ValidationException","message":"bad %s %s %s"}`,
					leakAccessKeyID, leakSecretKey, leakSession))(f)
			},
			want: []string{"HTTP 400 Bad Request: ValidationException: bad <redacted> <redacted> <redacted>"}, wantEndpErr: true},
		{name: "403 access denied", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				respond(403, "application/x-amz-json-1.1",
					`{"__type":"AccessDeniedException","Message":"User is not authorized to perform: ecr:GetAuthorizationToken"}`)(f)
			},
			want:        []string{"HTTP 403 Forbidden: AccessDeniedException: User is not authorized", "needs the ecr:GetAuthorizationToken permission"},
			wantEndpErr: true},
		{name: "expired session token", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				respond(400, "application/x-amz-json-1.1",
					`{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}`)(f)
			},
			want: []string{"ExpiredTokenException", "renew AWS_SESSION_TOKEN"}, wantEndpErr: true},
		{name: "error named only in X-Amzn-ErrorType", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				f.respond = func(w http.ResponseWriter) {
					w.Header().Set("X-Amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/")
					w.WriteHeader(http.StatusBadRequest)
				}
			},
			want: []string{"HTTP 400 Bad Request: ThrottlingException (retry later)"}, wantEndpErr: true},
		{name: "body cut short", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				f.respond = func(w http.ResponseWriter) {
					w.Header().Set("Content-Length", "1000")
					io.WriteString(w, `{"authorizationData":[{"authorizationToken":"`+leakPassword)
				}
			},
			want: []string{"reading the response (HTTP 200)"}},
		{name: "500 HTML", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				respond(500, "text/html", "<html>"+leakSession+"</html>")(f)
			},
			want: []string{"HTTP 500 Internal Server Error", "the response is not JSON, Content-Type text/html"}, wantEndpErr: true},
		{name: "redirect is not followed", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				f.respond = func(w http.ResponseWriter) {
					w.Header().Set("Location", "http://elsewhere.invalid/steal")
					w.WriteHeader(http.StatusTemporaryRedirect)
				}
			},
			want: []string{"HTTP 307 Temporary Redirect (redirects are not followed)"}, wantEndpErr: true},
		{name: "200 not JSON", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				ok200(`{"authorizationData":[{"authorizationToken":"` + leakPassword)(f)
			},
			want: []string{"malformed response"}},
		{name: "200 no authorizationData", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; ok200(`{"authorizationData":[]}`)(f) },
			want: []string{"returned no authorizationData"}},
		{name: "200 empty token", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; ok200(`{"authorizationData":[{"expiresAt":1}]}`)(f) },
			want: []string{"returned no authorizationToken"}},
		{name: "200 token not base64", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				ok200(`{"authorizationData":[{"authorizationToken":"AWS:` + leakPassword + `!"}]}`)(f)
			},
			want: []string{"authorizationToken that is not base64"}},
		{name: "200 token without colon", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; ok200(ecrTokenBody(leakPassword, 2e9))(f) },
			want: []string{"authorizationToken that is not <user>:<password>"}},
		{name: "200 token with empty password", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; ok200(ecrTokenBody("AWS:", 2e9))(f) },
			want: []string{"not <user>:<password>"}},
		{name: "200 expired token", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				ok200(ecrTokenBody("AWS:"+leakPassword, float64(testNow.Add(-time.Minute).Unix())))(f)
			},
			want: []string{"token that expired at 2026-03-01T11:59:00Z"}},
		{name: "200 absurd expiresAt", secret: withSession(),
			fake: func(f *fakeECR) { f.token = leakSession; ok200(ecrTokenBody("AWS:"+leakPassword, 1e300))(f) },
			want: []string{"invalid expiresAt"}},
		{name: "200 expiresAt as a string", secret: withSession(),
			fake: func(f *fakeECR) {
				f.token = leakSession
				ok200(`{"authorizationData":[{"authorizationToken":"QVdTOnB3","expiresAt":"` + canary + `"}]}`)(f)
			},
			want: []string{"malformed response"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := newFakeECR()
			if c.fake != nil {
				c.fake(fake)
			}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			e := &ECR{Endpoint: srv.URL, Now: fixedNow}
			if c.noEndpoint {
				e.Endpoint = ""
				e.Client = serveDirect(fake, func(*http.Request) {})
			}
			host := c.host
			if host == "" {
				host = ecrHost
			}
			got, err := e.Exchange(context.Background(), host, c.secret)
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
			assertNoLeak(t, err)
		})
	}
}

func TestECRTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	e := &ECR{Endpoint: url, Now: fixedNow}
	s := ecrSecret()
	s["AWS_SESSION_TOKEN"] = leakSession
	_, err := e.Exchange(context.Background(), ecrHost, s)
	if err == nil || !strings.Contains(err.Error(), "ECR GetAuthorizationToken at "+url) {
		t.Errorf("err = %v", err)
	}
	assertNoLeak(t, err)

	fake := newFakeECR()
	srv = httptest.NewServer(fake)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = (&ECR{Endpoint: srv.URL, Now: fixedNow}).Exchange(ctx, ecrHost, ecrSecret())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	assertNoLeak(t, err)

	_, err = (&ECR{Endpoint: "://bad", Now: fixedNow}).Exchange(context.Background(), ecrHost, ecrSecret())
	if err == nil || !strings.Contains(err.Error(), "bad endpoint") {
		t.Errorf("err = %v", err)
	}
	assertNoLeak(t, err)
}

// A caller's client keeps its own redirect policy; the exchange does not
// follow redirects either way.
func TestClientNotModified(t *testing.T) {
	fake := newFakeECR()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := &http.Client{Timeout: time.Minute}
	if _, err := (&ECR{Endpoint: srv.URL, Client: c, Now: fixedNow}).Exchange(context.Background(), ecrHost, ecrSecret()); err != nil {
		t.Fatal(err)
	}
	if c.CheckRedirect != nil || c.Timeout != time.Minute {
		t.Errorf("caller's client was changed")
	}
}
