package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler/notify"
	"github.com/piosnap/piosnap/store/local"
)

// statusFileName is the daemon's status file in state_dir.
const statusFileName = "status.json"

// statusFile is what the daemon writes to state_dir/status.json at start,
// whenever its scheduler's state changes, after every run and at exit;
// `piosnap status` reads it.
type statusFile struct {
	PID int `json:"pid"`
	// BootID tells a PID of an earlier boot from a live one.
	BootID      string     `json:"boot_id,omitempty"`
	Started     time.Time  `json:"started"`
	Stopped     *time.Time `json:"stopped,omitempty"`
	Updated     time.Time  `json:"updated"`
	Config      string     `json:"config"`
	Schedule    string     `json:"schedule"`
	Zone        string     `json:"zone"`
	MetricsAddr string     `json:"metrics_addr,omitempty"`
	// WebAddr is where the web application listens.
	WebAddr string `json:"web_addr,omitempty"`
	// State is the scheduler's one-line status, as systemd shows it.
	State   string     `json:"state,omitempty"`
	Running bool       `json:"running"`
	Waiting string     `json:"waiting,omitempty"`
	NextRun *time.Time `json:"next_run,omitempty"`
	// LastRun is the last run's outcome, kept across restarts.
	LastRun *notify.Event `json:"last_run,omitempty"`
	// Retention is what retention did after the last run, per store.
	Retention []retentionRecord `json:"retention,omitempty"`
}

// retentionRecord is retention's outcome in one store after a run.
type retentionRecord struct {
	Store   string `json:"store"`
	Removed int    `json:"removed_versions"`
	Freed   int64  `json:"freed_bytes"`
	Error   string `json:"error,omitempty"`
}

// startStatus fills the status for a fresh start, keeping the last run
// from an earlier daemon's file.
func (d *daemon) startStatus(cfg *config.Config, metricsAddr string) {
	prev, err := readStatusFile(d.statusPath)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status = statusFile{
		PID: os.Getpid(), BootID: bootID(), Started: time.Now().UTC(),
		Config: d.base.configPath, Schedule: cfg.Schedule, Zone: cfg.ZoneName(), MetricsAddr: metricsAddr,
	}
	if err == nil {
		d.status.LastRun, d.status.Retention = prev.LastRun, prev.Retention
	}
}

// writeStatus writes the status file atomically. A failure is logged once
// and otherwise ignored: the daemon works without it.
func (d *daemon) writeStatus() {
	d.mu.Lock()
	d.status.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(d.status, "", "  ")
	log := d.log
	d.mu.Unlock()
	if err == nil {
		_, err = local.WriteFileAtomic(d.statusPath, func(f *os.File) error {
			if err := f.Chmod(0o644); err != nil {
				return err
			}
			_, err := f.Write(append(b, '\n'))
			return err
		})
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil && !d.statusWarned {
		d.statusWarned = true
		log.Warn("cannot write the status file; backups go on, but `piosnap status` cannot see the daemon: make state_dir writable for the daemon's user", "path", d.statusPath, "err", err)
	} else if err == nil && d.statusWarned {
		d.statusWarned = false
		log.Info("status file written again", "path", d.statusPath)
	}
}

// readStatusFile reads a status file.
func readStatusFile(path string) (*statusFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no status file %s: the daemon (`piosnap run`) has not started with this state_dir: %w", path, err)
		}
		return nil, fmt.Errorf("read status file: %w", err)
	}
	var s statusFile
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("status file %s is not valid JSON (%w): it is rewritten when the daemon starts", path, err)
	}
	return &s, nil
}

// bootID identifies the current boot on Linux, or is empty elsewhere.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// daemonAlive reports whether the daemon that wrote s still runs.
func daemonAlive(s *statusFile) bool {
	if s.Stopped != nil || s.PID <= 0 {
		return false
	}
	if s.BootID != "" && bootID() != "" && s.BootID != bootID() {
		return false // written before the last reboot
	}
	return processAlive(s.PID)
}
