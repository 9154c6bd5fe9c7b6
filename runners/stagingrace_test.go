package runners

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func TestStagingRaced(t *testing.T) {
	mkdirErr := &fs.PathError{Op: "mkdir", Path: "/s/graph/overlay/tempdirs/temp-dir-123/0-addition", Err: syscall.ENOENT}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"wrapped path error", fmt.Errorf("writing blob: adding layer with blob %q: %w", "sha256:ab", mkdirErr), true},
		{"path error", mkdirErr, true},
		{"message only, errno kept", fmt.Errorf("mkdir /s/overlay/tempdirs/temp-dir-9/0-addition: %w", syscall.ENOENT), true},
		{"other missing file", fmt.Errorf("copying: %w", &fs.PathError{Op: "open", Path: "/ctx/app.py", Err: syscall.ENOENT}), false},
		{"tempdirs but another errno", &fs.PathError{Op: "mkdir", Path: "/s/overlay/tempdirs/temp-dir-1/0-addition", Err: syscall.ENOSPC}, false},
		{"flattened by %v", errors.New("mkdir /s/overlay/tempdirs/temp-dir-1/0-addition: no such file or directory"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stagingRaced(tt.err); got != tt.want {
				t.Errorf("stagingRaced(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryStagingRace(t *testing.T) {
	raced := fmt.Errorf("adding layer: %w", &fs.PathError{Op: "mkdir", Path: "/g/overlay/tempdirs/temp-dir-7/0-addition", Err: os.ErrNotExist})
	tests := []struct {
		name      string
		failures  []error // what each run returns, in order; then nil
		wantRuns  int
		wantErr   bool
		wantNotes int
	}{
		{"first run succeeds", nil, 1, false, 0},
		{"one race then success", []error{raced}, 2, false, 1},
		{"races every time", []error{raced, raced, raced, raced}, 1 + stagingRaceRetries, true, stagingRaceRetries},
		{"other error is not retried", []error{errors.New("disk full")}, 1, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, notes := 0, 0
			err := retryStagingRace(func() error {
				runs++
				if runs <= len(tt.failures) {
					return tt.failures[runs-1]
				}
				return nil
			}, func(string) { notes++ })
			if runs != tt.wantRuns || (err != nil) != tt.wantErr || notes != tt.wantNotes {
				t.Errorf("runs %d err %v notes %d; want runs %d err %v notes %d", runs, err, notes, tt.wantRuns, tt.wantErr, tt.wantNotes)
			}
		})
	}
}
