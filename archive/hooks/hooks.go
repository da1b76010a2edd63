// Package hooks runs the commands that stop and start an application
// around a backup or a restore, each bounded by a timeout.
package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// maxOutput is how much of a hook's output an error quotes.
const maxOutput = 2048

// Hook is one command, run without a shell.
type Hook struct {
	// Name says what the hook is for in messages ("stop", "start").
	Name string
	// Argv is the command and its arguments; empty means nothing to run.
	Argv []string
	// Timeout bounds the run; zero means no bound.
	Timeout time.Duration
}

// ErrTimeout means a hook did not finish within its timeout and was killed.
var ErrTimeout = errors.New("hook timed out")

// Run runs the hook and waits for it. A non-zero exit is an error quoting
// the end of the command's output. When the timeout or ctx ends first, the
// command's whole process group is killed and the error wraps ErrTimeout or
// the context's error.
func (h Hook) Run(ctx context.Context) error {
	if len(h.Argv) == 0 {
		return nil
	}
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Argv[0], h.Argv[1:]...)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("%s hook %q", h.Name, strings.Join(h.Argv, " "))
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && h.Timeout > 0 && time.Since(start) >= h.Timeout {
			return fmt.Errorf("%s did not finish within %s and was killed%s (%w)", what, h.Timeout, out.quote(), ErrTimeout)
		}
		return fmt.Errorf("%s interrupted: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s failed: %w%s", what, err, out.quote())
}

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > maxOutput {
		t.b = t.b[len(t.b)-maxOutput:]
	}
	return len(p), nil
}

func (t *tailBuffer) quote() string {
	s := string(bytes.TrimSpace(t.b))
	if s == "" {
		return ""
	}
	return ": " + s
}
