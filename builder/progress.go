package builder

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ProgressEvent is one thing a build reports while it runs: a step starts,
// prints a line of output, or ends, or the build notes something (a
// Dockerfile instruction that OCI images cannot hold, a remote cache that
// is unreachable, an export). WithProgressFunc receives them.
type ProgressEvent struct {
	// Kind is "start" (a step is about to run), "output" (a line of its
	// output), "done" (it ended, from a cache or after running) or "note".
	Kind string
	// Index is the step's index in the chain (0 = base) and Total the index
	// of the last step; both are 0 for notes.
	Index, Total int
	// Method and Description are PlannedStep's.
	Method, Description string
	// State is set on start ("RUN") and done events: "CACHED" (taken from
	// the local cache), "REMOTE" (pulled from a CacheFrom repository) or
	// "RUN" (it ran).
	State string
	// Reason says why a step runs (start events; may be empty).
	Reason string
	// Duration is the step's time, on done events.
	Duration time.Duration
	// Line is the output line (without its newline, secret values
	// redacted) or the note's text.
	Line string
}

// WithProgressFunc calls f with every progress event of the build, in
// addition to what WithOutput prints. Calls are serialized; f must return
// quickly, as the step's output waits for it. Default: none.
func WithProgressFunc(f func(ProgressEvent)) BuildOption {
	return named("WithProgressFunc", func(o *buildOptions) { o.progressFn = f })
}

// progress prints one line per step and the steps' output, each line
// prefixed with the step's name, and passes events to fn.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	fn    func(ProgressEvent)
	total int
}

func newProgress(w io.Writer, total int, fn func(ProgressEvent)) *progress {
	return &progress{w: w, fn: fn, total: total - 1}
}

// emit writes the text (when there is a writer) and passes ev to fn, as one
// serialized operation.
func (p *progress) emit(ev ProgressEvent, format string, args ...any) {
	if p.w == nil && p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil {
		fmt.Fprintf(p.w, format, args...)
	}
	if p.fn != nil {
		p.fn(ev)
	}
}

func (p *progress) stepEvent(kind string, st PlannedStep) ProgressEvent {
	return ProgressEvent{Kind: kind, Index: st.Index, Total: p.total, Method: st.Method, Description: st.Description}
}

// printf prints a note.
func (p *progress) printf(format string, args ...any) {
	if p.w == nil && p.fn == nil {
		return
	}
	text := fmt.Sprintf(format, args...)
	p.emit(ProgressEvent{Kind: "note", Line: strings.TrimRight(text, "\n")}, "%s", text)
}

func (p *progress) start(st PlannedStep) {
	state := "RUN"
	if st.why != "" {
		state += " (" + st.why + ")"
	}
	ev := p.stepEvent("start", st)
	ev.State, ev.Reason = "RUN", st.why
	p.emit(ev, "[%d/%d] %s: %s\n", st.Index, p.total, StepLabel(st.Method, st.Description), state)
}

func (p *progress) done(st PlannedStep, cached bool, d time.Duration) {
	state := "DONE"
	ev := p.stepEvent("done", st)
	ev.State, ev.Duration = "RUN", d
	if cached {
		state, ev.State = "CACHED", "CACHED"
	}
	p.emit(ev, "[%d/%d] %s: %s %.2fs\n", st.Index, p.total, StepLabel(st.Method, st.Description), state, d.Seconds())
}

// remote prints the line of a step pulled from a CacheFrom repository.
func (p *progress) remote(st PlannedStep, d time.Duration) {
	ev := p.stepEvent("done", st)
	ev.State, ev.Duration = "REMOTE", d
	p.emit(ev, "[%d/%d] %s: REMOTE %.2fs\n", st.Index, p.total, StepLabel(st.Method, st.Description), d.Seconds())
}

// stepWriter returns a writer that prefixes each line with the step's name,
// redacting secret values, or nil when there is no output.
func (p *progress) stepWriter(st PlannedStep, red *redactor) io.Writer {
	if p.w == nil && p.fn == nil {
		return nil
	}
	return &lineWriter{p: p, prefix: fmt.Sprintf("[%d/%d] %s | ", st.Index, p.total, st.Method), red: red, ev: p.stepEvent("output", st)}
}

// transferWriter returns the writer a base step's pull reports to: its
// output lines, in strata's words (transferLine), or nil when there is
// no output.
func (p *progress) transferWriter(st PlannedStep) io.Writer {
	w := p.stepWriter(st, nil)
	if w != nil {
		w.(*lineWriter).transfer = true
	}
	return w
}

// noteWriter returns a writer whose lines become notes prefixed with
// prefix (what an export or push reports, in strata's words:
// transferLine), or nil when there is no output.
func (p *progress) noteWriter(prefix string) io.Writer {
	if p.w == nil && p.fn == nil {
		return nil
	}
	return &lineWriter{p: p, prefix: prefix, ev: ProgressEvent{Kind: "note"}, note: true, transfer: true}
}

// transferLine says in strata's words what a line containers/image
// reports while copying an image means: "layer sha256:..." for each
// layer ("Copying blob ..."), "config sha256:..." for the config; its
// other lines (signatures, "Writing manifest to image destination") say
// nothing to a user and are dropped (false).
func transferLine(s string) (string, bool) {
	if rest, ok := strings.CutPrefix(s, "Copying blob "); ok {
		return "layer " + rest, true
	}
	if rest, ok := strings.CutPrefix(s, "Copying config "); ok {
		return "config " + rest, true
	}
	return "", false
}

// lineWriter turns what it is written into one progress event per line. It
// is safe for concurrent use: libraries write to it from several goroutines
// at once (containers/image prints a "Copying blob" line from each layer
// copy, Buildah a step's stdout and stderr), and each Write's complete lines
// are emitted whole, never interleaved with another Write's.
type lineWriter struct {
	p      *progress
	prefix string
	red    *redactor
	ev     ProgressEvent // the step's output event, without its line
	note   bool          // the event's Line holds the prefix too (notes)
	// transfer: the lines are containers/image's report (transferLine)
	transfer bool

	mu  sync.Mutex
	buf []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	return len(b), nil
}

// line emits one line of output (without its newline).
func (l *lineWriter) line(b []byte) {
	ev := l.ev
	s := string(b)
	if l.transfer {
		var ok bool
		if s, ok = transferLine(s); !ok {
			return
		}
	}
	ev.Line = l.red.apply(s)
	text := l.prefix + ev.Line
	if l.note {
		ev.Line = text
	}
	l.p.emit(ev, "%s\n", text)
}

// flushOutput emits what w holds after its last newline (`printf partial`
// as a step's last output) as a line of its own; w may be nil or any
// writer.
func flushOutput(w io.Writer) {
	l, ok := w.(*lineWriter)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(l.buf)
		l.buf = nil
	}
}

// StepLabel names a step as progress lines show it: a Dockerfile step by
// its instruction, whose description already holds it ("RUN echo hi",
// "[build] COPY src/ ./"), any other by its method and description
// ("RunCommands echo hi").
func StepLabel(method, description string) string {
	if description == "" {
		return method
	}
	if strings.Contains(description, method) {
		return description
	}
	return method + " " + description
}
