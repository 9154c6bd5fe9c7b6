package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/stratabuild/strata/builder"
)

// renderer turns progress events into what --progress asks for.
type renderer interface {
	event(builder.ProgressEvent)
	// fail reports the build's error (json: as an event; others print it).
	fail(err error)
}

// label is a step's readable name: "RUN echo hi" for a Dockerfile step
// (whose description holds the instruction), "RunCommands echo hi" else.
func label(ev builder.ProgressEvent) string {
	return builder.StepLabel(ev.Method, ev.Description)
}

func doneLine(ev builder.ProgressEvent) string {
	return fmt.Sprintf("#%d %s %s %.2fs", ev.Index, label(ev), ev.State, ev.Duration.Seconds())
}

// plain: one line per step with its state, output lines indented under
// the line that announced a running step.
type plain struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *plain) event(ev builder.ProgressEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Kind {
	case "start":
		if ev.Reason != "" {
			fmt.Fprintf(p.w, "#%d %s (%s)\n", ev.Index, label(ev), ev.Reason)
		} else {
			fmt.Fprintf(p.w, "#%d %s\n", ev.Index, label(ev))
		}
	case "output":
		fmt.Fprintf(p.w, "    | %s\n", ev.Line)
	case "done":
		fmt.Fprintln(p.w, doneLine(ev))
	case "note":
		fmt.Fprintln(p.w, ev.Line)
	}
}

func (p *plain) fail(err error) { fmt.Fprintf(p.w, "strata: %v\n", err) }

// quiet (-q, --progress=quiet): nothing while the build runs, the error
// when it fails.
type quietRenderer struct{ w io.Writer }

func (quietRenderer) event(builder.ProgressEvent) {}
func (q quietRenderer) fail(err error)            { fmt.Fprintf(q.w, "strata: %v\n", err) }

// tty is plain, but a running step shows only its last few output lines,
// redrawn in place, and they are collapsed into the step's line when it
// ends.
type tty struct {
	mu     sync.Mutex
	w      io.Writer
	width  int
	cur    *builder.ProgressEvent // the running step
	window []string
	drawn  int // lines of the live region on screen
}

const ttyWindow = 6

func (t *tty) clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); t.width > 4 && len(r) > t.width-1 {
		return string(r[:t.width-2]) + "…"
	}
	return s
}

func (t *tty) erase() {
	for ; t.drawn > 0; t.drawn-- {
		fmt.Fprint(t.w, "\x1b[1A\x1b[2K")
	}
}

func (t *tty) draw() {
	if t.cur == nil {
		return
	}
	fmt.Fprintln(t.w, t.clip(fmt.Sprintf("#%d %s ...", t.cur.Index, label(*t.cur))))
	t.drawn = 1
	for _, l := range t.window {
		fmt.Fprintln(t.w, "\x1b[2m"+t.clip("    | "+l)+"\x1b[0m")
		t.drawn++
	}
}

func (t *tty) event(ev builder.ProgressEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.erase()
	switch ev.Kind {
	case "start":
		e := ev
		t.cur, t.window = &e, nil
	case "output":
		t.window = append(t.window, ev.Line)
		if len(t.window) > ttyWindow {
			t.window = t.window[len(t.window)-ttyWindow:]
		}
	case "done":
		fmt.Fprintln(t.w, t.clip(doneLine(ev)))
		if t.cur != nil && t.cur.Index == ev.Index && t.cur.Method == ev.Method {
			t.cur, t.window = nil, nil
		}
	case "note":
		fmt.Fprintln(t.w, ev.Line)
	}
	t.draw()
}

func (t *tty) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.erase()
	// Show what the failed step printed last, then the error.
	if t.cur != nil {
		fmt.Fprintf(t.w, "#%d %s FAILED\n", t.cur.Index, label(*t.cur))
		t.cur, t.window = nil, nil
	}
	fmt.Fprintf(t.w, "strata: %v\n", err)
}

// jsonLines writes one JSON object per event per line.
type jsonLines struct {
	mu  sync.Mutex
	enc *json.Encoder
}

type jsonEvent struct {
	Kind        string  `json:"kind"`
	Index       int     `json:"index"`
	Total       int     `json:"total,omitempty"`
	Method      string  `json:"method,omitempty"`
	Description string  `json:"description,omitempty"`
	State       string  `json:"state,omitempty"`
	Reason      string  `json:"reason,omitempty"`
	DurationS   float64 `json:"duration_s,omitempty"`
	Line        string  `json:"line,omitempty"`
	Error       string  `json:"error,omitempty"`
	ImageID     string  `json:"image_id,omitempty"`
}

func (j *jsonLines) write(e jsonEvent) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(e)
}

func (j *jsonLines) event(ev builder.ProgressEvent) {
	j.write(jsonEvent{Kind: ev.Kind, Index: ev.Index, Total: ev.Total, Method: ev.Method, Description: ev.Description,
		State: ev.State, Reason: ev.Reason, DurationS: ev.Duration.Seconds(), Line: ev.Line})
}

func (j *jsonLines) fail(err error) { j.write(jsonEvent{Kind: "error", Error: err.Error()}) }
