package cloudauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// GCP exchanges a Google service account key for Artifact Registry or
// Container Registry credentials with the OAuth 2.0 JWT bearer grant. The
// zero value is ready to use.
type GCP struct {
	// TokenURL overrides where the assertion is posted (and its audience),
	// which is otherwise the key's token_uri or
	// https://oauth2.googleapis.com/token. With it set, any registry host is
	// accepted and http URLs are allowed, for tests.
	TokenURL string
	// Client makes the request; nil means a client with a 30 s timeout.
	// Redirects are never followed.
	Client *http.Client
	// Now is the clock for the assertion's iat and exp and for the token's
	// expiry; nil means time.Now.
	Now func() time.Time
}

const (
	gcpScope        = "https://www.googleapis.com/auth/cloud-platform"
	gcpTokenURL     = "https://oauth2.googleapis.com/token"
	gcpGrantType    = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	gcpUsername     = "oauth2accesstoken"
	gcpAssertionTTL = time.Hour
	gcpCall         = "Google OAuth 2.0 token endpoint"
)

type serviceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// Exchange implements [Exchanger]. It reads SERVICE_ACCOUNT_JSON from secret
// and returns the username "oauth2accesstoken" with an access token as the
// password.
func (g *GCP) Exchange(ctx context.Context, registryHost string, secret map[string]string) (Credentials, error) {
	if g.TokenURL == "" && !isGoogleRegistry(normalizeHost(registryHost)) {
		return Credentials{}, fmt.Errorf("cloudauth: registry host %q is not a Google registry (want <location>-docker.pkg.dev, gcr.io or <region>.gcr.io)", registryHost)
	}
	key, err := parseServiceAccount(secret)
	if err != nil {
		return Credentials{}, err
	}
	priv, err := parseRSAKey(key.PrivateKey)
	if err != nil {
		return Credentials{}, err
	}
	tokenURL := g.TokenURL
	if tokenURL == "" {
		tokenURL = key.TokenURI
		if tokenURL == "" {
			tokenURL = gcpTokenURL
		}
		if u, err := url.Parse(tokenURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return Credentials{}, errors.New("cloudauth: SERVICE_ACCOUNT_JSON has a token_uri that is not an https URL")
		}
	}

	now := nowFunc(g.Now)
	assertion, err := signJWT(priv, key, tokenURL, now)
	if err != nil {
		return Credentials{}, err
	}
	form := url.Values{"grant_type": {gcpGrantType}, "assertion": {assertion}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form))
	if err != nil {
		return Credentials{}, fmt.Errorf("cloudauth: %s: bad token URL %q: %w", gcpCall, tokenURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, data, err := send(g.Client, req, gcpCall+" at "+tokenURL)
	if err != nil {
		return Credentials{}, err
	}
	// The whole key and each of its lines, in case an echo re-wraps it; the
	// assertion and its signature, which are credentials for an hour.
	secrets := []string{key.PrivateKey, key.PrivateKeyID, assertion, assertion[strings.LastIndexByte(assertion, '.')+1:]}
	for _, line := range strings.Split(key.PrivateKey, "\n") {
		if line = strings.TrimSpace(line); len(line) >= 4 && !strings.HasPrefix(line, "-----") {
			secrets = append(secrets, line)
		}
	}
	if resp.StatusCode != http.StatusOK {
		return Credentials{}, oauthError(resp, data, secrets)
	}
	return parseTokenResponse(data, now)
}

// isGoogleRegistry accepts <location>-docker.pkg.dev, gcr.io and *.gcr.io.
func isGoogleRegistry(host string) bool {
	if host == "gcr.io" {
		return true
	}
	if sub, ok := strings.CutSuffix(host, ".gcr.io"); ok {
		return sub != "" && !strings.Contains(sub, ".")
	}
	if loc, ok := strings.CutSuffix(host, "-docker.pkg.dev"); ok {
		return loc != "" && !strings.Contains(loc, ".")
	}
	return false
}

func parseServiceAccount(secret map[string]string) (serviceAccountKey, error) {
	var key serviceAccountKey
	raw, err := secretValue(secret, "SERVICE_ACCOUNT_JSON")
	if err != nil {
		return key, err
	}
	if err := json.Unmarshal([]byte(raw), &key); err != nil {
		// The decoder's message can quote the key file's text; say only where.
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return key, fmt.Errorf("cloudauth: SERVICE_ACCOUNT_JSON is not valid JSON (syntax error at byte %d)", se.Offset)
		case errors.As(err, &te) && te.Field != "":
			return key, fmt.Errorf("cloudauth: SERVICE_ACCOUNT_JSON field %q has the wrong JSON type (want %s)", te.Field, te.Type)
		}
		return key, errors.New("cloudauth: SERVICE_ACCOUNT_JSON is not a JSON object")
	}
	if key.Type != "service_account" {
		if key.Type == "" {
			return key, errors.New(`cloudauth: SERVICE_ACCOUNT_JSON has no "type" (want a service account key file, "type": "service_account")`)
		}
		return key, fmt.Errorf(`cloudauth: SERVICE_ACCOUNT_JSON is of type %q; only service account keys ("type": "service_account") are supported`, sanitize(key.Type))
	}
	if key.ClientEmail == "" {
		return key, errors.New("cloudauth: SERVICE_ACCOUNT_JSON has no client_email")
	}
	if key.PrivateKey == "" {
		return key, errors.New("cloudauth: SERVICE_ACCOUNT_JSON has no private_key")
	}
	return key, nil
}

