package builder

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestProgressEvents: every line WithOutput prints has its event, the text
// keeps its format, and output lines are redacted in both.
func TestProgressEvents(t *testing.T) {
	var buf bytes.Buffer
	var got []ProgressEvent
	var bo buildOptions
	WithProgressFunc(func(e ProgressEvent) { got = append(got, e) }).applyBuild(&bo)
	pr := newProgress(&buf, 3, bo.progressFn)

	st := PlannedStep{Index: 1, Method: "RunCommands", Description: "echo hi", why: "new step"}
	base := PlannedStep{Index: 0, Method: "FromArchive", Description: "rootfs.tar"}
	last := PlannedStep{Index: 2, Method: "Cmd", Description: "[/bin/sh]"}
	pr.printf("note: %s\n", "something")
	pr.done(base, true, 0)
	pr.start(st)
	w := pr.stepWriter(st, redactorFor([]Secret{SecretFromMap("s", map[string]string{"TOKEN": "hunter2"})}))
	fmt.Fprint(w, "line one\nthe token is hunter2\npartial")
	pr.done(st, false, 1500*time.Millisecond)
	pr.remote(last, 250*time.Millisecond)

	wantText := "note: something\n" +
		"[0/2] FromArchive rootfs.tar: CACHED 0.00s\n" +
		"[1/2] RunCommands echo hi: RUN (new step)\n" +
		"[1/2] RunCommands | line one\n" +
		"[1/2] RunCommands | the token is ***\n" +
		"[1/2] RunCommands echo hi: DONE 1.50s\n" +
		"[2/2] Cmd [/bin/sh]: REMOTE 0.25s\n"
	if buf.String() != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", buf.String(), wantText)
	}
	step := func(kind string, s PlannedStep) ProgressEvent {
		return ProgressEvent{Kind: kind, Index: s.Index, Total: 2, Method: s.Method, Description: s.Description}
	}
	e := []ProgressEvent{{Kind: "note", Line: "note: something"}}
	ev := step("done", base)
	ev.State = "CACHED"
	e = append(e, ev)
	ev = step("start", st)
	ev.State, ev.Reason = "RUN", "new step"
	e = append(e, ev)
	ev = step("output", st)
	ev.Line = "line one"
	e = append(e, ev)
	ev.Line = "the token is ***"
	e = append(e, ev)
	ev = step("done", st)
	ev.State, ev.Duration = "RUN", 1500*time.Millisecond
	e = append(e, ev)
	ev = step("done", last)
	ev.State, ev.Duration = "REMOTE", 250*time.Millisecond
	e = append(e, ev)
	if !reflect.DeepEqual(got, e) {
		t.Errorf("events:\n%+v\nwant:\n%+v", got, e)
	}
}

// TestProgressEventsWithoutOutput: events arrive without WithOutput, and
// without either nothing is done.
func TestProgressEventsWithoutOutput(t *testing.T) {
	var got []ProgressEvent
	pr := newProgress(nil, 2, func(e ProgressEvent) { got = append(got, e) })
	st := PlannedStep{Index: 1, Method: "RunCommands", Description: "x"}
	pr.start(st)
	w := pr.stepWriter(st, nil)
	if w == nil {
		t.Fatal("no output writer with a progress func")
	}
	fmt.Fprint(w, "out\n")
	pr.done(st, false, time.Second)
	if len(got) != 3 || got[1].Kind != "output" || got[1].Line != "out" {
		t.Errorf("events: %+v", got)
	}
	if newProgress(nil, 2, nil).stepWriter(st, nil) != nil {
		t.Error("a writer with nowhere to write")
	}
}

func TestStepLabel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ method, desc, want string }{
		{"RunCommands", "echo hi", "RunCommands echo hi"},
		{"RUN", "RUN echo hi", "RUN echo hi"},
		{"COPY", "[build] COPY src/ ./", "[build] COPY src/ ./"},
		{"Scratch", "", "Scratch"},
	} {
		if got := StepLabel(c.method, c.desc); got != c.want {
			t.Errorf("StepLabel(%q, %q) = %q, want %q", c.method, c.desc, got, c.want)
		}
	}
}
