// Package cloudauth exchanges cloud credentials held in a build secret for
// the username and password of a cloud container registry.
//
// Two exchanges are implemented, each behind the [Exchanger] interface:
//
// [ECR] (Amazon Elastic Container Registry) reads AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and, for temporary credentials, AWS_SESSION_TOKEN
// from the secret. It calls ECR's GetAuthorizationToken action (the AWS JSON
// 1.1 protocol: an HTTPS POST of "{}" to https://api.ecr.<region>.amazonaws.com/
// with the X-Amz-Target header), signed with AWS Signature Version 4, and
// decodes the returned base64 "AWS:<password>" token. The region is taken
// from the registry host <account>.dkr.ecr.<region>.amazonaws.com (or
// .amazonaws.com.cn), because an ECR token only works for registries of the
// region that issued it; AWS_REGION, then AWS_DEFAULT_REGION, are used only
// when the host names no region, which happens only with [ECR.Endpoint] set.
// The username is "AWS".
//
// [GCP] (Google Artifact Registry and Container Registry) reads
// SERVICE_ACCOUNT_JSON, the content of a service account's JSON key file
// (type "service_account", client_email, private_key as PEM in PKCS #8 or
// PKCS #1 form, private_key_id, token_uri). It signs a JWT with RS256 that
// asserts the client_email for the scope
// https://www.googleapis.com/auth/cloud-platform, posts it to the token_uri
// (https://oauth2.googleapis.com/token when absent) as an OAuth 2.0
// jwt-bearer grant, and returns the access token with the username
// "oauth2accesstoken". Registry hosts accepted are <location>-docker.pkg.dev,
// gcr.io and *.gcr.io.
//
// Errors name the missing or malformed secret key, and for a refusal the
// HTTP status and the service's error code and message ([EndpointError]).
// No secret value (access key, secret key, session token, private key, the
// signed assertion, the returned password) is ever put in an error: values
// the endpoint echoes back are replaced with "<redacted>", and
// [Credentials] prints its password as "<redacted>".
//
// Tested against local fake endpoints only; not tested against the real AWS
// or Google services. The fakes check requests the way the services
// document they do (the fake ECR recomputes the SigV4 signature, the fake
// Google endpoint verifies the JWT's RS256 signature and claims), and the
// signer reproduces AWS's published Signature Version 4 examples.
package cloudauth
