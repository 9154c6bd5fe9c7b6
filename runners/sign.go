package runners

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/signature/signer"
	"go.podman.io/image/v5/signature/sigstore"
	"go.podman.io/image/v5/types"
)

// SigstoreSigner signs pushed manifests with a sigstore private key
// (the format of skopeo generate-sigstore-key and cosign).
type SigstoreSigner struct{ s *signer.Signer }

// NewSigstoreSigner loads the private key in keyFile, decrypted with
// passphrase. The passphrase never appears in an error.
func NewSigstoreSigner(keyFile string, passphrase []byte) (*SigstoreSigner, error) {
	if passphrase == nil {
		passphrase = []byte{}
	}
	s, err := sigstore.NewSigner(sigstore.WithPrivateKeyFile(keyFile, passphrase))
	if err != nil {
		return nil, fmt.Errorf("sigstore private key %s: %w (is the passphrase right?)", keyFile, err)
	}
	return &SigstoreSigner{s: s}, nil
}

// Close releases the key.
func (s *SigstoreSigner) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	return s.s.Close()
}

// Sign adds a sigstore signature for the manifest d, already pushed to
// the repository of dest (docker://REPO[:TAG]), as a sigstore attachment
// (the REPO:sha256-<hex>.sig tag). The signature names dest's reference,
// or the repository with d when dest has no tag. An index is signed with
// each of its manifests.
func (r *Runtime) Sign(ctx context.Context, dest string, d digest.Digest, s *SigstoreSigner, auth *types.DockerAuthConfig) error {
	refStr := strings.TrimPrefix(dest, "docker://")
	named, err := reference.ParseNormalizedNamed(refStr)
	if err != nil {
		return fmt.Errorf("signing %s: %w", dest, err)
	}
	repo := reference.TrimNamed(named)
	src, err := reference.WithDigest(repo, d)
	if err != nil {
		return fmt.Errorf("signing %s: %w", dest, err)
	}
	srcRef, err := docker.NewReference(src)
	if err != nil {
		return fmt.Errorf("signing %s: %w", dest, err)
	}
	destNamed := named
	if _, tagged := named.(reference.Tagged); !tagged {
		destNamed = src
	}
	destRef, err := docker.NewReference(destNamed)
	if err != nil {
		return fmt.Errorf("signing %s: %w", dest, err)
	}
	sc := r.SystemContext()
	if auth != nil {
		sc.DockerAuthConfig = auth
	}
	// The manifest was just pushed by this build: the pull policy (which
	// may itself require signatures) is not what decides here.
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		return err
	}
	defer func() { _ = pc.Destroy() }()
	_, err = copy.Image(ctx, pc, destRef, srcRef, &copy.Options{
		SourceCtx: sc, DestinationCtx: sc, ReportWriter: io.Discard,
		Signers: []*signer.Signer{s.s}, RemoveSignatures: true,
		ImageListSelection: copy.CopyAllImages,
	})
	if err != nil {
		if strings.Contains(err.Error(), "sigstore attachments is disabled") {
			return fmt.Errorf("signing %s: %w: enable them for %s in a registries.d file (e.g. ~/.config/containers/registries.d/sigstore.yaml: \"docker:\\n  %s:\\n    use-sigstore-attachments: true\"), as skopeo and podman need to find the signatures too", dest, err, reference.Domain(named), reference.Domain(named))
		}
		return fmt.Errorf("signing %s: %w", dest, err)
	}
	return nil
}

// CheckSigned checks that the manifest src names (docker://REPO:TAG or
// docker://REPO@DIGEST; for an index, the index) carries a sigstore
// signature by the public key in pubKeyFile for that reference, as a
// policy.json sigstoreSigned requirement would (containers/image's policy
// evaluation, the code skopeo and podman run).
func (r *Runtime) CheckSigned(ctx context.Context, src, pubKeyFile string, auth *types.DockerAuthConfig) error {
	named, err := reference.ParseNormalizedNamed(strings.TrimPrefix(src, "docker://"))
	if err != nil {
		return fmt.Errorf("checking the signature of %s: %w", src, err)
	}
	ref, err := docker.NewReference(named)
	if err != nil {
		return fmt.Errorf("checking the signature of %s: %w", src, err)
	}
	req, err := signature.NewPRSigstoreSigned(signature.PRSigstoreSignedWithKeyPath(pubKeyFile),
		signature.PRSigstoreSignedWithSignedIdentity(signature.NewPRMMatchRepoDigestOrExact()))
	if err != nil {
		return fmt.Errorf("public key %s: %w", pubKeyFile, err)
	}
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{req}})
	if err != nil {
		return err
	}
	defer func() { _ = pc.Destroy() }()
	sc := r.SystemContext()
	if auth != nil {
		sc.DockerAuthConfig = auth
	}
	is, err := ref.NewImageSource(ctx, sc)
	if err != nil {
		return fmt.Errorf("checking the signature of %s: %w", src, err)
	}
	defer is.Close()
	if ok, err := pc.IsRunningImageAllowed(ctx, image.UnparsedInstance(is, nil)); !ok {
		return fmt.Errorf("%s is not signed by the key %s: %w", src, pubKeyFile, err)
	}
	return nil
}
