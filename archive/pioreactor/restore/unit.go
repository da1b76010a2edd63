package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/store"
)

// rebootGrace is how long a unit that just finished another import is
// watched for the reboot a successful import triggers (2 s on Pioreactor,
// plus shutdown).
const rebootGrace = 15 * time.Second

// waitUnitReady asks the unit itself what would block an import, since the
// leader hides the unit's reasons behind a 502. An import already running is
// waited for up to LockWait, and the reboot that follows it up to
// RebootTimeout; anything else stops the restore.
func (r *Restore) waitUnitReady(ctx context.Context) error {
	cl, unit, lockWait, rebootTimeout := r.o.Client, r.o.Unit, r.o.LockWait, r.o.RebootTimeout
	lockDeadline := time.Now().Add(lockWait)
	var downSince time.Time // when the unit went down after the import we waited for
	var upSince time.Time   // when the unit was free again, before its reboot
	sawImport := false
	for {
		err := cl.Probe(ctx, unit)
		switch {
		case err == nil && (!sawImport || !downSince.IsZero()):
			return nil
		case err == nil && upSince.IsZero():
			// The other import finished; a successful one reboots the unit
			// seconds later, which must not hit our upload.
			upSince = time.Now()
		case err == nil && time.Since(upSince) > rebootGrace:
			return nil // it did not reboot: that import failed
		}
		if err == nil {
			if err := store.Sleep(ctx, 500*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		locked := errors.Is(err, pioreactor.ErrImportLocked)
		rebooting := sawImport && errors.Is(err, pioreactor.ErrUnreachable)
		blocked := errors.Is(err, pioreactor.ErrSentinel) || errors.Is(err, pioreactor.ErrWrongUnit) || errors.Is(err, pioreactor.ErrUnauthorized)
		switch {
		case blocked:
			// Refused before anything happened: the user must act first.
			return &BlockedError{Unit: unit, Err: err}
		case !locked && !rebooting:
			return fmt.Errorf("%s cannot take an import now: %w (nothing was uploaded)", unit, err)
		case locked && time.Now().After(lockDeadline):
			return fmt.Errorf("%s is still running another import after %s: %w (nothing was uploaded; retry later or raise --lock-wait)", unit, lockWait, err)
		case locked:
			downSince = time.Time{}
			if !sawImport {
				r.report(Event{Kind: KindImportRunning, Unit: unit, Wait: lockWait})
			}
			sawImport = true
		case downSince.IsZero():
			downSince = time.Now()
			r.report(Event{Kind: KindRebootingAfter, Unit: unit, Wait: rebootTimeout})
		case time.Since(downSince) > rebootTimeout:
			return fmt.Errorf("%s did not come back within %s (reboot_timeout) after the import it was running: %w (nothing was uploaded)", unit, rebootTimeout, err)
		}
		if err := store.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitLocked pauses before uploading again after the unit said another
// import holds its lock.
func (r *Restore) waitLocked(ctx context.Context, task *pioreactor.Task) error {
	d := time.Second
	if task != nil && task.RetryAfter > d {
		d = task.RetryAfter
	}
	r.report(Event{Kind: KindLocked, Unit: r.o.Unit, Wait: d})
	return store.Sleep(ctx, d)
}

// safetySnapshot stores the unit's current state as a KindSafety version in
// the store and returns its ID.
func (r *Restore) safetySnapshot(ctx context.Context) (string, error) {
	unit := r.o.Unit
	fail := func(err error) error {
		return fmt.Errorf("safety snapshot of %s failed: %w (nothing was uploaded; fix this, or pass --no-safety-snapshot to restore with no way back)", unit, err)
	}
	if r.o.Safety == nil {
		return "", fail(errors.New("no way to take it was given"))
	}
	rep, err := r.o.Safety(ctx, unit, "before restore of version "+r.v.ShortID())
	if err != nil {
		return "", fail(err)
	}
	for _, h := range rep.Hosts {
		if h.Host != unit {
			continue
		}
		if err := h.Err(); err != nil {
			return "", fail(err)
		}
		for _, sr := range h.Stores {
			if sr.Error != "" {
				return "", fail(fmt.Errorf("store %q: %s", sr.Store, sr.Error))
			}
			if len(sr.VersionID) >= 8 {
				return sr.VersionID, nil
			}
		}
	}
	return "", fail(errors.New("the run stored no version of it"))
}

// upload streams the rebuilt archive to the unit through the leader. When
// the leader masks the unit's refusal, the unit is asked for the reason.
func (r *Restore) upload(ctx context.Context) (*pioreactor.Task, error) {
	cl, unit, size := r.o.Client, r.o.Unit, r.src.Size()
	body, wait := r.src.Stream(ctx)
	r.report(Event{Kind: KindStep, Step: StepUpload, State: StateRunning, Unit: unit, Total: size})
	start := time.Now()
	task, err := cl.Import(ctx, unit, body, size, func(sent int64) {
		r.report(Event{Kind: KindSent, Unit: unit, Sent: sent, Total: size})
	})
	body.Close()
	werr := wait()
	r.report(Event{Kind: KindUploadEnded, Unit: unit})
	if werr != nil && !errors.Is(werr, io.ErrClosedPipe) && ctx.Err() == nil {
		// The archive broke off before its end, so the unit never received a
		// whole one and imported nothing.
		return nil, fmt.Errorf("rebuild the archive of the version from the repository: %w (the upload to %s was cut short, so it imported nothing; run `piosnap check --read-data`)", werr, unit)
	}
	if err != nil {
		if errors.Is(err, pioreactor.ErrLeaderMasked) {
			if perr := cl.Probe(ctx, unit); perr != nil {
				return nil, fmt.Errorf("upload to %s refused: %w", unit, perr)
			}
		}
		return task, fmt.Errorf("upload to %s: %w", unit, err)
	}
	el := time.Since(start)
	r.report(Event{Kind: KindStep, Step: StepUpload, State: StateDone, Unit: unit, Sent: size, Total: size})
	r.report(Event{Kind: KindUploaded, Unit: unit, Size: size, Took: el})
	return task, nil
}
