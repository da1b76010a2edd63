package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunDaemonDirSource: the daemon backs up the cluster and a directory
// source from the same schedule; stopped twice (cancelling the run) while
// the application is down, it still runs the start hook before exiting.
func TestRunDaemonDirSource(t *testing.T) {
	bin := buildPiosnap(t)
	t.Run("scheduled", func(t *testing.T) {
		f := newDaemonFixture(t)
		root := filepath.Join(f.dir, "cells")
		layoutDir(t, root)
		// First without the source: the cluster is backed up.
		f.writeConfig(t, f.config("", "keep_last = 3"))
		cmd, _ := f.start(t, bin)
		waitFor(t, hangTimeout, "the first run", func() bool {
			sf := f.status(t)
			return sf != nil && sf.LastRun != nil && !sf.Running
		})
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waitExit(t, cmd, hangTimeout)
		// A source added to the configuration is due at once, although
		// the cluster's versions are from the current slot.
		f.writeConfig(t, f.config("", "keep_last = 3")+dirConfig(root))
		cmd, _ = f.start(t, bin)
		waitFor(t, hangTimeout, "a run for the new source", func() bool {
			for _, v := range f.versions(t) {
				if v.Host == "cells" {
					return true
				}
			}
			return false
		})
		waitFor(t, hangTimeout, "the run to finish", func() bool {
			sf := f.status(t)
			return sf != nil && sf.LastRun != nil && !sf.Running
		})
		if r := f.status(t).LastRun.Result; r != "success" {
			t.Errorf("run result %q", r)
		}
		hosts := map[string]bool{}
		for _, v := range f.versions(t) {
			hosts[v.Host] = true
		}
		if !hosts["cells"] || !hosts["leader1"] || !hosts["worker1"] {
			t.Errorf("hosts stored by the daemon: %v", hosts)
		}
		if b, _ := os.ReadFile(root + ".hooks"); string(b) != "stop\nstart\n" {
			t.Errorf("hooks: %q", b)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waitExit(t, cmd, hangTimeout)
	})
	t.Run("stopped while the application is down", func(t *testing.T) {
		f := newDaemonFixture(t)
		root := filepath.Join(f.dir, "cells")
		layoutDir(t, root)
		cfg := strings.Replace(dirConfig(root), `stop = ["sh", "-c", "echo stop >> `+root+`.hooks"]`,
			`stop = ["sh", "-c", "echo stop >> `+root+`.hooks; sleep 60"]`, 1)
		cfg = strings.Replace(cfg, `timeout = "10s"`, `timeout = "2m"`, 1)
		f.writeConfig(t, f.config("", "keep_last = 3")+cfg)
		cmd, logs := f.start(t, bin)
		waitFor(t, hangTimeout, "the stop hook to run", func() bool {
			b, _ := os.ReadFile(root + ".hooks")
			return string(b) == "stop\n"
		})
		for range 2 {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		waitExit(t, cmd, hangTimeout)
		if b, _ := os.ReadFile(root + ".hooks"); string(b) != "stop\nstart\n" {
			t.Errorf("hooks after the daemon stopped: %q\n%s", b, logs.String())
		}
		for _, v := range f.versions(t) {
			if v.Host == "cells" {
				t.Errorf("a version of cells was stored: %s", v.ID)
			}
		}
	})
}
