package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/store"
)

// Options configures a restore.
type Options struct {
	// Store holds Version, the version restored.
	Store   snapshot.Store
	Version *store.Version
	// Client reaches the cluster.
	Client *pioreactor.Client
	// Unit is the unit restored onto: Version.Host, or another unit with
	// RewriteHostname.
	Unit string
	// RewriteHostname rewrites the archive's unit name to Unit, cloning
	// Version.Host's configuration onto it.
	RewriteHostname bool
	// Encoding is how the archive is sent; the zero value, EncodingAuto,
	// chooses by its size.
	Encoding Encoding
	// DeflateAbove is the size of a STORED archive above which EncodingAuto
	// sends it DEFLATE-compressed; 0 means DefaultDeflateAbove.
	DeflateAbove int64
	// CheckAll makes Prepare read and verify every chunk (a dry run).
	CheckAll bool
	// NoSafety skips the safety snapshot.
	NoSafety bool
	// NoWait ends Run once the unit has accepted the upload.
	NoWait bool
	// LockWait is how long an import already running on the unit is
	// waited for.
	LockWait time.Duration
	// RebootTimeout bounds the wait for a unit to reboot and answer again.
	RebootTimeout time.Duration
	// Self is set when Unit is the machine piosnap runs on: the import's
	// reboot ends the restore, so a Record in StateDir carries the
	// verification across it.
	Self     bool
	StateDir string
	// Safety takes the safety snapshot: one backup of unit into Store,
	// of kind store.KindSafety with note, holding the store's lock. It is
	// not called with NoSafety.
	Safety func(ctx context.Context, unit, note string) (*snapshot.Report, error)
	// Report receives every event, in order; nil discards them. KindSent
	// comes from the goroutine that sends the upload.
	Report func(Event)
}

// Encoding says how the archive is sent to the unit.
type Encoding int

const (
	// EncodingAuto sends the archive STORED when it is at most
	// Options.DeflateAbove bytes, and DEFLATE-compressed when larger.
	EncodingAuto Encoding = iota
	// EncodingStored sends every entry as it is. The archive's length is
	// known from the manifest, so it is rebuilt while it is sent.
	EncodingStored
	// EncodingDeflate compresses the archive (about a quarter of the bytes
	// for a database) into a temporary file first, then sends it.
	EncodingDeflate
)

// DefaultDeflateAbove is EncodingAuto's threshold. Pioreactor holds an
// uploaded archive in RAM several times over: the leader saves it in /tmp,
// which is in RAM, and keeps two copies in memory while it passes it on, and
// the unit saves it in /tmp again beside the extracted files and a copy of
// its current ~/.pioreactor. Sending a large database STORED would cost a
// Raspberry Pi four times the memory of a compressed one; up to this size,
// the difference is small and STORED spares the compression.
const DefaultDeflateAbove = 64 << 20

// A Restore is a prepared restore: the version is held against retention,
// checked, its archive laid out, and the unit ready for an import. Run
// carries it out; Close releases it.
type Restore struct {
	o    Options
	v    *store.Version
	hold *store.RepoLock
	src  *Source
	// build, when not nil, compresses the archive while Run takes the
	// safety snapshot; src is set once it is done.
	build *build
}

// BlockedError means the unit refused the import before anything happened,
// for a reason the user must act on first (a sentinel file, the wrong unit
// at the address, a wrong password).
type BlockedError struct {
	// Unit refused the import for the reason Err.
	Unit string
	Err  error
}

// Error says that nothing was uploaded.
func (e *BlockedError) Error() string {
	return fmt.Sprintf("%s cannot take an import now: %v (nothing was uploaded)", e.Unit, e.Err)
}

// Unwrap returns the unit's reason.
func (e *BlockedError) Unwrap() error { return e.Err }

