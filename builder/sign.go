package builder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/types"

	"github.com/stratabuild/strata/runners"
)

// SignBy signs what the build pushes with the sigstore private key in
// keyFile (the format skopeo generate-sigstore-key and cosign write),
// decrypted with the passphrase that secret holds (its one variable, e.g.
// SecretFromEnv("SIGN_PASSPHRASE")), as buildah push and skopeo copy
// --sign-by-sigstore-private-key do: the image manifest (an index with
// each platform's manifest) and each attestation, as sigstore
// attachments (REPO:sha256-<hex>.sig). The registry's registries.d entry
// must say use-sigstore-attachments: true (skopeo and podman need it to
// find them). The key is loaded before any step runs; a wrong passphrase
// fails the build there. It needs a Push; oci: layouts hold no
// signatures. The passphrase never enters a log, an error or the image.
func SignBy(keyFile string, passphrase Secret) BuildOption {
	return named("SignBy", func(o *buildOptions) {
		switch {
		case passphrase.err != nil:
			o.err = fmt.Errorf("SignBy: %w", passphrase.err)
		case len(passphrase.env) != 1:
			o.err = fmt.Errorf("SignBy: the passphrase secret %q holds %d variables; give it one", passphrase.name, len(passphrase.env))
		case keyFile == "":
			o.err = errors.New("SignBy: no key file given")
		default:
			for _, v := range passphrase.env {
				o.sign = &signSpec{keyFile: keyFile, passphrase: []byte(v)}
			}
		}
	})
}

type signSpec struct {
	keyFile    string
	passphrase []byte
}

// openSigner loads the SignBy key, or returns nil without SignBy.
func openSigner(bo buildOptions) (*runners.SigstoreSigner, error) {
	if bo.sign == nil {
		return nil, nil
	}
	if !slices.ContainsFunc(bo.exports, func(d string) bool { return strings.HasPrefix(d, "docker://") }) {
		return nil, errors.New("SignBy signs what the build pushes: add Push(REF) (oci: layouts and archives hold no signatures)")
	}
	s, err := runners.NewSigstoreSigner(bo.sign.keyFile, bo.sign.passphrase)
	if err != nil {
		return nil, fmt.Errorf("SignBy: %w", err)
	}
	return s, nil
}

// signPush signs the manifest d pushed to dest and the attestations
// attached to it.
func (s *Session) signPush(ctx context.Context, sg *runners.SigstoreSigner, dest, d string, atts []Attestation, auth *types.DockerAuthConfig, pr *progress) error {
	if sg == nil || !strings.HasPrefix(dest, "docker://") {
		return nil
	}
	if err := s.rt.Sign(ctx, dest, digest.Digest(d), sg, auth); err != nil {
		return err
	}
	pr.printf("signed %s (%s)\n", dest, d)
	repo := repoOf(dest)
	for _, a := range atts {
		if err := s.rt.Sign(ctx, repo, digest.Digest(a.Digest), sg, auth); err != nil {
			return err
		}
		pr.printf("signed the attestation %s\n", a.Digest)
	}
	return nil
}

// repoOf is docker://REPO for docker://REPO:TAG (or @DIGEST).
func repoOf(dest string) string {
	ref := strings.TrimPrefix(dest, "docker://")
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return "docker://" + ref
}
