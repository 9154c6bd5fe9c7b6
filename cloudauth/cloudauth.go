package cloudauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// Credentials are what a registry takes for HTTP basic authentication.
type Credentials struct {
	Username string
	Password string
	// ExpiresAt is when Password stops working; zero when the service did
	// not say.
	ExpiresAt time.Time
}

// String describes c with its password replaced by "<redacted>", so that
// credentials printed by mistake leak nothing.
func (c Credentials) String() string {
	pw := ""
	if c.Password != "" {
		pw = "<redacted>"
	}
	exp := "unknown"
	if !c.ExpiresAt.IsZero() {
		exp = c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("{Username:%s Password:%s ExpiresAt:%s}", c.Username, pw, exp)
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %d...) print [Credentials.String].
func (c Credentials) Format(f fmt.State, verb rune) {
	io.WriteString(f, c.String())
}

// Exchanger turns the cloud credentials in a secret into credentials for
// the registry at registryHost (a host name such as
// 123456789012.dkr.ecr.us-east-1.amazonaws.com, optionally with a port).
type Exchanger interface {
	Exchange(ctx context.Context, registryHost string, secret map[string]string) (Credentials, error)
}

var (
	_ Exchanger = (*ECR)(nil)
	_ Exchanger = (*GCP)(nil)
)

// EndpointError is returned when the cloud service answers with an error
// status. Code and Message are the service's own (AWS "__type" and
// "message", OAuth 2.0 "error" and "error_description"), with any secret
// value they echo replaced by "<redacted>".
type EndpointError struct {
	Endpoint   string // what was called, e.g. "ECR GetAuthorizationToken"
	StatusCode int
	Code       string
	Message    string
	hint       string
}

func (e *EndpointError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudauth: %s refused: HTTP %d", e.Endpoint, e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	hint := e.hint
	if hint == "" && e.StatusCode >= 300 && e.StatusCode < 400 {
		hint = "redirects are not followed"
	}
	if hint != "" {
		b.WriteString(" (" + hint + ")")
	}
	return b.String()
}

const (
	maxResponse    = 1 << 20 // bytes of a response body read
	maxMessage     = 400     // runes of a service message kept in an error
	redacted       = "<redacted>"
	defaultTimeout = 30 * time.Second
	// maxLifetime bounds, in seconds, a token lifetime taken as plausible.
	maxLifetime = 10 * 365 * 24 * 3600
)

var defaultClient = &http.Client{Timeout: defaultTimeout}

// noRedirects returns a copy of c (or of the default client) that does not
// follow redirects: a redirect would carry the session token header or the
// signed assertion to another host, and neither service redirects.
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = defaultClient
	}
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// send performs req and returns the status and at most maxResponse bytes of
// the body. Transport errors name the endpoint, never a secret: the URL holds
// none and the body is not quoted.
func send(client *http.Client, req *http.Request, what string) (*http.Response, []byte, error) {
	resp, err := noRedirects(client).Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("cloudauth: %s: %w", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, nil, fmt.Errorf("cloudauth: %s: reading the response (HTTP %d): %w", what, resp.StatusCode, err)
	}
	return resp, body, nil
}

// secretValue returns secret[key] with surrounding white space removed (a
// pasted key often ends in a newline) and an error naming key when it is
// missing or empty.
func secretValue(secret map[string]string, key string) (string, error) {
	v, ok := secret[key]
	if !ok {
		return "", fmt.Errorf("cloudauth: secret has no %s", key)
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", fmt.Errorf("cloudauth: secret has an empty %s", key)
	}
	return v, nil
}

// sanitize makes a service message fit for an error: every secret value in
// it is replaced by "<redacted>", control characters and runs of white space
// become one space, and it is cut to maxMessage runes.
func sanitize(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	msg = strings.Join(strings.FieldsFunc(msg, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if r := []rune(msg); len(r) > maxMessage {
		msg = string(r[:maxMessage]) + "…"
	}
	return msg
}

// jsonString returns the string at key in a JSON object, or "".
func jsonString(obj map[string]json.RawMessage, keys ...string) string {
	for _, k := range keys {
		var s string
		if raw, ok := obj[k]; ok && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// normalizeHost lower-cases host and drops a port.
func normalizeHost(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(host, ".")
}

func nowFunc(f func() time.Time) time.Time {
	if f != nil {
		return f()
	}
	return time.Now()
}