// Prepare holds the version against retention, checks it, lays out its
// archive (with CheckAll, reading every chunk) and waits until the unit can
// take an import. It uploads nothing. An archive sent compressed is
// compressed here with CheckAll or NoSafety, and otherwise in the
// background while Run takes the safety snapshot. Call Close on the
// returned Restore.
func Prepare(ctx context.Context, o Options) (_ *Restore, err error) {
	v, s := o.Version, o.Store
	r := &Restore{o: o, v: v}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.hold, err = s.Repo.Hold(ctx, "restore", v.ID); err != nil {
		return nil, fmt.Errorf("hold version %s against retention: %w", v.ShortID(), err)
	}
	r.report(Event{Kind: KindStep, Step: StepCheck, State: StateRunning})
	replace, err := CheckVersion(ctx, s.Repo, v, o.Unit, o.RewriteHostname)
	if err != nil {
		return nil, fmt.Errorf("version %s cannot be restored onto %s: %w (nothing was uploaded)", v.ShortID(), o.Unit, err)
	}
	if o.Unit != v.Host {
		r.report(Event{Kind: KindCloning, Unit: o.Unit, Host: v.Host})
	}
	deflate, stored, err := r.layout(ctx, replace)
	if err != nil {
		return nil, r.rebuildErr(err)
	}
	switch {
	case !deflate && o.CheckAll:
		start := time.Now()
		r.src = stored
		if err := r.src.Check(ctx); err != nil {
			return nil, r.rebuildErr(err)
		}
		r.report(Event{Kind: KindRebuilt, Unit: o.Unit, Size: r.src.Size(), Took: time.Since(start).Round(100 * time.Millisecond)})
	case !deflate:
		r.src = stored
		r.report(Event{Kind: KindStreaming, Unit: o.Unit, Size: r.src.Size()})
		// The first chunks are read while the unit is probed and the
		// safety snapshot taken, so the upload starts sending at once.
		r.src.Prime(ctx)
	case o.CheckAll || o.NoSafety:
		// Nothing to overlap the compression with.
		start := time.Now()
		if r.src, err = NewSource(ctx, s.Repo, v, replace, true); err != nil {
			return nil, r.rebuildErr(err)
		}
		r.report(Event{Kind: KindRebuilt, Unit: o.Unit, Size: r.src.Size(), Took: time.Since(start).Round(100 * time.Millisecond)})
	default:
		// Compressed while the safety snapshot is taken; Run waits for it.
		r.build = startBuild(ctx, s.Repo, v, replace)
	}
	if err := r.waitUnitReady(ctx); err != nil {
		return nil, err
	}
	r.report(Event{Kind: KindReady, Unit: o.Unit})
	r.report(Event{Kind: KindStep, Step: StepCheck, State: StateDone})
	if o.Self {
		r.report(Event{Kind: KindSelf, Unit: o.Unit, Path: RecordPath(o.StateDir), Self: true})
	}
	return r, nil
}

// layout says whether the archive is sent DEFLATE-compressed, as Options
// ask, and otherwise lays it out STORED.
func (r *Restore) layout(ctx context.Context, replace map[string][]byte) (deflate bool, stored *Source, err error) {
	o, repo := r.o, r.o.Store.Repo
	if o.Encoding == EncodingDeflate {
		return true, nil, nil
	}
	if stored, err = NewSource(ctx, repo, r.v, replace, false); err != nil || o.Encoding == EncodingStored {
		return false, stored, err
	}
	above := o.DeflateAbove
	if above <= 0 {
		above = DefaultDeflateAbove
	}
	if stored.Size() <= above {
		return false, stored, nil
	}
	stored.Close()
	r.report(Event{Kind: KindCompressing, Unit: o.Unit, Size: stored.Size()})
	return true, nil, nil
}

// rebuildErr says that the archive could not be rebuilt, so nothing was
// uploaded.
func (r *Restore) rebuildErr(err error) error {
	return fmt.Errorf("rebuild version %s from store %s: %w (nothing was uploaded; run `piosnap check --read-data --store %s` and `piosnap repair --store %s`, or restore from another store with --store)", r.v.ShortID(), r.o.Store.Name, err, r.o.Store.Name, r.o.Store.Name)
}

// build is an archive being compressed in the background.
type build struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when src or err is set
	src    *Source
	err    error
	took   time.Duration
}

func startBuild(ctx context.Context, repo *store.Repository, v *store.Version, replace map[string][]byte) *build {
	ctx, cancel := context.WithCancel(ctx)
	b := &build{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		start := time.Now()
		b.src, b.err = NewSource(ctx, repo, v, replace, true)
		b.took = time.Since(start)
	}()
	return b
}

// awaitBuild waits for the archive compressed in the background, if any.
func (r *Restore) awaitBuild(ctx context.Context) error {
	b := r.build
	if b == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("compress the archive of version %s: %w (nothing was uploaded)", r.v.ShortID(), ctx.Err())
	case <-b.done:
	}
	r.build = nil
	if b.err != nil {
		return r.rebuildErr(b.err)
	}
	r.src = b.src
	r.report(Event{Kind: KindRebuilt, Unit: r.o.Unit, Size: r.src.Size(), Took: b.took.Round(100 * time.Millisecond)})
	return nil
}

// Close releases the version's hold and the archive's temporary file.
func (r *Restore) Close() {
	if b := r.build; b != nil {
		b.cancel()
		<-b.done
		if b.src != nil {
			b.src.Close()
		}
		r.build = nil
	}
	if r.src != nil {
		r.src.Close()
		r.src = nil
	}
	if r.hold != nil {
		_ = r.hold.Unlock(context.Background())
		r.hold = nil
	}
}

