package builder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress prints one line per step and the steps' output, each line
// prefixed with the step's name.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	total int
}

func newProgress(w io.Writer, total int) *progress { return &progress{w: w, total: total - 1} }

func (p *progress) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

func (p *progress) start(st PlannedStep) {
	p.printf("[%d/%d] %s %s: RUN\n", st.Index, p.total, st.Method, st.Description)
}

func (p *progress) done(st PlannedStep, cached bool, d time.Duration) {
	state := "DONE"
	if cached {
		state = "CACHED"
	}
	p.printf("[%d/%d] %s %s: %s %.2fs\n", st.Index, p.total, st.Method, st.Description, state, d.Seconds())
}

// stepWriter returns a writer that prefixes each line with the step's name,
// redacting secret values, or nil when there is no output.
func (p *progress) stepWriter(st PlannedStep, red *redactor) io.Writer {
	if p.w == nil {
		return nil
	}
	return &lineWriter{p: p, prefix: fmt.Sprintf("[%d/%d] %s | ", st.Index, p.total, st.Method), red: red}
}

type lineWriter struct {
	p      *progress
	prefix string
	red    *redactor
	buf    []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.p.printf("%s%s\n", l.prefix, l.red.apply(string(l.buf[:i])))
		l.buf = l.buf[i+1:]
	}
	return len(b), nil
}

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

// err redacts secret values from a step error, keeping its type.
func (r *redactor) err(err error) error {
	if r == nil || len(r.values) == 0 {
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
		c.Err = errors.New(r.apply(c.Err.Error()))
		return &c
	}
	return errors.New(r.apply(err.Error()))
}
