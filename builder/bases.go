package builder

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// Mirror sets the Debian archive DebianMirror builds from. Default:
// http://deb.debian.org/debian, or snapshot.debian.org when Snapshot is
// given.
func Mirror(url string) BaseOption {
	return baseOption(func(o *baseOptions) { o.named("Mirror"); o.debian.Mirror = url })
}

// Snapshot pins DebianMirror to the state of the Debian archive at t, from
// snapshot.debian.org, for a base that is the same whenever it is built.
// Default: the mirror as it is now.
func Snapshot(t time.Time) BaseOption {
	return baseOption(func(o *baseOptions) { o.named("Snapshot"); o.debian.Snapshot = t })
}

// Include installs extra packages in a DebianMirror base while it is made.
// Default: none (the minbase variant: essential packages and apt).
func Include(pkgs ...string) BaseOption {
	return baseOption(func(o *baseOptions) {
		o.named("Include")
		o.debian.Include = append(o.debian.Include, pkgs...)
	})
}

// AptOptions writes apt configuration lines into a DebianMirror base
// (mmdebstrap --aptopt), used while it is made and by every later apt step,
// e.g. AptOptions(`Acquire::Check-Valid-Until "false"`) for a mirror whose
// Release files have expired. Default: none.
func AptOptions(lines ...string) BaseOption {
	return baseOption(func(o *baseOptions) {
		o.named("AptOptions")
		o.debian.AptOptions = append(o.debian.AptOptions, lines...)
	})
}

var debianSuite = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// DebianMirror starts from a Debian minbase of suite ("bookworm",
// "trixie", ...) made on this machine from a Debian mirror with mmdebstrap,
// rootless (--mode=unshare): no registry is needed. The base's cache key is
// the digest of the suite's Release file as the mirror serves it when the
// build starts, so the base is made again only when the archive changed;
// pin it with Snapshot for a base that never changes. Needs mmdebstrap on
// the host.
//
// The base is made for the build's platform (Platforms): for another
// architecture mmdebstrap installs that architecture's packages and runs
// their scripts through the emulator (qemu-user-static, and Debian's
// arch-test on the host). Arch, or Platform, pins the base and the chain
// on it to one architecture whatever the build's platforms.
func DebianMirror(suite string, opts ...BaseOption) Image {
	var bo baseOptions
	for _, o := range opts {
		o.applyBase(&bo)
	}
	err := bo.check("DebianMirror", "Mirror", "Snapshot", "Include", "AptOptions", "Arch", "Platform")
	if err == nil {
		err = checkDebian(suite, bo.debian)
	}
	if err == nil && bo.used["Arch"] && bo.used["Platform"] {
		err = fmt.Errorf("DebianMirror: give Arch or Platform, not both")
	}
	d := bo.debian
	d.Suite = suite
	return bo.withPlatform(newBase("DebianMirror", runners.Base{Kind: runners.BaseDebian, Ref: suite, Debian: &d}, err))
}

// Arch makes a DebianMirror base for Debian architecture arch ("arm64",
// "armhf", "amd64", ...) and builds the chain on it for the matching
// platform ("linux/arm64", "linux/arm/v7", ...), as Platform does for
// other bases.
func Arch(arch string) BaseOption {
	return baseOption(func(o *baseOptions) {
		p, err := runners.DebianPlatform(arch)
		o.pinPlatform("Arch", p, err)
	})
}

func checkDebian(suite string, d runners.Debian) error {
	if !debianSuite.MatchString(suite) {
		return fmt.Errorf("%q is not a Debian suite name (e.g. bookworm)", suite)
	}
	for _, p := range d.Include {
		if !aptName.MatchString(p) {
			return fmt.Errorf("%q is not a Debian package name", p)
		}
	}
	for _, l := range d.AptOptions {
		if strings.ContainsAny(l, "\x00\n") {
			return fmt.Errorf("apt option %q must be one line", l)
		}
	}
	if d.Mirror != "" && !strings.HasPrefix(d.Mirror, "http://") && !strings.HasPrefix(d.Mirror, "https://") {
		return fmt.Errorf("mirror %q must be an http:// or https:// URL", d.Mirror)
	}
	return nil
}

// AddPython installs Python v on a registry base that lacks it, as Modal's
// add_python, from the image's own package manager (apt-get, apk or dnf):
// python3 with pip and venv, a "python" command, and pip allowed to install
// into it. The step fails, naming both versions, when the distribution's
// Python is not v. (Modal downloads a standalone CPython build instead; no
// such download is reachable from these build machines, so strata uses the
// distribution's packages.) Default: no Python is added.
func AddPython(v string) PythonOption {
	return baseOption(func(o *baseOptions) {
		o.named("AddPython")
		if err := checkPythonVersion(v); err != nil {
			o.err = err
			return
		}
		o.addPython = v
	})
}

// addPython appends the AddPython step when v is set.
// PythonOption is AddPython: it applies to registry bases and to
// FromDockerfile.
type PythonOption interface {
	BaseOption
	DockerfileOption
}

func (i Image) addPython(v string) Image {
	if v == "" {
		return i
	}
	script := `if command -v apt-get >/dev/null 2>&1; then ` +
		`apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-pip python3-venv; ` +
		`elif command -v apk >/dev/null 2>&1; then apk add --no-cache python3 py3-pip; ` +
		`elif command -v dnf >/dev/null 2>&1; then dnf install -y python3 python3-pip && dnf clean all; ` +
		`else echo "AddPython: the image has no apt-get, apk or dnf to install Python with" >&2; exit 1; fi && ` +
		`have=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') && ` +
		`if [ "$have" != ` + shellQuote(minorOf(v)) + ` ]; then echo "AddPython: the image's distribution offers Python $have, not ` + v + `" >&2; exit 1; fi && ` +
		`{ command -v python >/dev/null 2>&1 || ln -s "$(command -v python3)" /usr/local/bin/python; } && ` +
		`rm -f /usr/lib/python3*/EXTERNALLY-MANAGED`
	s := &stepDef{method: "AddPython", kind: layers.KindRun, args: []string{script}, shell: defaultShell}
	return i.push(s, nil)
}

