package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/store"
)

// events collects a restore's events.
type events struct {
	mu  sync.Mutex
	evs []restore.Event
}

func (e *events) add(ev restore.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

// steps lists the step changes as "step:state".
func (e *events) steps() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		if ev.Kind == restore.KindStep {
			out = append(out, string(ev.Step)+":"+string(ev.State))
		}
	}
	return out
}

// index returns the position of the first event of kind k, or -1.
func (e *events) index(k restore.Kind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.evs {
		if e.evs[i].Kind == k {
			return i
		}
	}
	return -1
}

// find returns the first event of kind k, or nil.
func (e *events) find(k restore.Kind) *restore.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.evs {
		if e.evs[i].Kind == k {
			return &e.evs[i]
		}
	}
	return nil
}

// options restores r's version onto unit, reporting to evs.
func (r *rig) options(unit string, evs *events) restore.Options {
	return restore.Options{
		Store: r.st, Version: r.v, Client: r.cl, Unit: unit,
		LockWait: time.Minute, RebootTimeout: 2 * time.Minute,
		Safety: func(ctx context.Context, unit, note string) (*snapshot.Report, error) {
			return r.backup(ctx, unit, store.KindSafety, note)
		},
		Report: evs.add,
	}
}

// TestRestore restores worker1's version over a changed worker1 and checks
// the steps, the safety snapshot, the undo command and the unit.
func TestRestore(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	w1 := r.cluster.Unit("worker1")
	if err := w1.WriteCalibration("od90", "after-backup", "x: 1\n"); err != nil {
		t.Fatal(err)
	}
	var evs events
	p, err := restore.Prepare(ctx, r.options("worker1", &evs))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"check:running", "check:done", "safety:running", "safety:done", "upload:running", "upload:done",
		"import:running", "import:done", "reboot:running", "reboot:done", "verify:running"}
	if got := evs.steps(); !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(w1.Dir(), "storage/calibrations/od90/after-backup.yaml")); !os.IsNotExist(err) {
		t.Errorf("the calibration written after the backup survived the restore: %v", err)
	}
	taken := evs.find(restore.KindSafetyTaken)
	if taken == nil || !strings.HasPrefix(taken.Undo, "piosnap restore --host worker1 --version "+taken.SafetyVersion[:8]) {
		t.Fatalf("safety snapshot event %+v; want one with the undo command", taken)
	}
	vs, err := r.st.Repo.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	safety, err := store.FindVersion(vs, "worker1", taken.SafetyVersion)
	if err != nil || safety.Kind != store.KindSafety {
		t.Errorf("safety version %+v, %v; want kind %s", safety, err, store.KindSafety)
	}
	if ev := evs.find(restore.KindVerified); ev == nil {
		t.Error("no verified event")
	}
	if w1.Imports() != 1 {
		t.Errorf("worker1 imported %d archives, want 1", w1.Imports())
	}
}

// TestPrepareChangesNothing: a dry run checks everything, and a unit that
// refuses imports stops the restore before any upload, with BlockedError.
func TestPrepareChangesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	var evs events
	o := r.options("worker1", &evs)
	o.CheckAll = true
	p, err := restore.Prepare(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if got, want := evs.steps(), []string{"check:running", "check:done"}; !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
	if evs.find(restore.KindRebuilt) == nil || evs.find(restore.KindReady) == nil {
		t.Error("a dry run did not report the archive checked and the unit ready")
	}

	w2 := r.cluster.Unit("worker2")
	if err := w2.SetSentinel(true); err != nil {
		t.Fatal(err)
	}
	o = r.options("worker2", &events{})
	_, err = restore.Prepare(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "--rewrite-hostname") {
		t.Errorf("cloning without RewriteHostname: %v, want a refusal naming --rewrite-hostname", err)
	}
	o.RewriteHostname = true
	_, err = restore.Prepare(ctx, o)
	var be *restore.BlockedError
	if !errors.As(err, &be) || !errors.Is(err, pioreactor.ErrSentinel) || !strings.Contains(err.Error(), "nothing was uploaded") {
		t.Errorf("unit with the sentinel: %v; want a BlockedError wrapping ErrSentinel", err)
	}
	if r.cluster.Unit("worker1").Imports()+w2.Imports() != 0 {
		t.Error("a unit imported an archive")
	}
}

// TestRestoreSelf: a restore of this machine saves a Record before the
// upload and records its verification.
func TestRestoreSelf(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	// The restore that does not wait comes last: nothing waits for its reboot.
	for _, noWait := range []bool{false, true} {
		var evs events
		o := r.options("worker1", &evs)
		o.Self, o.StateDir, o.NoWait, o.NoSafety = true, t.TempDir(), noWait, true
		p, err := restore.Prepare(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(ctx)
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ev := evs.find(restore.KindSelf); ev == nil || ev.Path != restore.RecordPath(o.StateDir) {
			t.Errorf("no wait %v: self event %+v", noWait, ev)
		}
		rec, err := restore.ReadRecord(o.StateDir)
		if err != nil || rec == nil || rec.Unit != "worker1" || rec.Version != r.v.ID || (rec.Finished == nil) != noWait || rec.Verified == noWait {
			t.Errorf("no wait %v: record %+v, %v", noWait, rec, err)
		}
		if noWait {
			if ev := evs.find(restore.KindAcceptedNoWait); ev == nil || !ev.Self {
				t.Errorf("accepted event %+v, want Self set", ev)
			}
		}
	}
}

// TestRestoreImportFails: when the unit's import fails, the unit kept its
// files, the error says how to undo, and no Record is left for the daemon.
func TestRestoreImportFails(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	r.cluster.Unit("worker1").FailNextImport("disk full")
	var evs events
	o := r.options("worker1", &evs)
	o.Self, o.StateDir = true, t.TempDir()
	p, err := restore.Prepare(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Run(ctx)
	if !errors.Is(err, pioreactor.ErrImportFailed) || !strings.Contains(err.Error(), "to go back to the state before the restore: piosnap restore --host worker1 --version ") {
		t.Errorf("Run = %v; want ErrImportFailed with the undo command", err)
	}
	if rec, err := restore.ReadRecord(o.StateDir); rec != nil || err != nil {
		t.Errorf("after a failed import the record is %+v (%v); want none", rec, err)
	}
	if evs.find(restore.KindWaitEnded) == nil || evs.find(restore.KindVerified) != nil {
		t.Error("want the wait ended and nothing verified")
	}
}
