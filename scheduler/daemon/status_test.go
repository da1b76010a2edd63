package daemon

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/scheduler/notify"
)

// The daemon that wrote a status file is alive only while its process
// runs, in this boot, and it did not stop cleanly.
func TestStatusFileAlive(t *testing.T) {
	stopped := time.Now()
	for _, tc := range []struct {
		name string
		sf   StatusFile
		want bool
	}{
		{"this process", StatusFile{PID: os.Getpid(), BootID: bootID()}, true},
		{"stopped cleanly", StatusFile{PID: os.Getpid(), Stopped: &stopped}, false},
		{"no pid", StatusFile{}, false},
		{"dead pid", StatusFile{PID: 1 << 22}, false},
		{"earlier boot", StatusFile{PID: os.Getpid(), BootID: "not-this-boot"}, bootID() == ""},
	} {
		if got := tc.sf.Alive(); got != tc.want {
			t.Errorf("%s: alive = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestReadStatusFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.json"), "has not started"},
		{bad, "not valid JSON"},
	} {
		if _, err := ReadStatusFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadStatusFile(%s) = %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
}

// A status file that cannot be written is warned about once, and its
// recovery is logged.
func TestStatusFileUnwritable(t *testing.T) {
	var logs bytes.Buffer
	d := &Daemon{log: slog.New(slog.NewTextHandler(&logs, nil)), statusPath: filepath.Join(t.TempDir(), "missing-dir", StatusFileName)}
	d.writeStatus()
	d.writeStatus()
	if n := strings.Count(logs.String(), "cannot write the status file"); n != 1 {
		t.Errorf("%d warnings, want exactly one:\n%s", n, logs.String())
	}
	if err := os.MkdirAll(filepath.Dir(d.statusPath), 0o700); err != nil {
		t.Fatal(err)
	}
	d.status.PID = 7
	d.writeStatus()
	sf, err := ReadStatusFile(d.statusPath)
	if err != nil || sf.PID != 7 {
		t.Fatalf("status file %+v, %v", sf, err)
	}
	if !strings.Contains(logs.String(), "status file written again") {
		t.Errorf("no recovery line:\n%s", logs.String())
	}
}

// The status file written by one version is read by `piosnap status`.
func TestStatusJSONRoundTrip(t *testing.T) {
	// The status file written by one version is read by `status`.
	next := time.Date(2026, 5, 4, 2, 30, 0, 0, time.UTC)
	in := StatusFile{PID: 1, Schedule: "@daily", NextRun: &next, LastRun: &notify.Event{RunID: "x", Result: "success"}}
	b, _ := json.Marshal(in)
	path := filepath.Join(t.TempDir(), StatusFileName)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ReadStatusFile(path)
	if err != nil || out.Schedule != "@daily" || !out.NextRun.Equal(next) || out.LastRun.RunID != "x" {
		t.Errorf("read back %+v, %v", out, err)
	}
}
