package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/stratabuild/strata/layers"
)

// pythonSourceIgnore is AddLocalPythonSource's default: Python files only,
// without dot-files, dot-directories and __pycache__.
var pythonSourceIgnore = []string{"**", "!**/*.py", "**/.*", "**/__pycache__"}

// PythonPath sets the local directories AddLocalPythonSource searches for
// modules, in order. Default: the current directory, then the entries of
// $PYTHONPATH. (Modal asks the local Python interpreter; a Go program has
// none, so the search path is explicit.) It applies to AddLocalPythonSource
// only; the other local steps refuse it.
func PythonPath(dirs ...string) AddOption {
	return addOption(func(o *addOptions) { o.pythonPath = append(o.pythonPath, dirs...) })
}

var moduleName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// AddLocalPythonSource adds local Python packages or modules, by import
// name ("mypkg", "mypkg.sub", "single_module"), under /root in the image, as
// Modal's add_local_python_source: /root is where the image's programs can
// import them from. Only ".py" files are added, without dot-files,
// dot-directories and __pycache__; Ignore(...) replaces that default.
// Copy() makes it a build step, as for AddLocalDir; without it the files
// are added after every build step. Each module becomes one step.
func (i Image) AddLocalPythonSource(modules []string, opts ...AddOption) Image {
	var ao addOptions
	for _, o := range opts {
		o.applyAdd(&ao)
	}
	if len(modules) == 0 {
		return i.push(&stepDef{method: "AddLocalPythonSource", kind: layers.KindAdd}, errors.New("no modules given"))
	}
	search := ao.pythonPath
	if len(search) == 0 {
		search = append([]string{"."}, filepath.SplitList(os.Getenv("PYTHONPATH"))...)
	}
	o := opts
	if ao.ignore == nil {
		o = append([]AddOption{Ignore(pythonSourceIgnore...)}, opts...)
	}
	img := i
	for _, m := range modules {
		local, remote, dir, err := findModule(m, search)
		if err != nil {
			img = img.push(&stepDef{method: "AddLocalPythonSource", kind: layers.KindAdd}, err)
			continue
		}
		img = img.addLocal("AddLocalPythonSource", local, remote, dir, o)
	}
	return img
}

// findModule finds the package directory or module file of the import name
// m in the search path.
func findModule(m string, search []string) (local, remote string, dir bool, err error) {
	if !moduleName.MatchString(m) {
		return "", "", false, fmt.Errorf("%q is not a Python module name", m)
	}
	rel := filepath.FromSlash(strings.ReplaceAll(m, ".", "/"))
	remote = "/root/" + strings.ReplaceAll(m, ".", "/")
	for _, d := range search {
		p := filepath.Join(d, rel)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p, remote, true, nil
		}
		if st, err := os.Stat(p + ".py"); err == nil && !st.IsDir() {
			return p + ".py", remote + ".py", false, nil
		}
	}
	return "", "", false, fmt.Errorf("module %s not found in %s (set the search path with PythonPath)", m, strings.Join(search, ", "))
}

// CopyLocalFile copies a local file into the image as a build step.
//
// Deprecated: use AddLocalFile with Copy(), as Modal deprecates copy_local_file.
func (i Image) CopyLocalFile(local, remote string) Image {
	return i.addLocal("CopyLocalFile", local, remote, false, []AddOption{Copy()})
}

// CopyLocalDir copies a local directory into the image as a build step.
//
// Deprecated: use AddLocalDir with Copy(), as Modal deprecates copy_local_dir.
func (i Image) CopyLocalDir(local, remote string, opts ...AddOption) Image {
	return i.addLocal("CopyLocalDir", local, remote, true, append([]AddOption{Copy()}, opts...))
}
