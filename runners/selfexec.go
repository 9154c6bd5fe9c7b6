package runners

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// EnvFunction names the variable that tells a re-executed program which
// registered function to run inside a build container.
const EnvFunction = "_STRATA_FUNCTION"

// envExecutable carries the program's executable path across InitReexec's
// re-execution into a user namespace.
const envExecutable = "_STRATA_EXECUTABLE"

// selfDir is where the running program and its shared libraries are
// mounted in a build container; like every mount target it never reaches a
// layer.
const selfDir = "/.strata/self"

// Self describes how to run the calling program inside a build container:
// the mounts that make it visible there, and the argv prefix that starts it.
// A dynamically linked program is started through the host's own dynamic
// loader and libraries, mounted beside it, so it runs on any base, even one
// without a C library.
type Self struct {
	Mounts []Mount
	Argv   []string
	// BuildID identifies the executable: its Go build ID, or the SHA-256 of
	// the file when it has none.
	BuildID string
}

var (
	selfOnce sync.Once
	self     Self
	selfErr  error
)

// SelfExec returns how to run the calling program in a build container. It
// is computed once per process.
func SelfExec() (Self, error) {
	selfOnce.Do(func() { self, selfErr = selfExec() })
	return self, selfErr
}

// Executable returns the path of the running program's executable. Unlike
// os.Executable it stays right after InitReexec has re-executed the
// program inside a user namespace, where /proc/self/exe reads "/".
func Executable() (string, error) {
	if p := os.Getenv(envExecutable); p != "" {
		return p, nil
	}
	return os.Executable()
}

func selfExec() (Self, error) {
	exe, err := Executable()
	if err != nil {
		return Self{}, fmt.Errorf("finding this program's executable: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return Self{}, fmt.Errorf("finding this program's executable: %w", err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		return Self{}, fmt.Errorf("reading %s: %w", exe, err)
	}
	defer f.Close()
	s := Self{Mounts: []Mount{{Src: exe, Dest: selfDir + "/exe"}}}
	if s.BuildID, err = buildID(f, exe); err != nil {
		return Self{}, err
	}
	interp := ""
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			raw, err := io.ReadAll(p.Open())
			if err != nil {
				return Self{}, fmt.Errorf("reading %s: %w", exe, err)
			}
			interp = string(bytes.TrimRight(raw, "\x00"))
		}
	}
	if interp == "" {
		s.Argv = []string{selfDir + "/exe"}
		return s, nil
	}
	libs, err := sharedLibraries(interp, exe)
	if err != nil {
		return Self{}, err
	}
	libDir := selfDir + "/lib"
	loader := libDir + "/" + path.Base(interp)
	s.Mounts = append(s.Mounts, Mount{Src: interp, Dest: loader})
	for name, p := range libs {
		if name == path.Base(interp) {
			continue
		}
		s.Mounts = append(s.Mounts, Mount{Src: p, Dest: libDir + "/" + name})
	}
	s.Argv = []string{loader, "--library-path", libDir, selfDir + "/exe"}
	return s, nil
}

// sharedLibraries asks the host's dynamic loader which files it loads for
// exe, by soname.
func sharedLibraries(interp, exe string) (map[string]string, error) {
	out, err := exec.Command(interp, "--list", exe).Output()
	if err != nil {
		return nil, fmt.Errorf("listing the shared libraries of %s with %s: %w", exe, interp, err)
	}
	libs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), " => ")
		if !ok {
			continue
		}
		p, _, _ := strings.Cut(rest, " (")
		if p == "not found" {
			return nil, fmt.Errorf("%s needs %s, which the host's loader does not find", exe, name)
		}
		if filepath.IsAbs(p) {
			libs[name] = p
		}
	}
	return libs, nil
}

// buildID returns the Go build ID of the ELF file f, or "sha256:<hex>" of
// the file when it has none.
func buildID(f *elf.File, exe string) (string, error) {
	if sec := f.Section(".note.go.buildid"); sec != nil {
		raw, err := sec.Data()
		if err == nil && len(raw) > 16 {
			nameSize := binary.LittleEndian.Uint32(raw[0:4])
			descSize := binary.LittleEndian.Uint32(raw[4:8])
			off := 12 + (int(nameSize)+3)&^3
			if nameSize == 4 && off+int(descSize) <= len(raw) && string(raw[12:14]) == "Go" {
				return "go:" + string(raw[off:off+int(descSize)]), nil
			}
		}
	}
	fh, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("hashing %s: %w", exe, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
