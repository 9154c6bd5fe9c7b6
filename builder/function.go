package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// Function is a Go function registered with RegisterFunction, to be run
// inside a build container by RunFunction.
type Function struct {
	name    string
	version string
}

// Name returns the name the function was registered under.
func (f Function) Name() string { return f.name }

var functions struct {
	sync.Mutex
	m map[string]func(context.Context, []string) error
}

// RegisterFunction registers fn under name so that RunFunction can run it
// inside a build container. Register at package level (a var initialised
// with RegisterFunction, or an init function) so that the registration also
// happens in the copy of the program that runs inside the container, which
// dispatches to fn from InitReexec before main does anything else.
//
// version keys the cache: a RunFunction step is rebuilt when the function's
// name, its arguments or its version change. Give a version string and bump
// it when fn's behaviour changes; with "" the version is the Go build ID of
// the running executable, so every recompiled program that differs in any
// way rebuilds the step (correct, but it misses more often).
//
// Registering one name twice panics, as registering a flag twice does.
func RegisterFunction(name, version string, fn func(ctx context.Context, args []string) error) Function {
	if name == "" || strings.ContainsAny(name, "\x00=") || fn == nil {
		panic(fmt.Sprintf("strata: RegisterFunction(%q): need a name without NUL or '=' and a function", name))
	}
	functions.Lock()
	defer functions.Unlock()
	if functions.m == nil {
		functions.m = map[string]func(context.Context, []string) error{}
	}
	if _, dup := functions.m[name]; dup {
		panic(fmt.Sprintf("strata: function %q registered twice", name))
	}
	functions.m[name] = fn
	return Function{name: name, version: version}
}

func registered(name string) func(context.Context, []string) error {
	functions.Lock()
	defer functions.Unlock()
	return functions.m[name]
}

// RunFunction runs the registered function f inside the build container,
// with args, as Modal's run_function: the files it writes become the
// step's layer. strata mounts its own executable (and, for a dynamically
// linked one, the host's loader and shared libraries) into the container
// for the step only, so f runs on any base image, and nothing of the
// program lands in the layer. The step's key covers f's name, args and
// version (see RegisterFunction). WithEnv and WithSecrets set f's
// environment; the working directory and user are the image's.
func (i Image) RunFunction(f Function, args []string, opts ...RunOption) Image {
	s := &stepDef{method: "RunFunction", kind: layers.KindFunction, args: append([]string{f.name}, args...), fn: f}
	for _, o := range opts {
		o.applyRun(&s.opts)
	}
	s.env = s.opts.env
	s.mounts = s.opts.mounts
	var err error
	switch {
	case f.name == "":
		err = errors.New("function is not registered (use the value RegisterFunction returns)")
	case registered(f.name) == nil:
		err = fmt.Errorf("function %q is not registered in this program", f.name)
	}
	for _, a := range args {
		if err == nil && strings.ContainsRune(a, 0) {
			err = fmt.Errorf("argument %q contains a NUL byte", a)
		}
	}
	return i.push(s, err)
}

// runRegistered runs the function named by the environment, when the
// program was started for one inside a build container, and exits.
func runRegistered() {
	name := os.Getenv(runners.EnvFunction)
	if name == "" {
		return
	}
	fn := registered(name)
	if fn == nil {
		fmt.Fprintf(os.Stderr, "strata: function %q is not registered in this program\n", name)
		os.Exit(127)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := fn(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: function %s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}