// parseRSAKey reads a PEM RSA private key, PKCS #8 ("PRIVATE KEY", as in
// Google's key files) or PKCS #1 ("RSA PRIVATE KEY"). Its errors never quote
// the key.
func parseRSAKey(pemText string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("cloudauth: SERVICE_ACCOUNT_JSON private_key is not a PEM block (want -----BEGIN PRIVATE KEY-----)")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("cloudauth: SERVICE_ACCOUNT_JSON private_key is not a valid PKCS #8 key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("cloudauth: SERVICE_ACCOUNT_JSON private_key is a %T, not an RSA key", k)
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("cloudauth: SERVICE_ACCOUNT_JSON private_key is not a valid PKCS #1 RSA key")
		}
		return k, nil
	default:
		return nil, fmt.Errorf("cloudauth: SERVICE_ACCOUNT_JSON private_key is a PEM %q block, want PRIVATE KEY or RSA PRIVATE KEY", sanitize(block.Type))
	}
}

// signJWT returns the RS256-signed assertion: header {alg, typ, kid}, claims
// {iss, scope, aud, iat, exp}.
func signJWT(priv *rsa.PrivateKey, key serviceAccountKey, aud string, now time.Time) (string, error) {
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid,omitempty"`
	}{"RS256", "JWT", key.PrivateKeyID})
	if err != nil {
		return "", err
	}
	iat := now.Unix()
	claims, err := json.Marshal(struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
		Iat   int64  `json:"iat"`
		Exp   int64  `json:"exp"`
	}{key.ClientEmail, gcpScope, aud, iat, iat + int64(gcpAssertionTTL/time.Second)})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", errors.New("cloudauth: signing the JWT with SERVICE_ACCOUNT_JSON private_key failed")
	}
	return signingInput + "." + enc.EncodeToString(sig), nil
}

// oauthError reads an OAuth 2.0 error, {"error": "invalid_grant",
// "error_description": "..."}, or Google's {"error": {"status", "message"}}.
func oauthError(resp *http.Response, data []byte, secrets []string) error {
	e := &EndpointError{Endpoint: gcpCall, StatusCode: resp.StatusCode}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) == nil {
		e.Code = jsonString(obj, "error")
		e.Message = jsonString(obj, "error_description")
		var nested map[string]json.RawMessage
		if e.Code == "" && json.Unmarshal(obj["error"], &nested) == nil {
			e.Code = jsonString(nested, "status")
			e.Message = jsonString(nested, "message")
		}
	} else if len(bytes.TrimSpace(data)) > 0 {
		e.hint = "the response is not JSON"
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			e.hint += ", Content-Type " + ct
		}
	}
	e.Code = sanitize(e.Code, secrets...)
	e.Message = sanitize(e.Message, secrets...)
	if e.hint == "" {
		e.hint = oauthHints[e.Code]
	}
	return e
}

var oauthHints = map[string]string{
	"invalid_grant":       "the key may be deleted or disabled, its client_email wrong, or the clock off",
	"invalid_client":      "the service account or its key is unknown or disabled",
	"unauthorized_client": "the service account may not use this grant",
	"invalid_scope":       "the scope was refused",
}

// parseTokenResponse reads {"access_token", "expires_in", "token_type"}. Its
// errors never quote the token.
func parseTokenResponse(data []byte, now time.Time) (Credentials, error) {
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   *int64 `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return Credentials{}, fmt.Errorf("cloudauth: %s returned a malformed response (not the expected JSON)", gcpCall)
	}
	if out.AccessToken == "" {
		return Credentials{}, fmt.Errorf("cloudauth: %s returned no access_token", gcpCall)
	}
	if out.TokenType != "" && !strings.EqualFold(out.TokenType, "Bearer") {
		return Credentials{}, fmt.Errorf("cloudauth: %s returned a token of type %q, want Bearer", gcpCall, sanitize(out.TokenType, out.AccessToken))
	}
	c := Credentials{Username: gcpUsername, Password: out.AccessToken}
	if out.ExpiresIn != nil {
		if *out.ExpiresIn > maxLifetime {
			return Credentials{}, fmt.Errorf("cloudauth: %s returned an invalid expires_in %d", gcpCall, *out.ExpiresIn)
		}
		if *out.ExpiresIn <= 0 {
			return Credentials{}, fmt.Errorf("cloudauth: %s returned an already expired token (expires_in %d)", gcpCall, *out.ExpiresIn)
		}
		c.ExpiresAt = now.Add(time.Duration(*out.ExpiresIn) * time.Second).UTC()
	}
	return c, nil
}
