package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/layers"
)

// historyOf says what made a step's layer, for the image's history
// (created_by), in the form `docker history` and `podman history` users
// read: the Dockerfile instruction (`RUN |1 TAG=two /bin/sh -c make`,
// `COPY dir:<digest> in /app`, `ENV A=1`, `CMD ["serve"]`), the Dockerfile
// equivalent of a Go step, or `strata: RunFunction name args` for a Go
// step that has none. It is made from the lowered step (its key spec and
// description), so it says what the key says and names no cache image,
// secret value or host path: copied files appear by their digest, secrets
// not at all.
func historyOf(s *stepDef, spec layers.Spec, ps *PlannedStep) string {
	switch s.kind {
	case layers.KindRun:
		// Dockerfile RUNs, RunCommands and the package installers: what
		// runs, as a RUN line (commands that run one after another
		// joined by &&; a heredoc without its last newline).
		argv := spec.Args
		if spec.Options["exec"] != "true" {
			argv = append(slices.Clone(spec.Shell), strings.TrimRight(strings.Join(spec.Args, " && "), "\n"))
		}
		return "RUN " + buildArgsPrefix(spec.Env) + strings.Join(argv, " ")
	case layers.KindCopy:
		return copyHistory(s, spec)
	case layers.KindAdd:
		// AddLocalDir, AddLocalFile, AddLocalPythonSource: by digest,
		// never by host path.
		return "COPY " + spec.Options["source"] + ":" + inputsDigest(spec.Inputs) + " in " + spec.Args[0]
	case layers.KindEnv:
		return "ENV " + joinSorted(spec.Env)
	case layers.KindLabel:
		return "LABEL " + joinSorted(spec.Env)
	case layers.KindAnnotation:
		return "strata: manifest annotations " + joinSorted(spec.Env)
	case layers.KindWorkdir:
		return "WORKDIR " + spec.Args[0]
	case layers.KindUser:
		return "USER " + spec.Args[0]
	case layers.KindEntrypoint:
		return "ENTRYPOINT " + jsonArgs(spec.Args)
	case layers.KindCmd:
		return "CMD " + jsonArgs(spec.Args)
	case layers.KindConfig:
		switch name, vals := spec.Args[0], spec.Args[1:]; name {
		case "VOLUME":
			return "VOLUME " + jsonArgs(vals)
		case "ONBUILD-TRIGGERED":
			return "strata: the base image's ONBUILD triggers ran"
		case "SHELL":
			return "SHELL " + jsonArgs(vals)
		case "HEALTHCHECK":
			return healthHistory(vals[0])
		default:
			return name + " " + strings.Join(vals, " ")
		}
	}
	h := "strata: " + s.method
	if ps.Description != "" {
		h += " " + ps.Description
	}
	return h
}

// buildArgsPrefix is how Docker and BuildKit show the build arguments a
// RUN sees: "|2 A=1 B=2 " (sorted), or nothing.
func buildArgsPrefix(env map[string]string) string {
	if len(env) == 0 {
		return ""
	}
	return fmt.Sprintf("|%d %s ", len(env), joinSorted(env))
}

// copyHistory describes a COPY or ADD: from another stage or image by its
// name and paths, from the build context, a URL or a heredoc by the
// digest of what it copies ("dir:", "file:" or, for several sources,
// "multi:"), as Docker's builder writes it.
func copyHistory(s *stepDef, spec layers.Spec) string {
	c := s.copyDef
	instr := "COPY"
	if c.add {
		instr = "ADD"
	}
	if c.from != nil && len(c.sources) > 0 {
		srcs := make([]string, len(c.sources))
		for i, src := range c.sources {
			srcs[i] = path.Join("/", src)
		}
		return fmt.Sprintf("%s --from=%s %s %s", instr, c.fromDesc, strings.Join(srcs, " "), c.dest)
	}
	kind := "multi"
	if len(spec.Inputs) == 1 {
		kind = "file"
		if name, ok := strings.CutPrefix(spec.Inputs[0].Name, "src:"); ok && c.ctxDir != "" {
			if st, err := os.Stat(filepath.Join(c.ctxDir, filepath.FromSlash(name))); err == nil && st.IsDir() {
				kind = "dir"
			}
		}
	}
	return fmt.Sprintf("%s %s:%s in %s", instr, kind, inputsDigest(spec.Inputs), c.dest)
}

// inputsDigest is the hex digest of a step's inputs: the input's own for
// one, a digest over all of them (names and digests) for several.
func inputsDigest(in []layers.Input) string {
	if len(in) == 1 {
		_, h, ok := strings.Cut(in[0].Digest, ":")
		if ok {
			return h
		}
		return in[0].Digest
	}
	sum := sha256.New()
	for _, i := range in {
		fmt.Fprintf(sum, "%s %s\n", i.Name, i.Digest)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

func jsonArgs(args []string) string {
	j, _ := json.Marshal(args)
	return string(j)
}

// healthHistory writes a HEALTHCHECK (its JSON form in the key) as the
// instruction: "HEALTHCHECK --interval=5s CMD ["true"]", "HEALTHCHECK NONE".
func healthHistory(j string) string {
	var h dockerfile.Healthcheck
	if err := json.Unmarshal([]byte(j), &h); err != nil || len(h.Test) == 0 {
		return "HEALTHCHECK"
	}
	if h.Test[0] == "NONE" {
		return "HEALTHCHECK NONE"
	}
	var b strings.Builder
	b.WriteString("HEALTHCHECK")
	for _, f := range []struct {
		name string
		d    int64
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start-period", h.StartPeriod}, {"start-interval", h.StartInt}} {
		if f.d != 0 {
			fmt.Fprintf(&b, " --%s=%s", f.name, time.Duration(f.d))
		}
	}
	if h.Retries != 0 {
		fmt.Fprintf(&b, " --retries=%d", h.Retries)
	}
	if h.Test[0] == "CMD-SHELL" && len(h.Test) == 2 {
		return b.String() + " CMD " + h.Test[1]
	}
	return b.String() + " CMD " + jsonArgs(h.Test[1:])
}
