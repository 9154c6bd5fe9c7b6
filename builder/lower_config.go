package builder

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stratabuild/strata/dockerfile"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// lowerConfig lowers the steps that change only the image's config: Env,
// Workdir, User, labels, Entrypoint, Cmd and the Dockerfile's other
// config instructions (KindConfig: EXPOSE, VOLUME, STOPSIGNAL,
// MAINTAINER, ONBUILD and the spent ONBUILD triggers).
func lowerConfig(s *stepDef, spec *layers.Spec, ps *PlannedStep) error {
	cfg := &ps.run.Config
	switch s.kind {
	case layers.KindEnv:
		spec.Env = s.env
		cfg.Env = s.env
		ps.Description = joinSorted(s.env)
	case layers.KindLabel:
		spec.Env = s.env
		cfg.Labels = s.env
		ps.Description = joinSorted(s.env)
	case layers.KindAnnotation:
		spec.Env = s.env
		cfg.Annotations = s.env
		ps.Description = joinSorted(s.env)
	case layers.KindWorkdir:
		spec.Args = s.args
		cfg.Workdir = &s.args[0]
		ps.Description = s.args[0]
		if s.mkdir {
			spec.Options = map[string]string{"mkdir": "true"}
			ps.run.Mkdirs = []string{s.args[0]}
		}
	case layers.KindUser:
		spec.Args = s.args
		cfg.User = &s.args[0]
		ps.Description = s.args[0]
	case layers.KindEntrypoint:
		spec.Args = s.args
		cfg.Entrypoint = &s.args
		ps.Description = fmt.Sprintf("%q", s.args)
		if s.resetCmd {
			spec.Options = map[string]string{"reset_cmd": "true"}
			cfg.Cmd = &[]string{}
		}
	case layers.KindCmd:
		spec.Args = s.args
		cfg.Cmd = &s.args
		ps.Description = fmt.Sprintf("%q", s.args)
	case layers.KindConfig:
		spec.Args = s.args
		vals := s.args[1:]
		switch s.args[0] {
		case "EXPOSE":
			cfg.Ports = vals
		case "VOLUME":
			cfg.Volumes = vals
		case "STOPSIGNAL":
			cfg.StopSignal = &vals[0]
		case "MAINTAINER":
			cfg.Author = &vals[0]
		case "ONBUILD":
			cfg.OnBuildAdd = vals
		case "ONBUILD-TRIGGERED":
			cfg.OnBuildClear = true
		case "SHELL":
			cfg.Shell = &vals
		case "HEALTHCHECK":
			var h dockerfile.Healthcheck
			if err := json.Unmarshal([]byte(vals[0]), &h); err != nil {
				return fmt.Errorf("HEALTHCHECK: %w", err)
			}
			cfg.Healthcheck = &runners.Healthcheck{Test: h.Test, Interval: time.Duration(h.Interval), Timeout: time.Duration(h.Timeout),
				StartPeriod: time.Duration(h.StartPeriod), StartInterval: time.Duration(h.StartInt), Retries: h.Retries}
		default:
			return fmt.Errorf("unknown config change %s", s.args[0])
		}
		ps.Description = strings.Join(s.args, " ")
	default:
		return fmt.Errorf("step kind %q is not a config change", s.kind)
	}
	return nil
}

// joinSorted lists m as k=v pairs, sorted by key.
func joinSorted(m map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, k+"="+m[k])
	}
	return strings.Join(kv, " ")
}
