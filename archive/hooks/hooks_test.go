package hooks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ctx := context.Background()
	if err := (Hook{Name: "stop", Argv: []string{"true"}}).Run(ctx); err != nil {
		t.Errorf("true: %v", err)
	}
	if err := (Hook{Name: "stop"}).Run(ctx); err != nil {
		t.Errorf("no command: %v", err)
	}
	err := Hook{Name: "start", Argv: []string{"sh", "-c", "echo port 8080 in use >&2; exit 4"}}.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), `start hook "sh -c`) || !strings.Contains(err.Error(), "exit status 4") || !strings.Contains(err.Error(), "port 8080 in use") {
		t.Errorf("failing hook: %v", err)
	}
	if err := (Hook{Name: "stop", Argv: []string{"/nonexistent/stop-cells"}}).Run(ctx); err == nil {
		t.Error("a missing program succeeded")
	}
}

// TestTimeoutKillsGroup: a hook that hangs is killed at its timeout, its
// children with it, and the error says so.
func TestTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := "sleep 600 & echo $! > " + pidFile + "; echo waiting; wait"
	start := time.Now()
	err := Hook{Name: "stop", Argv: []string{"sh", "-c", script}, Timeout: time.Second}.Run(context.Background())
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not finish within 1s") || !strings.Contains(err.Error(), "waiting") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 5*time.Minute {
		t.Errorf("returned after %v: the hook's sleep was waited out", el)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	// The group was sent SIGKILL before Run returned; the child is gone (or
	// a zombie nobody has reaped yet) as soon as the kernel has delivered it.
	for deadline := time.Now().Add(time.Minute); alive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %s outlived the timeout by a minute", pid)
		}
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestTimeoutOrCancel: the hook's own timeout is reported as ErrTimeout
// every time, however soon after the start it ends; the caller's deadline
// or cancellation is not. (The timeout used to be told apart by the time
// elapsed since the command was started, which a timeout that fired while
// the command was still being set up missed.)
func TestTimeoutOrCancel(t *testing.T) {
	hang := []string{"sh", "-c", "sleep 600"}
	for i := range 30 {
		err := Hook{Name: "stop", Argv: hang, Timeout: time.Millisecond}.Run(context.Background())
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not finish within 1ms") {
			t.Fatalf("run %d: err = %v, want the hook's timeout", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	err := Hook{Name: "stop", Argv: hang, Timeout: time.Hour}.Run(ctx)
	if errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("caller's deadline: err = %v, want an interruption", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err = Hook{Name: "stop", Argv: hang, Timeout: time.Hour}.Run(ctx)
	if errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}
