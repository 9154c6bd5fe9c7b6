package gpu

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidRequest is wrapped by ParseRequest's errors.
var ErrInvalidRequest = errors.New("invalid GPU request")

// ErrUnsatisfiable is wrapped by the errors of Select and Allocator.Acquire
// when the host does not have the GPUs a request asks for.
var ErrUnsatisfiable = errors.New("GPU request cannot be met on this host")

// Request is a parsed GPU request: acceptable choices in order of preference.
// The zero Request asks for no GPU.
type Request struct {
	Choices []Choice
}

// Choice is one acceptable kind of GPU with a count.
type Choice struct {
	// Any: any GPU model. All: every GPU of the host (Count is 0).
	Any, All bool
	// Model is the canonical model, upper case, words joined by "-", e.g.
	// "H100", "A10G", "RTX-PRO-6000"; empty for Any and All.
	Model string
	// MemoryGiB, when not 0, requires about this much GPU memory
	// (e.g. 80 for "A100-80GB"), within 10%.
	MemoryGiB int
	// Count is how many GPUs (at least 1; 0 for All).
	Count int
	// Exact records Modal's trailing "!" ("this type, never upgraded").
	// Selection never upgrades nor substitutes anyway, so it changes nothing
	// and String leaves it out.
	Exact bool
}

var (
	countRe  = regexp.MustCompile(`^[0-9]+$`)
	wordRe   = regexp.MustCompile(`^[A-Z0-9.]+$`)
	memoryRe = regexp.MustCompile(`^([0-9]+)GB$`)
)

// ParseRequest parses GPU request strings. Each string is one choice or a
// comma-separated list of choices; several strings (or list entries) are
// acceptable alternatives in order of preference, as Modal's gpu=[...] list.
//
// A choice is "any", "all" or a model ("H100", "a100-80gb", "RTX-PRO-6000"),
// optionally followed by "!" and by ":N" for N GPUs (default 1): "H100:2",
// "H100!:8". A trailing "-<N>GB" word asks for a memory size. Matching is
// case-insensitive. "all" cannot be combined with other choices or a count.
func ParseRequest(specs ...string) (Request, error) {
	var items []string
	for _, s := range specs {
		items = append(items, strings.Split(s, ",")...)
	}
	if len(items) == 0 {
		return Request{}, fmt.Errorf("gpu: %w: empty", ErrInvalidRequest)
	}
	var r Request
	for _, item := range items {
		c, err := parseChoice(item)
		if err != nil {
			return Request{}, fmt.Errorf("gpu: %w %q: %s", ErrInvalidRequest, strings.Join(specs, ","), err)
		}
		r.Choices = append(r.Choices, c)
	}
	if len(r.Choices) > 1 && slices.ContainsFunc(r.Choices, func(c Choice) bool { return c.All }) {
		return Request{}, fmt.Errorf("gpu: %w %q: \"all\" cannot be one of several choices", ErrInvalidRequest, strings.Join(specs, ","))
	}
	return r, nil
}

func parseChoice(s string) (Choice, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Choice{}, errors.New("empty choice")
	}
	c := Choice{Count: 1}
	model, count, hasCount := strings.Cut(s, ":")
	if hasCount {
		count = strings.TrimSpace(count)
		// Accept "H100:2!" as well as Modal's "H100!:2".
		if before, ok := strings.CutSuffix(count, "!"); ok {
			count, c.Exact = before, true
		}
		if !countRe.MatchString(count) {
			return Choice{}, fmt.Errorf("count %q is not a number", count)
		}
		n, err := strconv.Atoi(count)
		if err != nil {
			return Choice{}, fmt.Errorf("count %q is out of range", count)
		}
		if n < 1 {
			return Choice{}, fmt.Errorf("count %q must be at least 1", count)
		}
		c.Count = n
	}
	model = strings.TrimSpace(model)
	if before, ok := strings.CutSuffix(model, "!"); ok {
		model, c.Exact = strings.TrimSpace(before), true
	}
	if strings.HasSuffix(model, "+") {
		return Choice{}, fmt.Errorf("%q: upgrades (\"+\") are not supported; list the acceptable types instead, e.g. [\"B200\", \"B300\"]", model)
	}
	switch strings.ToLower(model) {
	case "":
		return Choice{}, errors.New("missing GPU type")
	case "any":
		if c.Exact {
			return Choice{}, errors.New(`"any!" makes no sense`)
		}
		c.Any = true
		return c, nil
	case "all":
		if hasCount || c.Exact {
			return Choice{}, errors.New(`"all" takes no count and no "!"`)
		}
		c.All, c.Count = true, 0
		return c, nil
	}
	words := modelWords(model)
	if len(words) == 0 {
		// Found by FuzzParseRequest: "-" has no words at all.
		return Choice{}, fmt.Errorf("GPU type %q names no model", model)
	}
	for _, w := range words {
		if !wordRe.MatchString(w) {
			return Choice{}, fmt.Errorf("GPU type %q: unexpected character in %q", model, w)
		}
	}
	if m := memoryRe.FindStringSubmatch(words[len(words)-1]); m != nil {
		gib, err := strconv.Atoi(m[1])
		if err != nil || gib < 1 {
			return Choice{}, fmt.Errorf("GPU type %q: bad memory size", model)
		}
		c.MemoryGiB = gib
		words = words[:len(words)-1]
		if len(words) == 0 {
			return Choice{}, fmt.Errorf("GPU type %q: a memory size needs a model, e.g. \"A100-%s\"", model, m[0])
		}
	}
	c.Model = strings.Join(words, "-")
	return c, nil
}

