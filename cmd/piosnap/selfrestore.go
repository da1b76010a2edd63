package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/store"
)

// selfRestoreFileName is the file in state_dir that carries a restore of
// the machine piosnap runs on across the reboot that ends it.
const selfRestoreFileName = "restore.json"

// selfRestore is a restore of this machine (the leader restoring its own
// ~/.pioreactor). The import reboots the machine under the command, so the
// command saves what is left to do before it uploads, and the next start of
// the daemon verifies the unit and records the result here, where
// `piosnap status` shows it.
type selfRestore struct {
	Unit    string    `json:"unit"`
	Host    string    `json:"host"` // the version's host (differs with --to)
	Version string    `json:"version"`
	Store   string    `json:"store"`
	Started time.Time `json:"started"`
	Undo    string    `json:"undo,omitempty"`
	// Finished is set once the unit was verified (or found to differ).
	Finished *time.Time `json:"finished,omitempty"`
	Verified bool       `json:"verified"`
	Result   string     `json:"result,omitempty"`
}

// restoresItself reports whether restoring unit replaces the ~/.pioreactor
// of the machine piosnap runs on: piosnap runs on the leader and unit's
// address is this machine. A unit on loopback is this machine only at the
// leader's own address: the simulator's units all listen on loopback.
func (a *app) restoresItself(cl *pioreactor.Client, unit string) bool {
	if !a.machine.isLeader(a.cfg) {
		return false
	}
	addr := cl.UnitAddress(unit)
	if !a.machine.isSelf(addr) {
		return false
	}
	if ip := net.ParseIP(hostOf(addr)); ip != nil && ip.IsLoopback() || hostOf(addr) == "localhost" {
		return addr == cl.LeaderAddress()
	}
	return true
}

func selfRestorePath(stateDir string) string { return filepath.Join(stateDir, selfRestoreFileName) }

// writeSelfRestore saves sr in state_dir.
func writeSelfRestore(stateDir string, sr *selfRestore) error {
	b, err := json.MarshalIndent(sr, "", "  ")
	if err != nil {
		return err
	}
	_, err = writeFileAtomic(selfRestorePath(stateDir), func(f *os.File) error {
		if err := f.Chmod(0o644); err != nil {
			return err
		}
		_, err := f.Write(append(b, '\n'))
		return err
	})
	return err
}

// dropSelfRestore forgets a pending restore of this machine that did not
// happen (the upload or the import failed), so that the daemon does not
// verify it. sr nil means there is none.
func dropSelfRestore(stateDir string, sr *selfRestore) {
	if sr != nil {
		_ = os.Remove(selfRestorePath(stateDir))
	}
}

// readSelfRestore returns the saved restore of this machine, or nil.
func readSelfRestore(stateDir string) (*selfRestore, error) {
	b, err := os.ReadFile(selfRestorePath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sr selfRestore
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", selfRestorePath(stateDir), err)
	}
	return &sr, nil
}

// finishSelfRestore verifies a restore of this machine that its reboot
// interrupted, logs the result and records it for `piosnap status`. The
// daemon runs it at start; it waits up to reboot_timeout for the unit's web
// server, which may start after piosnap.
func (a *app) finishSelfRestore(ctx context.Context, log *slog.Logger) {
	sr, err := readSelfRestore(a.cfg.StateDir)
	if err != nil {
		log.Error("cannot read the pending verification of a restore of this machine", "err", err)
		return
	}
	if sr == nil || sr.Finished != nil {
		return
	}
	log = log.With("unit", sr.Unit, "version", shortID(sr.Version))
	log.Info("finishing the restore of this machine that its reboot interrupted: verifying it")
	start := time.Now()
	diff, err := a.verifySelfRestore(ctx, sr)
	if ctx.Err() != nil {
		return // stopped: the next start tries again
	}
	now := time.Now().UTC()
	sr.Finished = &now
	switch {
	case err != nil:
		sr.Result = fmt.Sprintf("could not verify %s: %v", sr.Unit, err)
		log.Error("restore of this machine NOT verified", "err", err, "undo", sr.Undo)
	case !diff.Empty():
		sr.Result = fmt.Sprintf("%s differs from version %s: %s", sr.Unit, shortID(sr.Version), diff.Summary())
		log.Error("restore of this machine does not match the version", "differences", diff.Summary(), "undo", sr.Undo)
	default:
		sr.Verified = true
		sr.Result = fmt.Sprintf("restored and verified: %s matches version %s of %s", sr.Unit, shortID(sr.Version), sr.Host)
		log.Info("restore of this machine verified after its reboot", "took", time.Since(start).Round(time.Millisecond))
	}
	if err := writeSelfRestore(a.cfg.StateDir, sr); err != nil {
		log.Error("cannot record the verification of the restore", "err", err)
	}
}

// verifySelfRestore waits for the unit to answer, then compares it with the
// restored version.
func (a *app) verifySelfRestore(ctx context.Context, sr *selfRestore) (*restore.Diff, error) {
	stores, err := a.openReadable(ctx, sr.Store)
	if err != nil {
		return nil, err
	}
	vs, err := stores[0].Repo.Versions(ctx)
	if err != nil {
		return nil, err
	}
	v, err := store.FindVersion(vs, sr.Host, sr.Version)
	if err != nil {
		return nil, err
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(a.cfg.Pioreactor.RebootTimeout.Duration)
	for {
		_, err := cl.Health(ctx, sr.Unit)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not answer within %s (reboot_timeout): %w", sr.Unit, a.cfg.Pioreactor.RebootTimeout.Duration, err)
		}
		if err := store.Sleep(ctx, 2*time.Second); err != nil {
			return nil, err
		}
	}
	return restore.Verify(ctx, cl, stores[0].Repo, v, sr.Unit, nil)
}

// printSelfRestore shows the last restore of this machine in `piosnap
// status`.
func printSelfRestore(w io.Writer, sr *selfRestore, loc *time.Location) {
	if sr == nil {
		return
	}
	when := sr.Started.In(loc).Format("2006-01-02 15:04 MST")
	switch {
	case sr.Finished == nil:
		fmt.Fprintf(w, "\nrestore of this machine (%s) to version %s, %s: PENDING verification: the daemon verifies it when it starts\n", sr.Unit, shortID(sr.Version), when)
	case sr.Verified:
		fmt.Fprintf(w, "\nrestore of this machine (%s) to version %s, %s: %s\n", sr.Unit, shortID(sr.Version), when, sr.Result)
	default:
		fmt.Fprintf(w, "\nrestore of this machine (%s) to version %s, %s: FAILED: %s (to undo: %s)\n", sr.Unit, shortID(sr.Version), when, sr.Result, sr.Undo)
	}
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
