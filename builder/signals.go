package builder

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// WithoutSignalHandling leaves SIGINT, SIGTERM and SIGHUP to the program:
// it cancels the context it gives Build itself (signal.NotifyContext), and
// Build neither watches these signals, nor exits on them, nor resets them.
// A program with handlers of its own for them must pass it: by default
// Build owns them while it runs and gives them their default action back
// when it returns (see "Signals" in the package doc).
func WithoutSignalHandling() BuildOption {
	return named("WithoutSignalHandling", func(o *buildOptions) { o.ownSignals = true })
}

// stopSignals are the signals a supervisor or a terminal sends to stop a
// job.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// signalWatch is the one piece of process-wide state in builder, as
// signals are the process's: the builds that watch signals now, and the
// first stop signal received while they ran.
var signalWatch struct {
	mu     sync.Mutex
	builds map[*int]context.CancelFunc
	ch     chan os.Signal
	got    os.Signal
	at     time.Time
}

// watchSignals returns ctx, cancelled by the first stop signal, and the
// func to call when the build is over. While any build watches, the stop
// signals are caught. The first one cancels every
// watching build; when the last of them is over, the process exits with
// the status a shell reports for that signal (128 + its number). A second
// signal, a second or more after the first, exits at once (the build guard
// of each Runtime then cleans up; runners/guard.go); copies that arrive
// together (Ctrl-C reaches the whole process group, and the user-namespace
// parent forwards its own copy) count once. The process exits rather than
// dying by the signal because containers/storage's user-namespace parent
// reports a child that a signal ended as exit status 1.
//
// After every build the stop signals get their default action back
// (signal.Reset): Buildah leaves a handler of its own registered after a
// RUN step that failed, which would otherwise swallow them for the rest of
// the process.
func watchSignals(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	w := &signalWatch
	w.mu.Lock()
	defer w.mu.Unlock()
	id := new(int)
	if w.builds == nil {
		w.builds = map[*int]context.CancelFunc{}
	}
	w.builds[id] = cancel
	if w.got != nil {
		cancel()
	}
	if w.ch == nil {
		ch := make(chan os.Signal, 4)
		w.ch = ch
		signal.Notify(ch, stopSignals...)
		go waitSignals(ch)
	}
	return ctx, func() {
		cancel()
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.builds, id)
		if len(w.builds) > 0 {
			return
		}
		if w.got != nil {
			exitFor(w.got)
		}
		if w.ch != nil {
			signal.Stop(w.ch)
			close(w.ch)
			w.ch = nil
		}
		signal.Reset(stopSignals...)
	}
}

func waitSignals(ch chan os.Signal) {
	for sig := range ch {
		w := &signalWatch
		w.mu.Lock()
		switch {
		case w.ch != ch:
			// The last build ended while this signal was on its way: it
			// was meant for the program, which has no handler for it.
			exitFor(sig)
		case w.got == nil:
			w.got, w.at = sig, time.Now()
			for _, cancel := range w.builds {
				cancel()
			}
		case time.Since(w.at) >= time.Second:
			exitFor(w.got)
		}
		w.mu.Unlock()
	}
}

// exitFor ends the process with the status a shell reports for a process
// that sig ended.
func exitFor(sig os.Signal) {
	n := 1
	if s, ok := sig.(syscall.Signal); ok {
		n = 128 + int(s)
	}
	os.Exit(n)
}
