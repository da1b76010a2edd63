package daemon

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

// StatusFileName is the daemon's status file in state_dir.
const StatusFileName = "status.json"

// StatusFile is what the daemon writes to state_dir/status.json at start,
// whenever its scheduler's state changes, after every run and at exit;
// `piosnap status` reads it with ReadStatusFile. Its JSON is read by
// scripts too: fields are only ever added.
type StatusFile struct {
	// PID is the daemon's process.
	PID int `json:"pid"`
	// BootID tells a PID of an earlier boot from a live one.
	BootID string `json:"boot_id,omitempty"`
	// Started is when the daemon started; Stopped when it stopped
	// cleanly, nil while it runs; Updated when the file was written.
	Started time.Time  `json:"started"`
	Stopped *time.Time `json:"stopped,omitempty"`
	Updated time.Time  `json:"updated"`
	// Config is the configuration file; Schedule and Zone the global
	// schedule in force.
	Config   string `json:"config"`
	Schedule string `json:"schedule"`
	Zone     string `json:"zone"`
	// MetricsAddr is where the metrics endpoint listens.
	MetricsAddr string `json:"metrics_addr,omitempty"`
	// WebAddr is where the web application listens.
	WebAddr string `json:"web_addr,omitempty"`
	// State is the scheduler's one-line status, as systemd shows it.
	State string `json:"state,omitempty"`
	// Running says a run is in progress; Waiting why the scheduler waits,
	// if it does; NextRun when the next run is due.
	Running bool       `json:"running"`
	Waiting string     `json:"waiting,omitempty"`
	NextRun *time.Time `json:"next_run,omitempty"`
	// LastRun is the last run's outcome, kept across restarts.
	LastRun *notify.Event `json:"last_run,omitempty"`
	// Retention is what retention did after the last run, per store.
	Retention []RetentionRecord `json:"retention,omitempty"`
	// Verified is what the last reading of each store's data found (see
	// verify_days), kept across restarts.
	Verified []VerifyRecord `json:"verified,omitempty"`
}

// RetentionRecord is retention's outcome in one store after a run: the
// versions it removed and the bytes it freed, or why it failed.
type RetentionRecord struct {
	Store   string `json:"store"`
	Removed int    `json:"removed_versions"`
	Freed   int64  `json:"freed_bytes"`
	Error   string `json:"error,omitempty"`
}

// startStatus fills the status for a fresh start, keeping the last run
// from an earlier daemon's file.
func (d *Daemon) startStatus(cfg *config.Config, metricsAddr string) {
	prev, err := ReadStatusFile(d.statusPath)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status = StatusFile{
		PID: os.Getpid(), BootID: bootID(), Started: time.Now().UTC(),
		Config: d.opts.ConfigPath, Schedule: cfg.Schedule, Zone: cfg.ZoneName(), MetricsAddr: metricsAddr,
	}
	if err == nil {
		d.status.LastRun, d.status.Retention = prev.LastRun, prev.Retention
		d.status.Verified = configuredOnly(prev.Verified, cfg)
	}
}

// writeStatus writes the status file atomically. A failure is logged once
// and otherwise ignored: the daemon works without it.
func (d *Daemon) writeStatus() {
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

// ReadStatusFile reads the status file at path. Its errors say what to
// do: a missing file means the daemon never started with this state_dir.
func ReadStatusFile(path string) (*StatusFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no status file %s: the daemon (`piosnap run`) has not started with this state_dir: %w", path, err)
		}
		return nil, fmt.Errorf("read status file: %w", err)
	}
	var s StatusFile
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

// Alive reports whether the daemon that wrote s still runs: it did not
// stop cleanly, runs in this boot and its process exists.
func (s *StatusFile) Alive() bool {
	if s.Stopped != nil || s.PID <= 0 {
		return false
	}
	if s.BootID != "" && bootID() != "" && s.BootID != bootID() {
		return false // written before the last reboot
	}
	return processAlive(s.PID)
}
