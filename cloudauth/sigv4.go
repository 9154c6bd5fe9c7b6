package cloudauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// AWS Signature Version 4, as described in the IAM User Guide ("Create a
// signed AWS API request"), for requests signed in the Authorization header.

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	amzDateFormat  = "20060102T150405Z"
)

type awsCredentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string // empty for long-term credentials
}

// signV4 signs req in place: it sets X-Amz-Date, X-Amz-Security-Token when
// creds has a session token, and Authorization. Signed are the host and
// every header in req.Header at the time of the call (headers the transport
// adds later, like User-Agent, are not). payloadHash is the hex SHA-256 of
// the body.
func signV4(req *http.Request, payloadHash string, creds awsCredentials, region, service string, t time.Time) {
	amzDate := t.UTC().Format(amzDateFormat)
	req.Header.Set("X-Amz-Date", amzDate)
	if creds.SessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", creds.SessionToken)
	}
	creq, signed := canonicalRequest(req, payloadHash)
	scope := amzDate[:8] + "/" + region + "/" + service + "/aws4_request"
	sts := stringToSign(amzDate, scope, creq)
	sig := hex.EncodeToString(hmacSHA256(signingKey(creds.SecretAccessKey, amzDate[:8], region, service), []byte(sts)))
	req.Header.Set("Authorization", sigV4Algorithm+" Credential="+creds.AccessKeyID+"/"+scope+
		", SignedHeaders="+signed+", Signature="+sig)
}

// canonicalRequest returns the canonical request of req and its signed
// header list.
func canonicalRequest(req *http.Request, payloadHash string) (creq, signedHeaders string) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	values := map[string]string{"host": canonicalHeaderValue(host)}
	for name, vs := range req.Header {
		n := strings.ToLower(name)
		if n == "authorization" {
			continue
		}
		cv := make([]string, len(vs))
		for i, v := range vs {
			cv[i] = canonicalHeaderValue(v)
		}
		values[n] = strings.Join(cv, ",")
	}
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	var headers strings.Builder
	for _, n := range names {
		headers.WriteString(n + ":" + values[n] + "\n")
	}
	signedHeaders = strings.Join(names, ";")
	creq = strings.Join([]string{
		req.Method,
		canonicalURI(req.URL),
		canonicalQuery(req.URL),
		headers.String(),
		signedHeaders,
		payloadHash,
	}, "\n")
	return creq, signedHeaders
}

func stringToSign(amzDate, scope, creq string) string {
	return sigV4Algorithm + "\n" + amzDate + "\n" + scope + "\n" + hexSHA256([]byte(creq))
}

// signingKey derives the key: HMAC chained over date, region, service and
// "aws4_request", starting from "AWS4" + the secret access key.
func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte("aws4_request"))
}

// canonicalHeaderValue trims v and collapses runs of spaces to one.
func canonicalHeaderValue(v string) string {
	return strings.Join(strings.Fields(v), " ")
}

// canonicalURI URI-encodes each segment of the (already escaped) path, as
// done for every service but S3; "/" for an empty path. Only "/" is used by
// this package.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = uriEncode(s)
	}
	return strings.Join(segs, "/")
}

// canonicalQuery sorts the query parameters by name, then value, and
// URI-encodes both.
func canonicalQuery(u *url.URL) string {
	q, _ := url.ParseQuery(u.RawQuery)
	type pair struct{ k, v string }
	pairs := make([]pair, 0, len(q))
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, pair{uriEncode(k), uriEncode(v)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p.k + "=" + p.v
	}
	return strings.Join(out, "&")
}

// uriEncode percent-encodes every byte except the RFC 3986 unreserved
// characters, with upper-case hex digits, as SigV4 requires.
func uriEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func hexSHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
