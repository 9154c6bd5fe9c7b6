package layers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Recipe is what a cache entry was made from, in readable form: the key's
// inputs (the spec, the parent key), the step as the user wrote it, and
// the files of its local inputs. It never holds a secret's value: the spec
// names secrets only. Recipes let a builder say why a step missed.
type Recipe struct {
	Key         Key       `json:"key"`
	Parent      Key       `json:"parent,omitempty"`
	Index       int       `json:"index"`
	Method      string    `json:"method"`
	Description string    `json:"description"`
	Spec        Spec      `json:"spec"`
	Trees       []Tree    `json:"trees,omitempty"`
	Time        time.Time `json:"time"`
}

// Tree lists the files of one local input (Spec.Inputs by name).
type Tree struct {
	Input string      `json:"input"`
	Files []TreeEntry `json:"files"`
	// Truncated is set when the input had more files than were kept.
	Truncated bool `json:"truncated,omitempty"`
}

// TreeEntry is one file of a Tree.
type TreeEntry struct {
	Path   string `json:"path"`
	Mode   uint32 `json:"mode"`
	Digest string `json:"digest,omitempty"` // regular files; symlinks: "-> target"
}

// MaxTreeEntries bounds the files kept per input in a Recipe.
const MaxTreeEntries = 20000

// Recipes keeps Recipes in a directory: <dir>/<key hex>.json, an index by
// parent key (<dir>/by-parent/<parent hex>/<key hex>) and, per image
// name, the keys of its last build (<dir>/images/<sha256 of name>.json).
// Writes are atomic (rename); concurrent writers of one key write the same
// recipe.
type Recipes struct{ dir string }

// OpenRecipes returns the recipe store in dir (made on first write).
func OpenRecipes(dir string) *Recipes { return &Recipes{dir: dir} }

func writeAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// Put records r.
func (s *Recipes) Put(r Recipe) error {
	if !r.Key.Valid() {
		return fmt.Errorf("recipe: invalid key %q", r.Key)
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(s.dir, r.Key.Hex()+".json"), b); err != nil {
		return fmt.Errorf("recording recipe %s: %w", r.Key.Short(), err)
	}
	parent := "base"
	if r.Parent != "" {
		parent = r.Parent.Hex()
	}
	idx := filepath.Join(s.dir, "by-parent", parent, r.Key.Hex())
	if err := writeAtomic(idx, nil); err != nil {
		return fmt.Errorf("recording recipe %s: %w", r.Key.Short(), err)
	}
	return nil
}

// Get returns the recipe of k, or an error matching ErrNotFound.
func (s *Recipes) Get(k Key) (*Recipe, error) {
	if !k.Valid() {
		return nil, ErrNotFound
	}
	b, err := os.ReadFile(filepath.Join(s.dir, k.Hex()+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var r Recipe
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("recipe %s: %w", k.Short(), err)
	}
	return &r, nil
}

// Children returns the recipes recorded on top of parent ("" for bases),
// newest first.
func (s *Recipes) Children(parent Key) ([]Recipe, error) {
	p := "base"
	if parent != "" {
		p = parent.Hex()
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, "by-parent", p))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Recipe
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := s.Get(Key("sha256:" + e.Name()))
		if err != nil {
			continue
		}
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

type imageRecord struct {
	Name string `json:"name"`
	Keys []Key  `json:"keys"`
}

func (s *Recipes) imagePath(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.dir, "images", hex.EncodeToString(sum[:16])+".json")
}

// PutImage records the step keys of the last build named name.
func (s *Recipes) PutImage(name string, keys []Key) error {
	b, err := json.Marshal(imageRecord{Name: name, Keys: keys})
	if err != nil {
		return err
	}
	return writeAtomic(s.imagePath(name), b)
}

// Image returns the step keys of the last build named name, or nil.
func (s *Recipes) Image(name string) []Key {
	b, err := os.ReadFile(s.imagePath(name))
	if err != nil {
		return nil
	}
	var r imageRecord
	if json.Unmarshal(b, &r) != nil || r.Name != name {
		return nil
	}
	return r.Keys
}
