package builder

import (
	"errors"
	"strings"
)

// redactor replaces secret values in text.
type redactor struct{ values []string }

func redactorFor(secrets []Secret) *redactor {
	r := &redactor{}
	for _, s := range secrets {
		for _, v := range s.env {
			if v != "" {
				r.values = append(r.values, v)
			}
		}
	}
	return r
}

func (r *redactor) apply(s string) string {
	if r == nil {
		return s
	}
	for _, v := range r.values {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
}

// err redacts secret values from an error's text and keeps what callers
// branch on: a *StepError is copied with its fields redacted (errors.As
// finds the copy), and errors.Is still reaches every sentinel in the
// original chain (context.Canceled, gpu.ErrNoDriver). The original error
// itself is not reachable through Unwrap, so no caller can print it.
func (r *redactor) err(err error) error {
	if r == nil || len(r.values) == 0 || err == nil {
		return err
	}
	var se *StepError
	if errors.As(err, &se) {
		c := *se
		c.Command = r.apply(c.Command)
		c.Tail = append([]string(nil), c.Tail...)
		for i := range c.Tail {
			c.Tail[i] = r.apply(c.Tail[i])
		}
		if c.Err != nil {
			c.Err = &redactedError{text: r.apply(c.Err.Error()), orig: c.Err}
		}
		if se == err {
			return &c
		}
		return &redactedError{text: r.apply(err.Error()), orig: err, step: &c}
	}
	return &redactedError{text: r.apply(err.Error()), orig: err}
}

// redactedError is an error whose text had secret values removed.
type redactedError struct {
	text string
	orig error
	step *StepError // the redacted copy of the *StepError in orig's chain
}

func (e *redactedError) Error() string { return e.text }

// Is reports whether target is in the original chain: a yes or no says
// nothing secret.
func (e *redactedError) Is(target error) bool { return errors.Is(e.orig, target) }

// As gives the redacted *StepError; other types are not handed out, as
// their text may hold the secret.
func (e *redactedError) As(target any) bool {
	if p, ok := target.(**StepError); ok && e.step != nil {
		*p = e.step
		return true
	}
	return false
}
