package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// RecordFileName is the file in the state directory that carries a
// restore of the machine piosnap runs on across the reboot that ends it.
const RecordFileName = "restore.json"

// Record is a restore of the machine piosnap runs on (the leader restoring
// its own ~/.pioreactor). The import reboots the machine under the restore,
// so the restore saves what is left to do before it uploads, and FinishSelf,
// at the next start of the daemon, verifies the unit and records the
// result here, where `piosnap status` shows it.
type Record struct {
	// Unit is the unit restored onto; Host is the version's host (they
	// differ when a configuration was cloned).
	Unit string `json:"unit"`
	Host string `json:"host"`
	// Version is the restored version's ID, in Store.
	Version string `json:"version"`
	Store   string `json:"store"`
	// Started is when the restore began, in UTC.
	Started time.Time `json:"started"`
	// Undo is the command that undoes the restore, if a safety snapshot
	// was taken.
	Undo string `json:"undo,omitempty"`
	// Finished is set once the unit was verified (or found to differ).
	Finished *time.Time `json:"finished,omitempty"`
	// Verified is set when the unit matched the version.
	Verified bool `json:"verified"`
	// Result says how the verification ended.
	Result string `json:"result,omitempty"`
}

// ShortVersion is the first eight hex digits of Version, as lists show it.
func (rec *Record) ShortVersion() string {
	return (&store.Version{ID: rec.Version}).ShortID()
}

// finish records the outcome of the verification: diff, or err when the
// unit could not be verified.
func (rec *Record) finish(diff *Diff, err error) {
	now := time.Now().UTC()
	rec.Finished = &now
	rec.Verified = false
	switch {
	case err != nil:
		rec.Result = fmt.Sprintf("could not verify %s: %v", rec.Unit, err)
	case !diff.Empty():
		rec.Result = fmt.Sprintf("%s differs from version %s: %s", rec.Unit, rec.ShortVersion(), diff.Summary())
	default:
		rec.Verified = true
		rec.Result = fmt.Sprintf("restored and verified: %s matches version %s of %s", rec.Unit, rec.ShortVersion(), rec.Host)
	}
}

// RecordPath returns the path of the Record in stateDir.
func RecordPath(stateDir string) string { return filepath.Join(stateDir, RecordFileName) }

// WriteRecord saves rec in stateDir, replacing the file at once so that a
// crash never leaves half of one.
func WriteRecord(stateDir string, rec *Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	_, err = local.WriteFileAtomic(RecordPath(stateDir), func(f *os.File) error {
		if err := f.Chmod(0o644); err != nil {
			return err
		}
		_, err := f.Write(append(b, '\n'))
		return err
	})
	return err
}

// dropRecord forgets a pending restore of this machine that did not happen
// (the upload or the import failed), so that the daemon does not verify
// it. rec nil means there is none.
func dropRecord(stateDir string, rec *Record) {
	if rec != nil {
		_ = os.Remove(RecordPath(stateDir))
	}
}

// ReadRecord returns the Record saved in stateDir, or nil if there is none.
func ReadRecord(stateDir string) (*Record, error) {
	b, err := os.ReadFile(RecordPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", RecordPath(stateDir), err)
	}
	return &rec, nil
}

// SelfOptions configures FinishSelf.
type SelfOptions struct {
	// StateDir holds the Record.
	StateDir string
	// RebootTimeout bounds the wait for the unit's web server, which may
	// start after piosnap.
	RebootTimeout time.Duration
	// Open opens the named store for reading.
	Open func(ctx context.Context, name string) (*store.Repository, error)
	// Client returns a client of the cluster.
	Client func() (*pioreactor.Client, error)
	// Log receives the outcome.
	Log *slog.Logger
}

// FinishSelf verifies a restore of this machine that its reboot
// interrupted, logs the result and records it in the state directory. The
// daemon runs it at start; it waits up to RebootTimeout for the unit's web
// server. A Record already finished is left alone; when ctx ends first,
// the Record stays pending for the next start.
func FinishSelf(ctx context.Context, o SelfOptions) {
	log := o.Log
	rec, err := ReadRecord(o.StateDir)
	if err != nil {
		log.Error("cannot read the pending verification of a restore of this machine", "err", err)
		return
	}
	if rec == nil || rec.Finished != nil {
		return
	}
	log = log.With("unit", rec.Unit, "version", rec.ShortVersion())
	log.Info("finishing the restore of this machine that its reboot interrupted: verifying it")
	start := time.Now()
	diff, err := verifySelf(ctx, o, rec)
	if ctx.Err() != nil {
		return // stopped: the next start tries again
	}
	rec.finish(diff, err)
	switch {
	case err != nil:
		log.Error("restore of this machine NOT verified", "err", err, "undo", rec.Undo)
	case !diff.Empty():
		log.Error("restore of this machine does not match the version", "differences", diff.Summary(), "undo", rec.Undo)
	default:
		log.Info("restore of this machine verified after its reboot", "took", time.Since(start).Round(time.Millisecond))
	}
	if err := WriteRecord(o.StateDir, rec); err != nil {
		log.Error("cannot record the verification of the restore", "err", err)
	}
}

// verifySelf waits for the unit to answer, then compares it with the
// restored version.
func verifySelf(ctx context.Context, o SelfOptions, rec *Record) (*Diff, error) {
	repo, err := o.Open(ctx, rec.Store)
	if err != nil {
		return nil, err
	}
	vs, err := repo.Versions(ctx)
	if err != nil {
		return nil, err
	}
	v, err := store.FindVersion(vs, rec.Host, rec.Version)
	if err != nil {
		return nil, err
	}
	cl, err := o.Client()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(o.RebootTimeout)
	for {
		_, err := cl.Health(ctx, rec.Unit)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not answer within %s (reboot_timeout): %w", rec.Unit, o.RebootTimeout, err)
		}
		if err := store.Sleep(ctx, 2*time.Second); err != nil {
			return nil, err
		}
	}
	return Verify(ctx, cl, repo, v, rec.Unit, nil)
}
