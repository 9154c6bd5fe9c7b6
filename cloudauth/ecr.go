package cloudauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// ECR exchanges AWS credentials for Amazon ECR registry credentials with
// ECR's GetAuthorizationToken action. The zero value is ready to use.
type ECR struct {
	// Endpoint overrides the GetAuthorizationToken URL, which is otherwise
	// https://api.ecr.<region>.amazonaws.com/ (.amazonaws.com.cn in China).
	// With it set, any registry host is accepted, for tests.
	Endpoint string
	// Client makes the request; nil means a client with a 30 s timeout.
	// Redirects are never followed.
	Client *http.Client
	// Now is the clock used to sign the request and to check the token's
	// expiry; nil means time.Now.
	Now func() time.Time
}

const (
	ecrTarget      = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
	ecrContentType = "application/x-amz-json-1.1"
	ecrCall        = "ECR GetAuthorizationToken"
)

var (
	// <12-digit account>.dkr.ecr.<region>.amazonaws.com[.cn]
	ecrHostRE = regexp.MustCompile(`^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

// Exchange implements [Exchanger]. It reads AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and the optional AWS_SESSION_TOKEN from secret; the
// region is the registry host's, or with e.Endpoint set and a host that names
// none, AWS_REGION or AWS_DEFAULT_REGION. It returns the username "AWS".
func (e *ECR) Exchange(ctx context.Context, registryHost string, secret map[string]string) (Credentials, error) {
	host := normalizeHost(registryHost)
	m := ecrHostRE.FindStringSubmatch(host)
	if m == nil && e.Endpoint == "" {
		return Credentials{}, fmt.Errorf("cloudauth: registry host %q is not an Amazon ECR registry (want <account>.dkr.ecr.<region>.amazonaws.com)", registryHost)
	}
	creds, err := awsCredentialsFrom(secret)
	if err != nil {
		return Credentials{}, err
	}
	var region, suffix string
	if m != nil {
		region, suffix = m[1], m[2]
	} else {
		region = strings.TrimSpace(secret["AWS_REGION"])
		if region == "" {
			region = strings.TrimSpace(secret["AWS_DEFAULT_REGION"])
		}
		if region == "" {
			return Credentials{}, fmt.Errorf("cloudauth: secret has no AWS_REGION (or AWS_DEFAULT_REGION), and registry host %q names no region", registryHost)
		}
	}
	if !regionRE.MatchString(region) {
		return Credentials{}, fmt.Errorf("cloudauth: %q is not an AWS region (want one like us-east-1)", region)
	}
	endpoint := e.Endpoint
	if endpoint == "" {
		endpoint = "https://api.ecr." + region + ".amazonaws.com" + suffix + "/"
	}

	body := []byte("{}")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return Credentials{}, fmt.Errorf("cloudauth: %s: bad endpoint %q: %w", ecrCall, endpoint, err)
	}
	req.Header.Set("Content-Type", ecrContentType)
	req.Header.Set("X-Amz-Target", ecrTarget)
	now := nowFunc(e.Now)
	signV4(req, hexSHA256(body), creds, region, "ecr", now)

	resp, data, err := send(e.Client, req, ecrCall+" at "+endpoint)
	if err != nil {
		return Credentials{}, err
	}
	secrets := []string{creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken}
	if resp.StatusCode != http.StatusOK {
		return Credentials{}, awsError(resp, data, secrets)
	}
	return parseECRResponse(data, now)
}

func awsCredentialsFrom(secret map[string]string) (awsCredentials, error) {
	var c awsCredentials
	var err error
	if c.AccessKeyID, err = secretValue(secret, "AWS_ACCESS_KEY_ID"); err != nil {
		return c, err
	}
	if c.SecretAccessKey, err = secretValue(secret, "AWS_SECRET_ACCESS_KEY"); err != nil {
		return c, err
	}
	c.SessionToken = strings.TrimSpace(secret["AWS_SESSION_TOKEN"])
	return c, nil
}

// awsError reads an AWS JSON protocol error: {"__type": "...#Code",
// "message": "..."}, the code also in the X-Amzn-ErrorType header.
func awsError(resp *http.Response, data []byte, secrets []string) error {
	e := &EndpointError{Endpoint: ecrCall, StatusCode: resp.StatusCode}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) == nil {
		e.Code = jsonString(obj, "__type", "code", "Code")
		e.Message = jsonString(obj, "message", "Message")
	} else if len(bytes.TrimSpace(data)) > 0 {
		e.hint = "the response is not JSON"
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			e.hint += ", Content-Type " + ct
		}
	}
	if e.Code == "" {
		e.Code = resp.Header.Get("X-Amzn-ErrorType")
	}
	// "com.amazon.coral.service#UnrecognizedClientException:http://..." -> the name.
	if i := strings.LastIndexByte(e.Code, '#'); i >= 0 {
		e.Code = e.Code[i+1:]
	}
	if i := strings.IndexByte(e.Code, ':'); i >= 0 {
		e.Code = e.Code[:i]
	}
	e.Code = sanitize(e.Code, secrets...)
	e.Message = sanitize(e.Message, secrets...)
	if e.hint == "" {
		e.hint = awsHints[e.Code]
	}
	return e
}

var awsHints = map[string]string{
	"UnrecognizedClientException":         "check AWS_ACCESS_KEY_ID, and AWS_SESSION_TOKEN for temporary credentials",
	"InvalidClientTokenId":                "check AWS_ACCESS_KEY_ID, and AWS_SESSION_TOKEN for temporary credentials",
	"InvalidSignatureException":           "check AWS_SECRET_ACCESS_KEY, and that the clock is right",
	"SignatureDoesNotMatch":               "check AWS_SECRET_ACCESS_KEY, and that the clock is right",
	"ExpiredTokenException":               "the temporary credentials have expired: renew AWS_SESSION_TOKEN and its keys",
	"AccessDeniedException":               "the IAM identity needs the ecr:GetAuthorizationToken permission",
	"MissingAuthenticationTokenException": "the request was not signed",
	"IncompleteSignatureException":        "the request signature is incomplete",
	"ThrottlingException":                 "retry later",
	"ServiceUnavailableException":         "retry later",
	"InvalidParameterException":           "the request was malformed",
}

// parseECRResponse reads {"authorizationData": [{"authorizationToken":
// base64("AWS:<password>"), "expiresAt": <epoch seconds>, "proxyEndpoint":
// "https://..."}]}. Its errors never quote the token.
func parseECRResponse(data []byte, now time.Time) (Credentials, error) {
	var out struct {
		AuthorizationData []struct {
			AuthorizationToken string   `json:"authorizationToken"`
			ExpiresAt          *float64 `json:"expiresAt"`
		} `json:"authorizationData"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return Credentials{}, fmt.Errorf("cloudauth: %s returned a malformed response (not the expected JSON)", ecrCall)
	}
	if len(out.AuthorizationData) == 0 {
		return Credentials{}, fmt.Errorf("cloudauth: %s returned no authorizationData", ecrCall)
	}
	ad := out.AuthorizationData[0]
	if ad.AuthorizationToken == "" {
		return Credentials{}, fmt.Errorf("cloudauth: %s returned no authorizationToken", ecrCall)
	}
	raw, err := base64.StdEncoding.DecodeString(ad.AuthorizationToken)
	if err != nil {
		return Credentials{}, fmt.Errorf("cloudauth: %s returned an authorizationToken that is not base64", ecrCall)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return Credentials{}, fmt.Errorf("cloudauth: %s returned an authorizationToken that is not <user>:<password>", ecrCall)
	}
	c := Credentials{Username: user, Password: pass}
	if ad.ExpiresAt != nil {
		sec, frac := math.Modf(*ad.ExpiresAt)
		if !(*ad.ExpiresAt > 0 && sec < float64(now.Unix()+maxLifetime)) {
			return Credentials{}, fmt.Errorf("cloudauth: %s returned an invalid expiresAt %v", ecrCall, *ad.ExpiresAt)
		}
		c.ExpiresAt = time.Unix(int64(sec), int64(math.Round(frac*1e3))*1e6).UTC()
		if !c.ExpiresAt.After(now) {
			return Credentials{}, fmt.Errorf("cloudauth: %s returned a token that expired at %s (is the clock right?)",
				ecrCall, c.ExpiresAt.Format(time.RFC3339))
		}
	}
	return c, nil
}
