package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stratabuild/strata/gpu"
)

// TestRedactedErrorsKeepTheirChain: an error of a step with a secret loses
// the secret from its text but still answers errors.As for *StepError
// (redacted) and errors.Is for the sentinels callers branch on.
func TestRedactedErrorsKeepTheirChain(t *testing.T) {
	t.Parallel()
	const secret = "topsecret-42"
	r := redactorFor([]Secret{SecretFromMap("s", map[string]string{"K": secret})})
	stepErr := func(inner error) *StepError {
		return &StepError{Step: "step 1 (RunCommands)", Command: "echo " + secret, ExitCode: 1,
			Tail: []string{"the token is " + secret}, Err: fmt.Errorf("running with %s: %w", secret, inner)}
	}
	for _, tc := range []struct {
		name      string
		err       error
		sentinel  error
		wantsStep bool
	}{
		{"a step error", stepErr(os.ErrInvalid), os.ErrInvalid, true},
		{"a cancelled step", stepErr(context.Canceled), context.Canceled, true},
		{"a wrapped step error", fmt.Errorf("step 1 (RunCommands) with %s: %w", secret, stepErr(gpu.ErrNoDriver)), gpu.ErrNoDriver, true},
		{"a plain error", fmt.Errorf("step 1 (RunCommands) %s: %w", secret, context.Canceled), context.Canceled, false},
		{"no driver", fmt.Errorf("GPU for %s: %w", secret, gpu.ErrNoDriver), gpu.ErrNoDriver, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := r.err(tc.err)
			if strings.Contains(got.Error(), secret) {
				t.Fatalf("secret in the error: %v", got)
			}
			if !errors.Is(got, tc.sentinel) {
				t.Errorf("errors.Is(err, %v) is false for %v", tc.sentinel, got)
			}
			var se *StepError
			if errors.As(got, &se) != tc.wantsStep {
				t.Fatalf("errors.As(*StepError) = %v, want %v", !tc.wantsStep, tc.wantsStep)
			}
			if se == nil {
				return
			}
			all := se.Command + strings.Join(se.Tail, "\n") + se.Err.Error() + se.Error()
			if strings.Contains(all, secret) {
				t.Errorf("secret in the *StepError errors.As gives: %+v", se)
			}
			if se.ExitCode != 1 || se.Step != "step 1 (RunCommands)" || se.Command != "echo ***" {
				t.Errorf("step error fields: %+v", se)
			}
			// Nothing hands out the original text.
			for u := errors.Unwrap(got); u != nil; u = errors.Unwrap(u) {
				if strings.Contains(u.Error(), secret) {
					t.Errorf("Unwrap reaches the secret: %v", u)
				}
			}
		})
	}
}
