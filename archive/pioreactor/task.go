package pioreactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/piosnap/piosnap/store"
)

// TaskState is the normalized state of a unit's background task.
type TaskState string

// Task states. Older releases' spellings are mapped onto these.
const (
	// TaskPending: not finished, unknown id, or result lost in a reboot.
	TaskPending TaskState = "pending"
	// TaskRunning: the task hit the import lock held by another import; it
	// will not run.
	TaskRunning TaskState = "running"
	// TaskSucceeded: the task finished; after an import the unit reboots.
	TaskSucceeded TaskState = "succeeded"
	// TaskFailed: the task raised; Error says why.
	TaskFailed TaskState = "failed"
)

// TaskStatus is a unit's reply to GET /unit_api/task_results/<id>.
type TaskStatus struct {
	State TaskState
	// Raw is the status string as sent ("pending or not present",
	// "complete", ... on releases before 26.4.4).
	Raw                       string
	Result                    json.RawMessage
	Error, Cause, Remediation string
}

type taskResultBody struct {
	Status      string          `json:"status"`
	Result      json.RawMessage `json:"result"`
	Error       string          `json:"error"`
	Cause       string          `json:"cause"`
	Remediation string          `json:"remediation"`
}

// TaskResult asks unit directly for the state of its task taskID. It reads
// both the ≥ 26.4.4 contract (202 pending/running, 200 succeeded/failed) and
// the older one (202 "pending or not present", 200 "complete", 500 "failed").
func (c *Client) TaskResult(ctx context.Context, unit, taskID string) (TaskStatus, error) {
	to := c.unitTarget(unit)
	resp, err := c.do(ctx, request{method: http.MethodGet, to: to, path: "/unit_api/task_results/" + url.PathEscape(taskID)})
	if err != nil {
		return TaskStatus{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody))
	if err != nil {
		return TaskStatus{}, fmt.Errorf("pioreactor: task %s on %s: read reply: %w", taskID, unit, err)
	}
	var b taskResultBody
	jsonErr := json.Unmarshal(raw, &b)
	st := TaskStatus{Raw: b.Status, Result: b.Result, Error: b.Error, Cause: b.Cause, Remediation: b.Remediation}
	switch {
	case jsonErr == nil && resp.StatusCode == http.StatusAccepted && (b.Status == "pending" || b.Status == "pending or not present"):
		st.State = TaskPending
	case jsonErr == nil && resp.StatusCode == http.StatusAccepted && (b.Status == "running" || b.Status == "in_progress"):
		st.State = TaskRunning
	case jsonErr == nil && resp.StatusCode == http.StatusOK && (b.Status == "succeeded" || b.Status == "complete"):
		st.State = TaskSucceeded
	case jsonErr == nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusInternalServerError) && b.Status == "failed":
		st.State = TaskFailed
	case resp.StatusCode/100 != 2:
		return TaskStatus{}, c.explain(parseAPIError(resp.Request.Method, resp.Request.URL.String(), resp.StatusCode, raw), "task result", to, unit)
	default:
		return TaskStatus{}, &Error{Kind: ErrProtocol, Unit: unit,
			Msg: fmt.Sprintf("%s answered HTTP %d with status %q for task %s: expected pending, running, succeeded or failed; check the Pioreactor version",
				unit, resp.StatusCode, b.Status, taskID)}
	}
	return st, nil
}

// Default WaitOptions values.
const (
	DefaultPollInterval    = 750 * time.Millisecond
	DefaultPendingTimeout  = 30 * time.Minute
	DefaultRebootTimeout   = 2 * time.Minute
	DefaultComeBackTimeout = 5 * time.Minute
)

// WaitOptions tunes WaitImport. Zero fields take the Default* values.
type WaitOptions struct {
	// PollInterval is the pause between two polls.
	PollInterval time.Duration
	// PendingTimeout bounds how long the task may stay pending while the
	// unit keeps answering.
	PendingTimeout time.Duration
	// RebootTimeout bounds the wait for the unit to go down after the task
	// succeeded.
	RebootTimeout time.Duration
	// ComeBackTimeout bounds the wait for the unit to answer again once it
	// has gone down.
	ComeBackTimeout time.Duration
	// Imported, if set, is called once the import is over and the wait for
	// the reboot begins.
	Imported func()
}

func (o WaitOptions) withDefaults() WaitOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PollInterval, DefaultPollInterval)
	def(&o.PendingTimeout, DefaultPendingTimeout)
	def(&o.RebootTimeout, DefaultRebootTimeout)
	def(&o.ComeBackTimeout, DefaultComeBackTimeout)
	return o
}

func (o WaitOptions) imported() {
	if o.Imported != nil {
		o.Imported()
	}
}

// ImportOutcome says how an import ended.
type ImportOutcome struct {
	Unit string
	// Succeeded: the unit reported the task succeeded. It is false when the
	// unit went down before a poll saw the result; the import then most
	// likely succeeded (the unit reboots only after it), and re-exporting
	// the unit confirms it.
	Succeeded bool
	// Rebooted: the unit went down and answered again.
	Rebooted bool
	// Health is the unit's health reply after it came back.
	Health Health
}

