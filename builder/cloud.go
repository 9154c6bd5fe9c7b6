package builder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/cloudauth"
	"github.com/stratabuild/strata/runners"
)

// WithCredentialExchange replaces the exchange FromAWSECR or
// FromGCPArtifactRegistry uses to turn the secret into registry
// credentials (default: cloudauth.ECR or cloudauth.GCP against the real
// services). Tests point it at a local endpoint.
func WithCredentialExchange(ex cloudauth.Exchanger) BaseOption {
	return baseOption(func(o *baseOptions) { o.named("WithCredentialExchange"); o.exchange = ex })
}

// FromAWSECR starts from an image in Amazon ECR
// ("<account>.dkr.ecr.<region>.amazonaws.com/repo:tag"), as Modal's
// from_aws_ecr: the secret holds AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
// and optionally AWS_SESSION_TOKEN, which strata exchanges for a registry
// token with ECR's GetAuthorizationToken when the build starts (and again
// when the token expires). Tested against a local fake of the ECR API only.
func FromAWSECR(ref string, secret Secret, opts ...BaseOption) Image {
	return fromCloud("FromAWSECR", ref, secret, &cloudauth.ECR{}, opts)
}

// FromGCPArtifactRegistry starts from an image in Google Artifact Registry
// or Container Registry ("us-docker.pkg.dev/project/repo/image:tag", "gcr.io/..."),
// as Modal's from_gcp_artifact_registry: the secret holds
// SERVICE_ACCOUNT_JSON, a service account's key file, which strata
// exchanges for an OAuth access token when the build starts. Tested against
// a local fake of Google's token endpoint only.
func FromGCPArtifactRegistry(ref string, secret Secret, opts ...BaseOption) Image {
	return fromCloud("FromGCPArtifactRegistry", ref, secret, &cloudauth.GCP{}, opts)
}

func fromCloud(method, ref string, secret Secret, ex cloudauth.Exchanger, opts []BaseOption) Image {
	var bo baseOptions
	for _, o := range opts {
		o.applyBase(&bo)
	}
	err := bo.check(method, "WithCredentialExchange", "AddPython")
	if bo.exchange != nil {
		ex = bo.exchange
	}
	named, perr := runners.ParseRegistryRef(ref)
	if err == nil {
		err = perr
	}
	if err == nil {
		err = secret.err
	}
	if err == nil && len(secret.env) == 0 {
		err = errors.New("the secret holds no credentials")
	}
	b := runners.Base{Kind: runners.BaseRegistry, Ref: ref}
	if err == nil {
		b.AuthFunc = (&exchanged{ex: ex, host: reference.Domain(named), secret: secret.env}).auth
	}
	return newBase(method, b, err).addPython(bo.addPython)
}

// exchanged keeps the registry credentials obtained from a cloud secret
// until shortly before they expire.
type exchanged struct {
	ex     cloudauth.Exchanger
	host   string
	secret map[string]string

	mu    sync.Mutex
	creds *cloudauth.Credentials
}

func (e *exchanged) auth(ctx context.Context) (*types.DockerAuthConfig, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.creds == nil || (!e.creds.ExpiresAt.IsZero() && time.Until(e.creds.ExpiresAt) < time.Minute) {
		c, err := e.ex.Exchange(ctx, e.host, e.secret)
		if err != nil {
			return nil, fmt.Errorf("getting registry credentials for %s: %w", e.host, err)
		}
		e.creds = &c
	}
	return &types.DockerAuthConfig{Username: e.creds.Username, Password: e.creds.Password}, nil
}
