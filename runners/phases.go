package runners

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// PhasesEnv, when set to 1, makes every executed step print how long each
// of its phases took to stderr: "strata: phases step 3 (RUN): create 3ms
// copy 0ms mount 5ms run 135ms commit 40ms delete 4ms total 190ms". It is
// how PERFORMANCE.md's breakdown is measured; it prints step names and
// times only.
const PhasesEnv = "STRATA_PHASES"

// phaseTimer times the phases of one step when PhasesEnv is set; a nil
// timer does nothing.
type phaseTimer struct {
	name        string
	start, last time.Time
	parts       []string
}

func newPhaseTimer(name string) *phaseTimer {
	if os.Getenv(PhasesEnv) != "1" {
		return nil
	}
	now := time.Now()
	return &phaseTimer{name: name, start: now, last: now}
}

// mark ends the phase called phase (it began at the last mark).
func (p *phaseTimer) mark(phase string) {
	if p == nil {
		return
	}
	now := time.Now()
	p.parts = append(p.parts, fmt.Sprintf("%s %dms", phase, now.Sub(p.last).Milliseconds()))
	p.last = now
}

// note adds a remark to the step's line.
func (p *phaseTimer) note(s string) {
	if p == nil {
		return
	}
	p.parts = append(p.parts, "("+s+")")
}

// done prints the phases and the total.
func (p *phaseTimer) done() {
	if p == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "strata: phases %s: %s total %dms\n", p.name, strings.Join(p.parts, " "), time.Since(p.start).Milliseconds())
}
