package dockerfile

import (
	"errors"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// expandPairs substitutes variables in the names and values of ENV or
// LABEL pairs, all against the environment before the instruction.
func expandPairs(pairs instructions.KeyValuePairs, expand func(string) (string, error)) ([]KV, error) {
	var out []KV
	for _, kv := range pairs {
		k, err := expand(kv.Key)
		if err != nil {
			return nil, err
		}
		v, err := expand(kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, KV{k, v})
	}
	return out, nil
}

// exprErr places a substitution error at its instruction, with the column
// of the variable it names when it can be found.
func (p *dfParser) exprErr(err error, loc []parser.Range) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return p.errAt(loc, "", "%v", err)
}

// expandWord substitutes variables in one word.
func (p *dfParser) expandWord(w string, env shell.EnvGetter, loc []parser.Range) (string, error) {
	res, err := p.lex.ProcessWordWithMatches(w, env)
	if err != nil {
		word := ""
		if i := strings.Index(w, "${"); i >= 0 {
			word = w[i:]
			if j := strings.IndexByte(word, '}'); j >= 0 {
				word = word[:j+1]
			}
		}
		return "", p.errAt(loc, word, "%v", err)
	}
	return res.Result, nil
}

func (p *dfParser) stageLookup(st *Stage) shell.EnvGetter {
	return envGetter(func(k string) (string, bool) {
		if v, ok := st.env.get(k); ok && !st.argOver[k] {
			return v, true
		}
		if v, ok := st.args[k]; ok && v != nil {
			return *v, true
		}
		return "", false
	})
}

type envGetter func(string) (string, bool)

func (f envGetter) Get(k string) (string, bool) { return f(k) }

func (f envGetter) Keys() []string { return nil }

func lookupMap(m map[string]*string) shell.EnvGetter {
	return envGetter(func(k string) (string, bool) {
		if v, ok := m[k]; ok && v != nil {
			return *v, true
		}
		return "", false
	})
}
