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
	marker := filepath.Join(t.TempDir(), "child-survived")
	start := time.Now()
	err := Hook{Name: "stop", Argv: []string{"sh", "-c", "(sleep 6; touch " + marker + ") & echo waiting; wait"}, Timeout: time.Second}.Run(context.Background())
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not finish within 1s") || !strings.Contains(err.Error(), "waiting") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("returned after %v", el)
	}
	time.Sleep(6500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Error("the hook's child outlived the timeout")
	}
}
