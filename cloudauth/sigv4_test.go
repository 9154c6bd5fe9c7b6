package cloudauth

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The example credentials of AWS's Signature Version 4 documentation and of
// its (retired) SigV4 test suite, and the instant both use.
const (
	exampleAccessKeyID = "AKIDEXAMPLE"
	exampleSecretKey   = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

var exampleTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)

const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestEmptyPayloadHash(t *testing.T) {
	if got := hexSHA256(nil); got != emptySHA256 {
		t.Fatalf("sha256(\"\") = %s, want %s", got, emptySHA256)
	}
}

// The worked example of the AWS General Reference, "Signature Version 4
// signing process": GET iam ListUsers, with each intermediate value the
// documentation prints.
func TestSigV4DocumentedIAMExample(t *testing.T) {
	req, err := http.NewRequest("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("X-Amz-Date", "20150830T123600Z")

	creq, signed := canonicalRequest(req, emptySHA256)
	wantCreq := "GET\n/\nAction=ListUsers&Version=2010-05-08\n" +
		"content-type:application/x-www-form-urlencoded; charset=utf-8\n" +
		"host:iam.amazonaws.com\n" +
		"x-amz-date:20150830T123600Z\n\n" +
		"content-type;host;x-amz-date\n" + emptySHA256
	if creq != wantCreq {
		t.Errorf("canonical request:\n%s\nwant:\n%s", creq, wantCreq)
	}
	if signed != "content-type;host;x-amz-date" {
		t.Errorf("signed headers = %s", signed)
	}
	if got, want := hexSHA256([]byte(creq)), "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"; got != want {
		t.Errorf("hashed canonical request = %s, want %s", got, want)
	}
	sts := stringToSign("20150830T123600Z", "20150830/us-east-1/iam/aws4_request", creq)
	wantSTS := "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n" +
		"f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
	if sts != wantSTS {
		t.Errorf("string to sign:\n%s\nwant:\n%s", sts, wantSTS)
	}
	if got, want := hex.EncodeToString(signingKey(exampleSecretKey, "20150830", "us-east-1", "iam")),
		"c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"; got != want {
		t.Errorf("signing key = %s, want %s", got, want)
	}

	signV4(req, emptySHA256, awsCredentials{AccessKeyID: exampleAccessKeyID, SecretAccessKey: exampleSecretKey},
		"us-east-1", "iam", exampleTime)
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, " +
		"SignedHeaders=content-type;host;x-amz-date, " +
		"Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization:\n got %s\nwant %s", got, want)
	}
}

// Cases of the AWS SigV4 test suite (service "service", host
// example.amazonaws.com, empty body).
func TestSigV4TestSuite(t *testing.T) {
	for _, c := range []struct {
		name, method, url, sig string
	}{
		{"get-vanilla", "GET", "https://example.amazonaws.com/",
			"5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"get-vanilla-query-order-key-case", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1",
			"b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
		{"post-vanilla", "POST", "https://example.amazonaws.com/",
			"5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, c.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			signV4(req, emptySHA256, awsCredentials{AccessKeyID: exampleAccessKeyID, SecretAccessKey: exampleSecretKey},
				"us-east-1", "service", exampleTime)
			want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
				"SignedHeaders=host;x-amz-date, Signature=" + c.sig
			if got := req.Header.Get("Authorization"); got != want {
				t.Errorf("Authorization:\n got %s\nwant %s", got, want)
			}
			if got := req.Header.Get("X-Amz-Date"); got != "20150830T123600Z" {
				t.Errorf("X-Amz-Date = %s", got)
			}
		})
	}
}

func TestSigV4SessionTokenIsSigned(t *testing.T) {
	req, _ := http.NewRequest("POST", "https://api.ecr.us-east-1.amazonaws.com/", nil)
	signV4(req, emptySHA256, awsCredentials{"AKID", "SECRET", "TOKEN"}, "us-east-1", "ecr", exampleTime)
	if got := req.Header.Get("X-Amz-Security-Token"); got != "TOKEN" {
		t.Errorf("X-Amz-Security-Token = %q", got)
	}
	if !strings.Contains(req.Header.Get("Authorization"), "SignedHeaders=host;x-amz-date;x-amz-security-token,") {
		t.Errorf("token not signed: %s", req.Header.Get("Authorization"))
	}
}

func TestCanonicalParts(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a=1&b=2", "a=1&b=2"},
		{"b=2&a=1", "a=1&b=2"},
		{"a=2&a=1", "a=1&a=2"},
		{"a-b=1&a=2", "a=2&a-b=1"}, // sorted by name, not by "name=value"
		{"k=a b&k2=~*", "k=a%20b&k2=~%2A"},
		{"", ""},
	} {
		req, _ := http.NewRequest("GET", "https://h/?"+c.in, nil)
		if got := canonicalQuery(req.URL); got != c.want {
			t.Errorf("canonicalQuery(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := canonicalHeaderValue("  a   b  c "); got != "a b c" {
		t.Errorf("canonicalHeaderValue = %q", got)
	}
	req, _ := http.NewRequest("GET", "https://h", nil)
	if got := canonicalURI(req.URL); got != "/" {
		t.Errorf("canonicalURI of empty path = %q", got)
	}
	// Signing must leave the caller's header values as they were.
	req.Header.Set("X-Spaced", "  a  b ")
	canonicalRequest(req, emptySHA256)
	if got := req.Header.Get("X-Spaced"); got != "  a  b " {
		t.Errorf("header changed to %q", got)
	}
}
