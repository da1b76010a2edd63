package web

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Job kinds.
const (
	KindBackup  = "backup"
	KindRestore = "restore"
)

// maxJobLines bounds the lines a job keeps.
const maxJobLines = 500

// StepStatus is one restore step's state.
type StepStatus struct {
	Step  string `json:"step"`
	Title string `json:"title"`
	State string `json:"state"`
}

// Job is a backup or restore started from the web, as /api/jobs/{id}
// returns it.
type Job struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Request  *RestoreRequest `json:"request,omitempty"`
	Started  time.Time       `json:"started"`
	Finished *time.Time      `json:"finished,omitempty"`
	// State is StateRunning, StateDone or StateFailed.
	State string       `json:"state"`
	Error string       `json:"error,omitempty"`
	Steps []StepStatus `json:"steps,omitempty"`
	Lines []string     `json:"lines"`
	// Sent and Total are the upload's progress in bytes.
	Sent  int64 `json:"sent,omitempty"`
	Total int64 `json:"total,omitempty"`
	// SafetyVersion and SafetyStore name the safety snapshot: restoring it
	// undoes the restore.
	SafetyVersion string `json:"safety_version,omitempty"`
	SafetyStore   string `json:"safety_store,omitempty"`
}

// Running reports whether the job has not finished.
func (j *Job) Running() bool { return j.State == StateRunning }

// stepTitles names the restore steps on the page.
var stepTitles = []StepStatus{
	{Step: StepCheck, Title: "Checks"},
	{Step: StepSafety, Title: "Safety snapshot"},
	{Step: StepUpload, Title: "Upload"},
	{Step: StepImport, Title: "Import"},
	{Step: StepReboot, Title: "Reboot"},
	{Step: StepVerify, Title: "Verification"},
}

// jobs runs backups and restores one at a time, in the daemon, and keeps
// their progress for the pages.
type jobs struct {
	ctx  context.Context
	log  *slog.Logger
	now  func() time.Time
	wg   sync.WaitGroup
	mu   sync.Mutex
	all  []*Job // oldest first
	next int
}

func newJobs(ctx context.Context, log *slog.Logger, now func() time.Time) *jobs {
	return &jobs{ctx: ctx, log: log, now: now, next: 1}
}

// errBusy is returned by start while another job runs.
type errBusy struct{ running *Job }

func (e *errBusy) Error() string {
	what := "a backup"
	if e.running.Kind == KindRestore {
		what = "a restore of " + e.running.Request.Unit
	}
	return fmt.Sprintf("%s is running (started %s): wait for it to finish", what, e.running.Started.Format("15:04:05"))
}

// start runs fn as a new job unless one is running. fn reports through
// the update function it is given.
func (js *jobs) start(kind string, req *RestoreRequest, fn func(ctx context.Context, j *jobHandle) error) (*Job, error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, j := range js.all {
		if j.Running() {
			return nil, &errBusy{running: j.copy()}
		}
	}
	j := &Job{ID: strconv.Itoa(js.next), Kind: kind, Request: req, Started: js.now().UTC(), State: StateRunning, Lines: []string{}}
	if kind == KindRestore {
		j.Steps = slices.Clone(stepTitles)
		for i := range j.Steps {
			j.Steps[i].State = StatePending
		}
	}
	js.next++
	js.all = append(js.all, j)
	if len(js.all) > 50 {
		js.all = js.all[1:]
	}
	h := &jobHandle{js: js, j: j}
	js.wg.Add(1)
	go func() {
		defer js.wg.Done()
		err := fn(js.ctx, h)
		h.finish(err)
	}()
	return j.copy(), nil
}

func (js *jobs) wait() { js.wg.Wait() }

// get returns a copy of job id.
func (js *jobs) get(id string) *Job {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, j := range js.all {
		if j.ID == id {
			return j.copy()
		}
	}
	return nil
}

// list returns copies of every kept job, newest first.
func (js *jobs) list() []*Job {
	js.mu.Lock()
	defer js.mu.Unlock()
	out := make([]*Job, 0, len(js.all))
	for i := len(js.all) - 1; i >= 0; i-- {
		out = append(out, js.all[i].copy())
	}
	return out
}

// running returns the running job, or nil.
func (js *jobs) running() *Job {
	for _, j := range js.list() {
		if j.Running() {
			return j
		}
	}
	return nil
}

func (j *Job) copy() *Job {
	c := *j
	c.Steps = slices.Clone(j.Steps)
	c.Lines = slices.Clone(j.Lines)
	return &c
}

// jobHandle is how a running job reports.
type jobHandle struct {
	js *jobs
	j  *Job
}

// say adds a line.
func (h *jobHandle) say(line string) {
	h.js.mu.Lock()
	defer h.js.mu.Unlock()
	h.addLine(line)
}

func (h *jobHandle) addLine(line string) {
	if len(h.j.Lines) >= maxJobLines {
		h.j.Lines = append(h.j.Lines[:1], h.j.Lines[2:]...)
	}
	h.j.Lines = append(h.j.Lines, line)
}

// event applies a restore event.
func (h *jobHandle) event(ev Event) {
	h.js.mu.Lock()
	defer h.js.mu.Unlock()
	j := h.j
	if ev.Line != "" {
		h.addLine(ev.Line)
	}
	if ev.Step != "" && ev.State != "" {
		for i := range j.Steps {
			if j.Steps[i].Step == ev.Step {
				j.Steps[i].State = ev.State
			}
		}
	}
	if ev.Total > 0 {
		j.Sent, j.Total = ev.Sent, ev.Total
	}
	if ev.SafetyVersion != "" {
		j.SafetyVersion, j.SafetyStore = ev.SafetyVersion, ev.SafetyStore
	}
}

// finish records the job's end: a step still running failed, the steps
// not reached are skipped.
func (h *jobHandle) finish(err error) {
	h.js.mu.Lock()
	defer h.js.mu.Unlock()
	j := h.j
	now := h.js.now().UTC()
	j.Finished = &now
	j.State = StateDone
	if err != nil {
		j.State, j.Error = StateFailed, err.Error()
	}
	for i := range j.Steps {
		switch j.Steps[i].State {
		case StateRunning:
			if err != nil {
				j.Steps[i].State = StateFailed
			} else {
				j.Steps[i].State = StateDone
			}
		case StatePending:
			j.Steps[i].State = StateSkipped
		}
	}
	args := []any{"job", j.ID, "kind", j.Kind, "state", j.State}
	if j.Request != nil {
		args = append(args, "unit", j.Request.Unit)
	}
	if err != nil {
		h.js.log.Error("web: job failed", append(args, "err", err)...)
	} else {
		h.js.log.Info("web: job finished", args...)
	}
}
