package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/store"
)

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

// readSelfRestore returns the saved restore of this machine, or nil.
func readSelfRestore(stateDir string) (*restore.Record, error) { return restore.ReadRecord(stateDir) }

// finishSelfRestore verifies a restore of this machine that its reboot
// interrupted, logs the result and records it for `piosnap status` (see
// restore.FinishSelf). The daemon runs it at start.
func (a *app) finishSelfRestore(ctx context.Context, log *slog.Logger) {
	restore.FinishSelf(ctx, restore.SelfOptions{
		StateDir:      a.cfg.StateDir,
		RebootTimeout: a.cfg.Pioreactor.RebootTimeout.Duration,
		Open: func(ctx context.Context, name string) (*store.Repository, error) {
			stores, err := a.openReadable(ctx, name)
			if err != nil {
				return nil, err
			}
			if stores[0].Err != nil {
				return nil, fmt.Errorf("store %q: %w", name, stores[0].Err)
			}
			return stores[0].Repo, nil
		},
		Client: a.client,
		Log:    log,
	})
}

// printSelfRestore shows the last restore of this machine in `piosnap
// status`.
func printSelfRestore(w io.Writer, sr *restore.Record, loc *time.Location) {
	if sr == nil {
		return
	}
	when := sr.Started.In(loc).Format("2006-01-02 15:04 MST")
	switch {
	case sr.Finished == nil:
		fmt.Fprintf(w, "\nrestore of this machine (%s) to version %s, %s: PENDING verification: the daemon verifies it when it starts\n", sr.Unit, sr.ShortVersion(), when)
	case sr.Verified:
		fmt.Fprintf(w, "\nrestore of this machine (%s) to version %s, %s: %s\n", sr.Unit, sr.ShortVersion(), when, sr.Result)
	default:
		fmt.Fprintf(w, "\nrestore of this machine (%s) to version %s, %s: FAILED: %s (to undo: %s)\n", sr.Unit, sr.ShortVersion(), when, sr.Result, sr.Undo)
	}
}
