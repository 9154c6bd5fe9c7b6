package cloudauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/stratabuild/strata/cloudauth"
)

func ExampleECR_Exchange() {
	// A stand-in for https://api.ecr.us-east-1.amazonaws.com/.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" ||
			!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/") {
			http.Error(w, `{"__type":"MissingAuthenticationTokenException"}`, http.StatusForbidden)
			return
		}
		// base64("AWS:example-password")
		io.WriteString(w, `{"authorizationData":[{"authorizationToken":"QVdTOmV4YW1wbGUtcGFzc3dvcmQ=",`+
			`"expiresAt":1.9e9,"proxyEndpoint":"https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}]}`)
	}))
	defer srv.Close()

	ecr := &cloudauth.ECR{Endpoint: srv.URL} // leave Endpoint empty for the real service
	creds, err := ecr.Exchange(context.Background(), "123456789012.dkr.ecr.us-east-1.amazonaws.com", map[string]string{
		"AWS_ACCESS_KEY_ID":     "AKIAEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "example-secret",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(creds.Username, creds.Password, creds.ExpiresAt.Format(time.RFC3339))
	// Output: AWS example-password 2030-03-17T17:46:40Z
}

func ExampleGCP_Exchange() {
	// A stand-in for https://oauth2.googleapis.com/token.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.FormValue("assertion") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"access_token":"ya29.example","expires_in":3599,"token_type":"Bearer"}`)
	}))
	defer srv.Close()

	// A service account key file, as downloaded from Google Cloud.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"client_email":   "builder@example-project.iam.gserviceaccount.com",
		"private_key_id": "0123456789abcdef",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"token_uri":      "https://oauth2.googleapis.com/token",
	})

	gcp := &cloudauth.GCP{TokenURL: srv.URL} // leave TokenURL empty for the real service
	creds, err := gcp.Exchange(context.Background(), "us-central1-docker.pkg.dev",
		map[string]string{"SERVICE_ACCOUNT_JSON": string(keyFile)})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(creds.Username, creds.Password)
	// Output: oauth2accesstoken ya29.example
}

func ExampleCredentials_String() {
	creds := cloudauth.Credentials{Username: "AWS", Password: "hunter2", ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	fmt.Println(creds)
	fmt.Printf("%#v\n", creds)
	// Output:
	// {Username:AWS Password:<redacted> ExpiresAt:2030-01-02T03:04:05Z}
	// {Username:AWS Password:<redacted> ExpiresAt:2030-01-02T03:04:05Z}
}

func ExampleEndpointError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"com.amazon.coral.service#UnrecognizedClientException",`+
			`"message":"The security token included in the request is invalid."}`)
	}))
	defer srv.Close()
	_, err := (&cloudauth.ECR{Endpoint: srv.URL}).Exchange(context.Background(),
		"123456789012.dkr.ecr.us-east-1.amazonaws.com",
		map[string]string{"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wrong"})
	fmt.Println(err)
	// Output: cloudauth: ECR GetAuthorizationToken refused: HTTP 400 Bad Request: UnrecognizedClientException: The security token included in the request is invalid. (check AWS_ACCESS_KEY_ID, and AWS_SESSION_TOKEN for temporary credentials)
}
