package dockerfile

import (
	"errors"
	"slices"
	"strconv"
)

// Pos is a place in a Dockerfile.
type Pos struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Column int // 1-based; 0 when unknown
}

func (p Pos) String() string {
	s := p.File
	if s == "" {
		s = "Dockerfile"
	}
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
		if p.Column > 0 {
			s += ":" + strconv.Itoa(p.Column)
		}
	}
	return s
}

// Error is a Dockerfile that cannot be built, with the place of the fault.
type Error struct {
	Pos Pos
	Err error
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// ErrUnsupported is wrapped by errors for Dockerfile features strata does
// not implement.
var ErrUnsupported = errors.New("not supported by strata")

// DefaultPath is the PATH a stage gets when its base image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BaseConfig is what a stage inherits from its base image.
type BaseConfig struct {
	Env        []string // KEY=value
	WorkingDir string
	User       string
	Shell      []string
	OnBuild    []string
}

// Options changes how a Dockerfile is read.
type Options struct {
	// Name is the file name used in errors (default "Dockerfile").
	Name string
	// BuildArgs are the --build-arg values.
	BuildArgs map[string]string
	// Target names the stage to build; default the last one.
	Target string
	// BaseConfig returns the config of a base image named in a FROM line
	// (never a stage name or "scratch"). Nil means every base has an
	// empty config.
	BaseConfig func(ref string) (*BaseConfig, error)
	// Contexts are names that FROM and COPY --from resolve to a caller's
	// image rather than a registry (BuildKit's named contexts).
	Contexts map[string]bool
	// Platform is "os/arch[/variant]"; default the host's.
	Platform string
}

// File is a parsed Dockerfile: the stages the target needs, in build order.
type File struct {
	// Stages holds every stage of the file, in order; only those with
	// Needed set are translated.
	Stages []*Stage
	// Target is the stage to build.
	Target *Stage
	// Notes are things a user should know that are not errors (an ignored
	// syntax line, unused build arguments).
	Notes []string
}

// Stage is one FROM section.
type Stage struct {
	Index int
	Name  string // lower case; "" when unnamed
	Pos   Pos
	// Exactly one of BaseStage, BaseContext and BaseImage is set;
	// BaseImage "scratch" is the empty image.
	BaseStage   *Stage
	BaseContext string
	BaseImage   string
	// Platform is the platform FROM --platform names when it is not the
	// target's (the build stage of a cross build, --platform=$BUILDPLATFORM);
	// "" builds the stage for the target.
	Platform string
	Needed   bool
	Ops      []Op

	// state after the last instruction, inherited by stages built on it
	onbuild []string // ONBUILD triggers the stage declares
	env     kvList
	workdir string
	user    string
	shell   []string
	args    map[string]*string // ARGs declared in the stage
	// argOver: ARGs given a value after an ENV of the same name. As in
	// BuildKit, whichever came last is what later instructions and RUN
	// see (the image's Env keeps the ENV value).
	argOver map[string]bool
}

// Ref names the stage as errors and descriptions show it.
func (s *Stage) Ref() string {
	if s.Name != "" {
		return s.Name
	}
	return "stage " + strconv.Itoa(s.Index)
}

// KV is one name and value, in the order written.
type KV struct{ Key, Value string }

// Op is one instruction that changes the image.
type Op struct {
	Pos Pos
	// Instruction is the upper-case instruction name ("RUN", "COPY", ...).
	Instruction string
	// Source is the instruction as written, for progress lines.
	Source string
	// Args: RUN (shell form: one script, run with Shell; exec form: argv),
	// CMD and ENTRYPOINT (argv, shell form already wrapped in the shell),
	// SHELL (argv), WORKDIR, USER and STOPSIGNAL (one value, WORKDIR
	// absolute), EXPOSE ("port/proto"), VOLUME, ONBUILD (the trigger).
	Args []string
	// KV: ENV and LABEL pairs.
	KV []KV
	// RUN only.
	Exec     bool     // exec (JSON) form: no shell
	Shell    []string // the shell in force (shell form)
	Env      []KV     // ARG values in scope: the step's own environment
	ProxyEnv []KV     // predefined proxy args given as build args: not keyed
	Mounts   []Mount
	Network  string // "" (default), "none" or "host"
	Devices  []string
	// COPY and ADD.
	Copy *Copy
	// HEALTHCHECK.
	Health *Healthcheck
	// ResetCmd is set on an ENTRYPOINT when no CMD came before it in the
	// stage: the base's CMD is cleared, as Docker does.
	ResetCmd bool
}

// Copy is a COPY or ADD.
type Copy struct {
	Add bool
	// Sources are paths relative to the source root (the context, or the
	// stage or image of From), slash-separated, cleaned, possibly globs;
	// for ADD also URLs.
	Sources []string
	// Inline are heredoc files (COPY <<EOF /dest).
	Inline []Inline
	// Dest is absolute; a trailing "/" means a directory.
	Dest string
	// FromStage or FromContext or FromImage names where Sources are read:
	// none set means the build context.
	FromStage   *Stage
	FromContext string
	FromImage   string
	Chown       string
	Chmod       string
	Link        bool
	Excludes    []string
	Parents     bool
	Checksum    string
	Unpack      *bool
	KeepGitDir  bool
}

// Inline is a heredoc source.
type Inline struct{ Name, Data string }

// Mount is one RUN --mount.
type Mount struct {
	Type     string // bind, cache, tmpfs, secret, ssh
	Target   string
	Source   string
	ReadOnly bool
	// cache
	ID      string
	Sharing string // shared, private, locked
	// bind or cache from a stage or image
	FromStage   *Stage
	FromContext string
	FromImage   string
	// secret
	Required bool
	Env      string
	Mode     *uint64
	UID, GID *uint64
}

// Healthcheck is a HEALTHCHECK instruction; Test nil-free: ["NONE"] disables.
type Healthcheck struct {
	Test        []string
	Interval    int64 // nanoseconds, 0 = inherit
	Timeout     int64
	StartPeriod int64
	StartInt    int64
	Retries     int
}

// ProxyArgs are the build arguments every Dockerfile may use without ARG.
var ProxyArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
	"FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// kvList is an ordered environment.
type kvList []KV

func (l *kvList) set(k, v string) {
	for i := range *l {
		if (*l)[i].Key == k {
			(*l)[i].Value = v
			return
		}
	}
	*l = append(*l, KV{k, v})
}

func (l kvList) get(k string) (string, bool) {
	for _, kv := range l {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return "", false
}

func (l kvList) has(k string) bool { _, ok := l.get(k); return ok }

// Env returns the stage's environment after its last instruction.
func (s *Stage) Env() []KV { return slices.Clone(s.env) }
