package mount

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
)

// NormalizePatterns returns patterns in the form the Dockerfile reference
// gives them meaning: surrounding space trimmed, empty ones dropped, paths
// cleaned, and a leading "/" removed (patterns are relative to the source
// root). A leading "!" (re-include) is kept.
func NormalizePatterns(patterns []string) []string {
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = strings.TrimSpace(p[1:])
		}
		// Repeat until nothing changes, so that normalising is idempotent
		// (FuzzPatterns found "/ 0": stripping the "/" bared a space).
		for p != "" {
			q := filepath.ToSlash(filepath.Clean(strings.TrimSpace(p)))
			if len(q) > 1 && q[0] == '/' {
				q = q[1:]
			}
			if q == p {
				break
			}
			p = q
		}
		if neg {
			p = "!" + p
		}
		out = append(out, p)
	}
	return out
}

// Matcher decides which paths under a source root are ignored.
type Matcher struct {
	pm *patternmatcher.PatternMatcher
}

// NewMatcher compiles dockerignore-style patterns. It reports a malformed
// pattern with the pattern named.
func NewMatcher(patterns []string) (*Matcher, error) {
	norm := NormalizePatterns(patterns)
	for _, p := range norm {
		if p == "!" {
			return nil, fmt.Errorf("ignore pattern %q: a lone \"!\" excludes nothing; write \"!path\"", p)
		}
		if _, err := patternmatcher.New([]string{p}); err != nil {
			return nil, fmt.Errorf("ignore pattern %q: %w", p, err)
		}
		if _, err := filepath.Match(strings.TrimPrefix(p, "!"), ""); err != nil {
			return nil, fmt.Errorf("ignore pattern %q: %w", p, err)
		}
	}
	pm, err := patternmatcher.New(norm)
	if err != nil {
		return nil, fmt.Errorf("ignore patterns: %w", err)
	}
	return &Matcher{pm: pm}, nil
}

// Ignored reports whether the slash-separated relative path rel is ignored,
// taking the patterns that match its parent directories into account.
func (m *Matcher) Ignored(rel string) (bool, error) {
	if m == nil || len(m.pm.Patterns()) == 0 {
		return false, nil
	}
	return m.pm.MatchesOrParentMatches(rel)
}