// DefaultPythonVersion is the Python DebianSlim uses when none is given.
const DefaultPythonVersion = "3.13"

var pythonVersion = regexp.MustCompile(`^3\.(9|1[0-4])(\.[0-9]+)?$`)

// suitePython is the Python of each Debian suite's own packages.
var suitePython = map[string]string{"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}

// UseDebianMirror makes DebianSlim build its base from a Debian mirror
// (DebianMirror with opts) instead of pulling python:<v>-slim from a
// registry. Python then comes from the suite's own packages (python3, pip,
// venv, and python-is-python3 for a "python" command), so the requested
// version must be the suite's: bullseye 3.9, bookworm 3.11, trixie 3.13.
func UseDebianMirror(suite string, opts ...BaseOption) BaseOption {
	return baseOption(func(o *baseOptions) {
		o.named("UseDebianMirror")
		var inner baseOptions
		for _, op := range opts {
			op.applyBase(&inner)
		}
		if err := inner.check("UseDebianMirror", "Mirror", "Snapshot", "Include", "AptOptions"); err != nil {
			o.err = err
		}
		d := inner.debian
		d.Suite = suite
		o.mirror = &d
	})
}

// DebianSlim is Modal's default base: Debian with Python pythonVersion
// ("3.12"; "" means DefaultPythonVersion), from the python:<v>-slim-bookworm
// image on Docker Hub, or built from a Debian mirror with UseDebianMirror.
// WithRegistryAuth applies to the registry pull.
func DebianSlim(pythonVersion string, opts ...BaseOption) Image {
	var bo baseOptions
	for _, o := range opts {
		o.applyBase(&bo)
	}
	err := bo.check("DebianSlim", "WithRegistryAuth", "UseDebianMirror")
	if bo.mirror == nil {
		v := pythonVersion
		if v == "" {
			v = DefaultPythonVersion
		}
		if err == nil {
			err = checkPythonVersion(v)
		}
		if err != nil {
			return newBase("DebianSlim", runners.Base{Kind: runners.BaseRegistry, Ref: "python"}, err)
		}
		img := FromRegistry("python:" + v + "-slim-bookworm")
		img.n.base.method = "DebianSlim"
		if bo.auth != nil {
			img.n.base.src.Auth = bo.auth
		}
		return img
	}
	d := *bo.mirror
	if err == nil {
		err = checkDebian(d.Suite, d)
	}
	have, known := suitePython[d.Suite]
	if err == nil && pythonVersion != "" {
		if err = checkPythonVersion(pythonVersion); err == nil && (!known || !sameMinor(pythonVersion, have)) {
			if known {
				err = fmt.Errorf("Python %s is not the Python of Debian %s (%s): ask for %s, or use another suite", pythonVersion, d.Suite, have, have)
			} else {
				err = fmt.Errorf("the Python of Debian %s is not known to strata: give an empty version to take whatever python3 it has", d.Suite)
			}
		}
	}
	base := newBase("DebianSlim", runners.Base{Kind: runners.BaseDebian, Ref: d.Suite, Debian: &d}, err)
	return base.
		AptInstall([]string{"python3", "python3-pip", "python3-venv", "python-is-python3"}).
		// Like the python:slim images, one environment that pip may install
		// into (PEP 668's marker is for systems whose Python apt manages).
		RunCommands([]string{"rm -f /usr/lib/python3*/EXTERNALLY-MANAGED"})
}

func checkPythonVersion(v string) error {
	if !pythonVersion.MatchString(v) {
		return fmt.Errorf("unknown Python version %q: strata knows 3.9 to 3.14 (e.g. %q)", v, DefaultPythonVersion)
	}
	return nil
}

func sameMinor(a, b string) bool { return minorOf(a) == minorOf(b) }

// minorOf returns "3.11" for "3.11.4".
func minorOf(v string) string {
	p := strings.SplitN(v, ".", 3)
	return strings.Join(p[:min(2, len(p))], ".")
}

// MicromambaImage is the registry image Micromamba starts from.
const MicromambaImage = "docker.io/mambaorg/micromamba:2.3.3-bookworm-slim"

// Micromamba is Modal's micromamba base: the micromamba image
// (MicromambaImage) with Python pythonVersion installed from conda-forge
// into its base environment. Add packages with MicromambaInstall.
func Micromamba(pythonVersion string, opts ...BaseOption) Image {
	if pythonVersion == "" {
		pythonVersion = DefaultPythonVersion
	}
	var err error
	if err = checkPythonVersion(pythonVersion); err != nil {
		return newBase("Micromamba", runners.Base{Kind: runners.BaseRegistry, Ref: MicromambaImage}, err)
	}
	var bo baseOptions
	for _, o := range opts {
		o.applyBase(&bo)
	}
	if err = bo.check("Micromamba", "WithRegistryAuth"); err != nil {
		return newBase("Micromamba", runners.Base{Kind: runners.BaseRegistry, Ref: MicromambaImage}, err)
	}
	img := FromRegistry(MicromambaImage, opts...)
	img.n.base.method = "Micromamba"
	return img.MicromambaInstall([]string{"python=" + pythonVersion}, Channels("conda-forge"))
}
