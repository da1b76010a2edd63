package daemon

import (
	"context"
	"io"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/retention"
)

// App is the command line's work that the daemon runs, bound to one
// configuration and logger (see Options.App). Its methods say what they
// did in that logger, as the commands do.
type App interface {
	Backupper
	Restorer
	Reporter
}

// Backupper is what a scheduled run needs: the stores, their locks, a
// backup and retention, as `piosnap backup` and `piosnap forget` do them.
type Backupper interface {
	// OpenForBackup opens every store for a backup run. A store that
	// cannot be opened is returned with Err set; at least one must open.
	OpenForBackup(ctx context.Context) ([]snapshot.Store, error)
	// OpenReadable opens the named stores (all without names), each on
	// its own: a store that cannot be opened is logged and returned with
	// Err set.
	OpenReadable(ctx context.Context, names ...string) ([]snapshot.Store, error)
	// Lock takes the stores' locks for a backup run, waiting as the
	// configuration says; unlock releases them.
	Lock(ctx context.Context, stores []snapshot.Store) (unlock func(), err error)
	// Backup backs up hosts (nil: every host but the sources in except)
	// into stores as the run runID.
	Backup(ctx context.Context, stores []snapshot.Store, hosts, except []string, runID string) (*snapshot.Report, error)
	// Forget applies the retention policy p to the store s, whose lock
	// the caller holds; units are the hosts backed up by the run. It
	// returns the versions it removed and the bytes it freed.
	Forget(ctx context.Context, s snapshot.Store, p retention.Policy, units []string) (removed int, freed int64, err error)
}

// Restorer is what the web page's restores need, as `piosnap restore`
// does them. Their output goes to out and their steps to events.
type Restorer interface {
	// DryRun picks the version req names and checks its restore without
	// changing anything (`piosnap restore --dry-run`). The plan it
	// returns names the version; the daemon adds the output's lines.
	DryRun(ctx context.Context, req web.RestoreRequest, out io.Writer, events func(web.Event)) (*web.Plan, error)
	// Restore restores the exact version req names (`piosnap restore
	// --yes`).
	Restore(ctx context.Context, req web.RestoreRequest, out io.Writer, events func(web.Event)) error
	// FinishSelfRestore verifies a restore of this machine that its
	// reboot interrupted, if there is one. The daemon runs it at start.
	FinishSelfRestore(ctx context.Context)
}

// Reporter is what the web page reads, in the command line's formats.
type Reporter interface {
	// OpenEach opens every store on its own: a store that cannot be
	// opened is returned with Err set.
	OpenEach(ctx context.Context) ([]snapshot.Store, error)
	// Units asks the cluster's leader for its units.
	Units(ctx context.Context) ([]string, error)
	// StatusJSON is `piosnap status --json` of r.
	StatusJSON(r Report) ([]byte, error)
	// ListJSON is `piosnap list --json` of vs, of host only unless host is
	// empty.
	ListJSON(vs []web.StoreVersions, host string) ([]byte, error)
	// Notices are the notes the pages show above everything else: the
	// last restore of this machine, which the page that started it lost
	// in the reboot.
	Notices() []string
}

// Report is what `piosnap status` shows, as the daemon knows it: its own
// state instead of the status file, and the versions it has read.
type Report struct {
	// Now is the time the report is made at.
	Now time.Time
	// StatusPath is the status file's path; Status its content now.
	StatusPath string
	Status     *StatusFile
	// Versions are each readable store's versions, by store name;
	// StoreErrors say why the others could not be read.
	Versions    map[string][]*store.Version
	StoreErrors []string
	// Units are the hosts that belong to the configuration now: the
	// leader's units and the directory sources. UnitsErr says why they
	// are not known.
	Units    []string
	UnitsErr error
}