// modelWords splits a model or an NVML name into upper-case words.
func modelWords(s string) []string {
	return strings.FieldsFunc(strings.ToUpper(s), func(r rune) bool {
		return r == ' ' || r == '-' || r == '_' || r == '\t'
	})
}

// String is the choice's canonical form, e.g. "A100-80GB:2".
func (c Choice) String() string {
	var s string
	switch {
	case c.All:
		return "all"
	case c.Any:
		s = "any"
	default:
		s = c.Model
		if c.MemoryGiB != 0 {
			s += fmt.Sprintf("-%dGB", c.MemoryGiB)
		}
	}
	if c.Count > 1 {
		s += ":" + strconv.Itoa(c.Count)
	}
	return s
}

// String is the canonical form of the request: choices in canonical form,
// joined by ",". It is what a step's cache key records (never the host's
// GPU UUIDs), so the same definition hits the cache on another GPU host.
// The zero Request gives "".
func (r Request) String() string {
	parts := make([]string, len(r.Choices))
	for i, c := range r.Choices {
		parts[i] = c.String()
	}
	return strings.Join(parts, ",")
}

// IsZero reports whether the request asks for no GPU.
func (r Request) IsZero() bool { return len(r.Choices) == 0 }

// aliases: request words that also match other NVML words (Modal's "A10"
// is the A10G of AWS).
var aliases = map[string][]string{"A10": {"A10G"}}

// Matches reports whether the device is acceptable for the choice (ignoring
// the count). MIG-enabled GPUs never match.
func (c Choice) Matches(d Device) bool {
	if d.MIGEnabled {
		return false
	}
	if c.Any || c.All {
		return true
	}
	if c.MemoryGiB != 0 {
		gib := float64(d.MemoryBytes) / (1 << 30)
		want := float64(c.MemoryGiB)
		if gib < 0.9*want || gib > 1.1*want {
			return false
		}
	}
	name := modelWords(d.Name)
	want := modelWords(c.Model)
	if containsRun(name, want) {
		return true
	}
	if len(want) == 1 {
		for _, alt := range aliases[want[0]] {
			if slices.Contains(name, alt) {
				return true
			}
		}
	}
	return false
}

// containsRun reports whether want occurs as consecutive words of name.
func containsRun(name, want []string) bool {
	for i := 0; i+len(want) <= len(name); i++ {
		if slices.Equal(name[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// Select picks GPUs of inv for the request: the first choice, in order of
// preference, that the host can satisfy, and the lowest-index GPUs for it.
// It never substitutes another model or a smaller GPU: when no choice can be
// met, the error (wrapping ErrUnsatisfiable) lists what the host has. The
// zero Request selects nothing.
func (r Request) Select(inv Inventory) ([]Device, error) {
	if r.IsZero() {
		return nil, nil
	}
	devs, ok := r.pick(inv, func(Device) int { return 0 }, false)
	if !ok {
		return nil, r.unsatisfiable(inv)
	}
	return devs, nil
}

// pick tries the choices in order. load gives each device's current number
// of users; with exclusive, only devices with load 0 are taken. Among
// matching devices the least loaded, then the lowest index, win.
func (r Request) pick(inv Inventory, load func(Device) int, exclusive bool) ([]Device, bool) {
	for _, c := range r.Choices {
		var cands []Device
		for _, d := range inv.Devices {
			if c.Matches(d) && (!exclusive || load(d) == 0) {
				cands = append(cands, d)
			}
		}
		if c.All {
			usable := 0
			for _, d := range inv.Devices {
				if !d.MIGEnabled {
					usable++
				}
			}
			if usable == 0 || len(cands) < usable {
				continue
			}
			return cands, true
		}
		if len(cands) < c.Count {
			continue
		}
		slices.SortStableFunc(cands, func(a, b Device) int {
			if la, lb := load(a), load(b); la != lb {
				return la - lb
			}
			return a.Index - b.Index
		})
		chosen := cands[:c.Count]
		slices.SortFunc(chosen, func(a, b Device) int { return a.Index - b.Index })
		return chosen, true
	}
	return nil, false
}

type unsatisfiableError struct{ req, have string }

func (e *unsatisfiableError) Error() string {
	return fmt.Sprintf("GPU request %q: host has %s", e.req, e.have)
}

func (e *unsatisfiableError) Is(target error) bool { return target == ErrUnsatisfiable }

func (r Request) unsatisfiable(inv Inventory) error {
	return &unsatisfiableError{req: r.String(), have: inv.Summary()}
}
