// Package hooks runs the commands that stop and start an application
// around a backup or a restore, each bounded by a timeout, and provides
// the process handling (process groups, output for error messages) that
// other external commands share.
package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
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
		ctx, cancel = context.WithTimeoutCause(ctx, h.Timeout, ErrTimeout)
		defer cancel()
	}
	cmd := Command(ctx, h.Argv, nil)
	var out Tail
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("%s hook %q", h.Name, strings.Join(h.Argv, " "))
	if ctx.Err() != nil {
		// The cause tells the hook's own timeout from the caller's
		// deadline or cancellation.
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return fmt.Errorf("%s did not finish within %s and was killed%s (%w)", what, h.Timeout, out.Quote(), ErrTimeout)
		}
		return fmt.Errorf("%s interrupted: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s failed: %w%s", what, err, out.Quote())
}

// Command returns a command that runs in its own process group, with env
// added to piosnap's environment. When ctx ends, the whole group is
// killed, so a hook's children do not outlive it.
func Command(ctx context.Context, argv, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Tail keeps the last 2 KiB written to it: a command's output, quoted in
// error messages.
type Tail struct{ b []byte }

// Write keeps the end of what was written.
func (t *Tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > maxOutput {
		t.b = append(t.b[:0], t.b[len(t.b)-maxOutput:]...)
	}
	return len(p), nil
}

// Bytes returns what is kept.
func (t *Tail) Bytes() []byte { return t.b }

// Quote returns ": <output>" for an error message, or "" when there was
// no output.
func (t *Tail) Quote() string {
	s := string(bytes.TrimSpace(t.b))
	if s == "" {
		return ""
	}
	return ": " + s
}
