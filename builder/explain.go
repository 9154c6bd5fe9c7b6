package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// Reasons a step runs that are not a change of its inputs.
const (
	ReasonNoHistory = "no earlier build of this image in this cache"
	ReasonForced    = "forced (ForceBuild)"
	ReasonForcedEnv = "forced (" + EnvForceBuild + ")"
	ReasonForcedAll = "forced (ForceBuildAll)"
	ReasonGone      = "same inputs as an earlier build, but its cache entry is gone (pruned or deleted)"
)

// StepExplanation says whether one step of a plan would come from the
// cache, and if not, why it would run.
type StepExplanation struct {
	Index       int
	Method      string
	Description string
	Key         layers.Key
	// Cached is true when the step's cache entry exists (and no step
	// before it runs).
	Cached bool
	// Reason says why the step runs, one clause per changed input,
	// joined by "; " (see Session.Explain).
	Reason string
}

// Explain is a dry run: it plans img and says, for each step, whether it
// would come from the local cache and, when not, why it would run,
// comparing the step with the recipe recorded for the nearest earlier
// build of the same position: the last build tagged with the same
// WithTag name, else the newest entry recorded on the same parent. A
// reason names each changed input: "argument changed [...] -> [...]",
// "src/main.py changed (sha256:ab12… -> sha256:cd34…), 1 file added
// (src/new.py)", "env FOO changed", "base image changed", "parent changed
// (step 2 rebuilt)", "forced (ForceBuild)", or "no earlier build of this
// image in this cache". Secret values are never keyed, so changing one
// changes nothing. Build reports the same reasons in StepResult.Reason
// and in its progress lines. Remote caches are not consulted.
func (s *Session) Explain(ctx context.Context, img Image, opts ...BuildOption) ([]StepExplanation, error) {
	bo, err := planOptions("Explain", opts, "WithTag", "Format", "Platforms")
	if err != nil {
		return nil, err
	}
	p, err := s.planFormat(ctx, img, bo.format, bo.platform)
	if err != nil {
		return nil, err
	}
	tag := ""
	if len(bo.tags) > 0 {
		if tag, err = runners.NormalizeTag(bo.tags[0]); err != nil {
			return nil, err
		}
	}
	var out []StepExplanation
	ex := s.newExplainer(p, tag)
	for i, st := range p.Steps {
		e := StepExplanation{Index: st.Index, Method: st.Method, Description: st.Description, Key: st.Key}
		if st.base != nil && st.base.Kind == runners.BaseScratch {
			e.Cached = true
		} else if why := ex.forced(i); why != "" {
			e.Reason = why
		} else if _, err := s.cache.Get(ctx, st.Key); err == nil && ex.lastRan < 0 {
			e.Cached = true
		} else if err != nil && !errors.Is(err, layers.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", st.Name(), err)
		} else {
			e.Reason = ex.why(i)
		}
		if !e.Cached {
			ex.ran(i)
		}
		out = append(out, e)
	}
	return out, nil
}

// explainer works out miss reasons along one plan.
type explainer struct {
	s       *Session
	p       *Plan
	history []layers.Key // the steps of the last build with the same name
	lastRan int          // index in p.Steps of the last step that ran
	forceBy int          // index of the first forced step, or -1
	// fresh: the first step that ran had no earlier build; the steps
	// after it have none either (not "parent changed").
	fresh bool
}

func (s *Session) newExplainer(p *Plan, tag string) *explainer {
	ex := &explainer{s: s, p: p, lastRan: -1, forceBy: -1}
	if tag != "" && s.recipes != nil {
		ex.history = s.recipes.Image(tag)
	}
	return ex
}

func (ex *explainer) ran(i int) { ex.lastRan = i }

// forced returns the reason step i is forced, or "".
func (ex *explainer) forced(i int) string {
	st := ex.p.Steps[i]
	if ex.forceBy < 0 && st.Force {
		ex.forceBy = i
	}
	switch {
	case ex.forceBy < 0:
		return ""
	case ex.forceBy == i && ex.s.force != "":
		return ex.s.force
	case ex.forceBy == i:
		return ReasonForced
	}
	return fmt.Sprintf("forced (step %d forced)", ex.p.Steps[ex.forceBy].Index)
}

func (ex *explainer) parentKey(i int) layers.Key {
	if i == 0 {
		return ""
	}
	return ex.p.Steps[i-1].Key
}

func (ex *explainer) recipe(i int) layers.Recipe {
	st := ex.p.Steps[i]
	return layers.Recipe{Key: st.Key, Parent: ex.parentKey(i), Index: st.Index, Method: st.Method,
		Description: st.Description, Spec: st.Spec, Trees: st.trees}
}

// why says why step i (a miss) runs.
func (ex *explainer) why(i int) string {
	if ex.lastRan >= 0 {
		if ex.fresh {
			return ReasonNoHistory
		}
		return fmt.Sprintf("parent changed (step %d rebuilt)", ex.p.Steps[ex.lastRan].Index)
	}
	r := ex.whyFirst(i)
	ex.fresh = r == ReasonNoHistory
	return r
}

// whyFirst says why step i, the first of the plan that runs, runs.
func (ex *explainer) whyFirst(i int) string {
	rs := ex.s.recipes
	if rs == nil {
		return ReasonNoHistory
	}
	cur := ex.recipe(i)
	old := ex.nearest(i, cur)
	if old == nil {
		return ReasonNoHistory
	}
	lines := layers.Diff(*old, cur)
	if old.Parent != cur.Parent && i > 0 {
		// The previous build of this image had another parent: say what
		// changed before this step as well.
		lines = append([]string{"parent changed"}, lines...)
	}
	if len(lines) == 0 {
		return ReasonGone
	}
	return strings.Join(lines, "; ")
}

// nearest finds the recipe of the same position in an earlier build: the
// same step of the last build with the same name, else the newest recipe
// on the same parent with the same method, else (for a base) the newest
// base of the same reference.
func (ex *explainer) nearest(i int, cur layers.Recipe) *layers.Recipe {
	rs := ex.s.recipes
	if i < len(ex.history) {
		if r, err := rs.Get(ex.history[i]); err == nil && r.Method == cur.Method {
			return r
		}
	}
	kids, _ := rs.Children(cur.Parent)
	var fallback *layers.Recipe
	for k := range kids {
		r := &kids[k]
		if r.Key == cur.Key || r.Method != cur.Method {
			continue
		}
		if i == 0 && baseRefOf(r.Description) != baseRefOf(cur.Description) {
			continue
		}
		if r.Index == cur.Index && r.Description == cur.Description {
			return r
		}
		if fallback == nil {
			fallback = r
		}
	}
	return fallback
}

func baseRefOf(desc string) string {
	ref, _, _ := strings.Cut(desc, "@")
	return ref
}

// record keeps the recipe of a step that is now in the cache.
func (ex *explainer) record(i int) {
	if ex.s.recipes == nil {
		return
	}
	_ = ex.s.recipes.Put(ex.recipe(i)) // a recipe only explains; losing one loses no data
}