// Run takes the safety snapshot, uploads the archive, waits for the import
// and the reboot and verifies the unit. Every error says what was (not)
// done and, past the safety snapshot, how to undo the restore.
func (r *Restore) Run(ctx context.Context) error {
	o, v, s := r.o, r.v, r.o.Store
	target := o.Unit
	undo := ""
	if o.NoSafety {
		r.report(Event{Kind: KindNoSafety, Unit: target})
		r.report(Event{Kind: KindStep, Step: StepSafety, State: StateSkipped})
	} else {
		r.report(Event{Kind: KindStep, Step: StepSafety, State: StateRunning})
		start := time.Now()
		id, err := r.safetySnapshot(ctx)
		if err != nil {
			return err
		}
		took := time.Since(start).Round(100 * time.Millisecond)
		r.report(Event{Kind: KindStep, Step: StepSafety, State: StateDone, SafetyVersion: id, SafetyStore: s.Name})
		undo = fmt.Sprintf("piosnap restore --host %s --version %s --store %s", target, id[:8], s.Name)
		r.report(Event{Kind: KindSafetyTaken, Unit: target, Took: took, SafetyVersion: id, SafetyStore: s.Name, Undo: undo})
	}
	if err := r.awaitBuild(ctx); err != nil {
		return err
	}

	var rec *Record
	if o.Self {
		rec = &Record{Unit: target, Host: v.Host, Version: v.ID, Store: s.Name, Started: time.Now().UTC(), Undo: undo}
		if err := WriteRecord(o.StateDir, rec); err != nil {
			r.report(Event{Kind: KindRecordNotSaved, Unit: target, Err: err})
			rec = nil
		}
	}

	cl := o.Client
	deadline := time.Now().Add(o.LockWait)
	for {
		task, err := r.upload(ctx)
		if errors.Is(err, pioreactor.ErrImportLocked) && time.Now().Before(deadline) {
			if err := r.waitLocked(ctx, task); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			dropRecord(o.StateDir, rec) // the unit imported nothing
			return withUndo(err, undo)
		}
		if o.NoWait {
			r.report(Event{Kind: KindAcceptedNoWait, Unit: target, TaskID: task.TaskID, Self: rec != nil})
			return nil
		}
		rt := o.RebootTimeout
		r.report(Event{Kind: KindAccepted, Unit: target, Wait: rt})
		r.report(Event{Kind: KindStep, Step: StepImport, State: StateRunning})
		start := time.Now()
		outcome, err := cl.WaitImport(ctx, target, task, pioreactor.WaitOptions{RebootTimeout: rt, ComeBackTimeout: rt, Imported: func() {
			r.report(Event{Kind: KindStep, Step: StepImport, State: StateDone})
			r.report(Event{Kind: KindStep, Step: StepReboot, State: StateRunning})
		}})
		waited := time.Since(start).Round(100 * time.Millisecond)
		r.report(Event{Kind: KindWaitEnded, Unit: target, Took: waited})
		if errors.Is(err, pioreactor.ErrImportLocked) && time.Now().Before(deadline) {
			if err := r.waitLocked(ctx, task); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if errors.Is(err, pioreactor.ErrImportFailed) {
				dropRecord(o.StateDir, rec) // the unit kept its files
			}
			return withUndo(fmt.Errorf("restore of version %s onto %s: %w", v.ShortID(), target, err), undo)
		}
		r.report(Event{Kind: KindRebooted, Unit: outcome.Unit, Took: waited})
		r.report(Event{Kind: KindStep, Step: StepReboot, State: StateDone})
		break
	}
	r.report(Event{Kind: KindStep, Step: StepVerify, State: StateRunning})
	start := time.Now()
	diff, err := Verify(ctx, cl, s.Repo, v, target, func(n int64) { r.report(Event{Kind: KindExported, Unit: target, Size: n}) })
	verified := time.Since(start).Round(100 * time.Millisecond)
	r.report(Event{Kind: KindVerifyEnded, Unit: target, Took: verified})
	if err != nil {
		return withUndo(fmt.Errorf("verify %s: %w", target, err), undo)
	}
	if rec != nil {
		// This command survived the reboot and verified the restore itself.
		rec.finish(diff, nil)
		if err := WriteRecord(o.StateDir, rec); err != nil {
			r.report(Event{Kind: KindRecordNotUpdated, Unit: target, Err: err})
		}
	}
	if !diff.Empty() {
		r.report(Event{Kind: KindDiffers, Unit: target, Host: v.Host, Diff: diff})
		return withUndo(fmt.Errorf("%s was restored but does not match version %s (%s)", target, v.ShortID(), diff.Summary()), undo)
	}
	r.report(Event{Kind: KindVerified, Unit: target, Host: v.Host, Took: verified})
	return nil
}

// report passes ev on to Options.Report.
func (r *Restore) report(ev Event) {
	if r.o.Report != nil {
		r.o.Report(ev)
	}
}

// withUndo appends how to undo a half-done restore to err.
func withUndo(err error, undo string) error {
	if undo == "" {
		return err
	}
	return fmt.Errorf("%w; to go back to the state before the restore: %s", err, undo)
}