// WaitImport follows task on unit until the import has finished and the
// unit has rebooted and answers again. A failed task matches
// ErrImportFailed; a task refused by the import lock matches
// ErrImportLocked (upload again later); a unit that does not reboot or does
// not come back matches ErrNoReboot or ErrNoComeback.
func (c *Client) WaitImport(ctx context.Context, unit string, task *Task, opts WaitOptions) (ImportOutcome, error) {
	o := opts.withDefaults()
	out := ImportOutcome{Unit: unit}
	if task == nil || task.TaskID == "" {
		return out, &Error{Kind: ErrProtocol, Unit: unit,
			Msg: fmt.Sprintf("%s accepted the import without a task id to follow (is it running with TESTING=1?): export %s again to check", unit, unit)}
	}
	deadline := time.Now().Add(o.PendingTimeout)
	for {
		st, err := c.TaskResult(ctx, unit, task.TaskID)
		switch {
		case errors.Is(err, ErrUnreachable):
			// Accepted, then gone: most likely rebooting after the import.
			o.imported()
			return c.waitComeBack(ctx, out, o)
		case err != nil:
			return out, err
		case st.State == TaskSucceeded:
			out.Succeeded = true
			o.imported()
			return c.waitReboot(ctx, out, task.TaskID, o)
		case st.State == TaskFailed:
			return out, importFailed(unit, st)
		case st.State == TaskRunning:
			return out, &Error{Kind: ErrImportLocked, Unit: unit,
				Msg: fmt.Sprintf("%s was already running another import, so task %s did not run: wait for it to finish, then upload again", unit, task.TaskID)}
		}
		if time.Now().After(deadline) {
			return out, &Error{Kind: ErrProtocol, Unit: unit,
				Msg: fmt.Sprintf("import task %s on %s is still pending after %s: check the unit's logs and whether it is importing", task.TaskID, unit, o.PendingTimeout)}
		}
		if err := store.Sleep(ctx, o.PollInterval); err != nil {
			return out, fmt.Errorf("pioreactor: wait for import into %s: %w", unit, err)
		}
	}
}

// importFailed explains a failed import task. Two failures come from the
// unit's /tmp, which Pioreactor keeps in RAM and where the task extracts the
// archive and then moves the unit's current files: it gets them told apart,
// since the second may leave part of ~/.pioreactor in /tmp, which a reboot
// empties.
func importFailed(unit string, st TaskStatus) error {
	switch {
	case strings.Contains(st.Error, "No space left on device"):
		return &Error{Kind: ErrImportFailed, Unit: unit, Err: ErrTmpFull,
			Msg: fmt.Sprintf("import into %s failed: %s: its /tmp, which Pioreactor keeps in RAM, is too small to extract the archive; %s keeps its files. "+
				"Reboot %s to empty /tmp (the failed upload stays there until then), then restore again; a compressed archive needs less room (--compress, the default for a large one)",
				unit, st.Error, unit, unit)}
	case st.Error == "Failed to backup existing DOT_PIOREACTOR":
		return &Error{Kind: ErrImportFailed, Unit: unit, Err: ErrTmpFull,
			Msg: fmt.Sprintf("import into %s failed: %s: %s could not move its ~/.pioreactor into /tmp, most likely because /tmp (in RAM) is too full, "+
				"and part of it may now be in /tmp/%s_dot_pioreactor_backup_*, which a reboot empties. Check ~/.pioreactor on %s and move any such files back before rebooting it; "+
				"piosnap's safety snapshot, unless it was skipped, holds its state from before the restore",
				unit, st.Error, unit, unit, unit)}
	}
	return &Error{Kind: ErrImportFailed, Unit: unit,
		Msg: fmt.Sprintf("import into %s failed: %s (%s); the unit restores its previous files on failure, check its logs and retry",
			unit, st.Error, st.Cause)}
}

// waitReboot waits for the unit to go down after a successful import. A
// reboot quicker than one poll interval is recognised afterwards by the
// task's result reading pending again: results live on the unit's tmpfs,
// which the reboot empties.
func (c *Client) waitReboot(ctx context.Context, out ImportOutcome, taskID string, o WaitOptions) (ImportOutcome, error) {
	deadline := time.Now().Add(o.RebootTimeout)
	for {
		h, err := c.Health(ctx, out.Unit)
		if ctx.Err() != nil {
			return out, fmt.Errorf("pioreactor: wait for %s to reboot: %w", out.Unit, ctx.Err())
		}
		if err != nil {
			return c.waitComeBack(ctx, out, o)
		}
		if st, err := c.TaskResult(ctx, out.Unit, taskID); err == nil && st.State == TaskPending {
			out.Rebooted, out.Health = true, h
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, &Error{Kind: ErrNoReboot, Unit: out.Unit,
				Msg: fmt.Sprintf("%s imported the archive but did not reboot within %s: reboot %s to finish the import", out.Unit, o.RebootTimeout, out.Unit)}
		}
		if err := store.Sleep(ctx, o.PollInterval); err != nil {
			return out, fmt.Errorf("pioreactor: wait for %s to reboot: %w", out.Unit, err)
		}
	}
}

// waitComeBack waits for the unit to answer its health check again.
func (c *Client) waitComeBack(ctx context.Context, out ImportOutcome, o WaitOptions) (ImportOutcome, error) {
	deadline := time.Now().Add(o.ComeBackTimeout)
	for {
		h, err := c.Health(ctx, out.Unit)
		if ctx.Err() != nil {
			return out, fmt.Errorf("pioreactor: wait for %s to come back: %w", out.Unit, ctx.Err())
		}
		if err == nil {
			out.Rebooted, out.Health = true, h
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, &Error{Kind: ErrNoComeback, Unit: out.Unit, Err: err,
				Msg: fmt.Sprintf("%s did not come back within %s after the import; check its power and network", out.Unit, o.ComeBackTimeout)}
		}
		if err := store.Sleep(ctx, o.PollInterval); err != nil {
			return out, fmt.Errorf("pioreactor: wait for %s to come back: %w", out.Unit, err)
		}
	}
}
