package layers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// RecipeVersion is mixed into every key. Bump it whenever the way a step is
// executed changes so that old cache entries are no longer hit.
//
// 2: each step's history entry says what made it (RUN, COPY dir:<digest>
// in ..., ENV ...) instead of the shell and the cache name of its parent;
// the Go Workdir step creates its directory, as WORKDIR does.
const RecipeVersion = 2

// Key identifies one step's result: "sha256:" followed by 64 hex digits.
type Key string

// Hex returns the key's 64 hex digits.
func (k Key) Hex() string { return strings.TrimPrefix(string(k), "sha256:") }

// Short returns the first 12 hex digits, for logs.
func (k Key) Short() string {
	h := k.Hex()
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Valid reports whether k has the form "sha256:<64 lowercase hex>".
func (k Key) Valid() bool {
	h, ok := strings.CutPrefix(string(k), "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// Kind names a step type in a Spec.
type Kind string

// Step kinds.
const (
	KindBase       Kind = "base"
	KindRun        Kind = "run"
	KindEnv        Kind = "env"
	KindWorkdir    Kind = "workdir"
	KindEntrypoint Kind = "entrypoint"
	KindCmd        Kind = "cmd"
	KindUser       Kind = "user"
	KindLabel      Kind = "label"
	KindAdd        Kind = "add"
	KindFunction   Kind = "function"
	// KindCopy is a Dockerfile COPY or ADD: several sources (from the
	// context, a URL, another stage or an image), owner and mode.
	KindCopy Kind = "copy"
	// KindConfig is an image config change with no Go method of its own:
	// Args[0] names the Dockerfile instruction (EXPOSE, VOLUME,
	// STOPSIGNAL).
	KindConfig Kind = "config"
	// KindAnnotation sets annotations (Env) on the image's manifest.
	KindAnnotation Kind = "annotation"
)

// Input is one local input of a step, by content.
type Input struct {
	// Name says what the input is for, e.g. "src" or "requirements".
	Name string `json:"name"`
	// Digest is the content digest computed by package mount.
	Digest string `json:"digest"`
}

// Spec is the canonical description of one step: everything that can change
// the step's result and nothing that cannot.
type Spec struct {
	Kind Kind `json:"kind"`
	// Args are the step's arguments: commands for run, argv for entrypoint
	// and cmd, the path for workdir, the destination for add, the base's
	// content digest for base.
	Args []string `json:"args,omitempty"`
	// Env holds variables: the step-only environment for run, the
	// variables set for env, the labels for label.
	Env map[string]string `json:"env,omitempty"`
	// Shell is the shell that run commands are passed to.
	Shell []string `json:"shell,omitempty"`
	// Ignore holds the ignore patterns of an add step.
	Ignore []string `json:"ignore,omitempty"`
	// Inputs are local inputs by content digest.
	Inputs []Input `json:"inputs,omitempty"`
	// Secrets are the names (never the values) of secrets a step sees.
	Secrets []string `json:"secrets,omitempty"`
	// Options holds other result-changing options, by name.
	Options map[string]string `json:"options,omitempty"`
}

type keyDoc struct {
	V      int  `json:"v"`
	Parent Key  `json:"parent,omitempty"`
	Spec   Spec `json:"spec"`
}

// Encode returns the canonical bytes that the key of (parent, s) digests.
// Every string must be valid UTF-8: JSON would replace invalid bytes, and
// two different steps would then share a key.
func Encode(parent Key, s Spec) ([]byte, error) {
	if bad, ok := invalidUTF8(parent, s); ok {
		return nil, fmt.Errorf("encoding cache key: %q is not valid UTF-8 (arguments, variables and options must be)", bad)
	}
	b, err := json.Marshal(keyDoc{V: RecipeVersion, Parent: parent, Spec: s})
	if err != nil {
		return nil, fmt.Errorf("encoding cache key: %w", err)
	}
	return b, nil
}

func invalidUTF8(parent Key, s Spec) (string, bool) {
	strs := []string{string(parent), string(s.Kind)}
	strs = append(strs, s.Args...)
	strs = append(strs, s.Shell...)
	strs = append(strs, s.Ignore...)
	strs = append(strs, s.Secrets...)
	for k, v := range s.Env {
		strs = append(strs, k, v)
	}
	for k, v := range s.Options {
		strs = append(strs, k, v)
	}
	for _, in := range s.Inputs {
		strs = append(strs, in.Name, in.Digest)
	}
	for _, x := range strs {
		if !utf8.ValidString(x) {
			return x, true
		}
	}
	return "", false
}

// Compute returns the key of step s on top of parent ("" for a base).
func Compute(parent Key, s Spec) (Key, error) {
	b, err := Encode(parent, s)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return Key("sha256:" + hex.EncodeToString(sum[:])), nil
}
