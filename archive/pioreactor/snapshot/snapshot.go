// Package snapshot takes versions of a Pioreactor cluster into one or more
// repositories: it pulls the cluster archive (or each unit's), splits it per
// host, validates and stores each host, and reports per host and store what
// happened.
package snapshot

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive"
	"github.com/piosnap/piosnap/archive/ingest"
	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/store"
)

// Pull modes.
const (
	// PullBroadcast takes the leader's cluster archive, then pulls each unit
	// it left out directly; if the cluster archive fails, every unit.
	PullBroadcast = "broadcast"
	// PullPerUnit pulls each unit directly.
	PullPerUnit = "per-unit"
)

// Store is a repository with the name the configuration gives it.
type Store struct {
	Name string
	Repo *store.Repository
	// Err, when set, is why the store could not be opened; Repo is then
	// nil. The run reports the error for every host instead of writing to
	// the store, and the other stores still receive their versions.
	Err error
}

// Options configures a run.
type Options struct {
	// Client reaches the cluster.
	Client *pioreactor.Client
	// Pull is PullBroadcast or PullPerUnit.
	Pull string
	// Zone is the IANA zone recorded with each version.
	Zone string
	// Kind and Note are recorded with each version (store.KindBackup if empty).
	Kind, Note string
	// Limits bound each archive read.
	Limits archive.Limits
	// Log receives progress; nil discards it.
	Log *slog.Logger
	// Now gives the version time; nil means time.Now.
	Now func() time.Time
	// RunID names the run in logs and the report; empty means a new one.
	RunID string
	// Progress, when set, is called with the size of every piece of the
	// archives read from the cluster as it arrives, for a progress display.
	Progress func(n int64)
}

// StoreResult is a host's outcome in one store.
type StoreResult struct {
	Store     string `json:"store"`
	VersionID string `json:"version"`
	// Stored is the bytes this version added to the store.
	Stored int64  `json:"stored_bytes"`
	Error  string `json:"error"`
	err    error
}

// HostReport is what happened to one host.
type HostReport struct {
	Host string `json:"host"`
	// Via is "broadcast" or "direct".
	Via string `json:"via"`
	// Size is the host's total content size.
	Size int64 `json:"size_bytes"`
	// Duration is how long pulling and storing the host took (for a
	// broadcast, the whole cluster archive).
	Duration   time.Duration `json:"duration_ns"`
	AppVersion string        `json:"app_version"`
	Stores     []StoreResult `json:"stores"`
	// Error is why no store received the host.
	Error string `json:"error"`
	err   error
}

// Err returns why the host failed entirely, or nil.
func (h *HostReport) Err() error { return h.err }

// OK reports whether every store received the host.
func (h *HostReport) OK() bool {
	if h.err != nil {
		return false
	}
	for _, s := range h.Stores {
		if s.err != nil {
			return false
		}
	}
	return true
}

// Report is the outcome of a run.
type Report struct {
	RunID string    `json:"run_id"`
	Time  time.Time `json:"time"`
	// Units is what the leader listed.
	Units []string      `json:"units"`
	Hosts []*HostReport `json:"hosts"`
	// BroadcastError says why the cluster archive could not be used.
	BroadcastError string `json:"broadcast_error"`
}

// Failed lists the hosts that some store did not receive.
func (r *Report) Failed() []string {
	var out []string
	for _, h := range r.Hosts {
		if !h.OK() {
			out = append(out, h.Host)
		}
	}
	return out
}

// NewRunID returns a short random identifier for log lines.
func NewRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run takes one version of each host (all units the leader lists when hosts
// is empty) into every store. The caller holds each store's lock. One host
// failing never stops the others; the error return is for failures that stop
// the whole run (the leader cannot be asked for its units, every store
// unusable, a cancelled context).
func Run(ctx context.Context, opts Options, stores []Store, hosts []string) (*Report, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if opts.Kind == "" {
		opts.Kind = store.KindBackup
	}
	if opts.RunID == "" {
		opts.RunID = NewRunID()
	}
	rep := &Report{RunID: opts.RunID, Time: now().UTC()}
	log := opts.Log.With("run", rep.RunID)

	units, err := opts.Client.Units(ctx)
	listed := err == nil // units is the leader's list, not the names asked for
	if err != nil {
		if len(hosts) == 0 {
			return rep, fmt.Errorf("ask the leader at %s for its units: %w", opts.Client.LeaderAddress(), err)
		}
		log.Warn("cannot list the cluster's units; pulling the named hosts directly", "err", err)
		units = hosts
	}
	rep.Units = units
	want := units
	if len(hosts) > 0 {
		want = hosts
	}
	var healthy, broken []Store
	var repos []*store.Repository
	for _, s := range stores {
		if s.Err != nil || s.Repo == nil {
			broken = append(broken, s)
			continue
		}
		healthy = append(healthy, s)
		repos = append(repos, s.Repo)
	}
	if len(healthy) == 0 {
		var errs []error
		for _, s := range broken {
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, s.Err))
		}
		return rep, fmt.Errorf("no store can be written: %w", errors.Join(errs...))
	}
	w, err := store.NewWriter(ctx, repos...)
	if err != nil {
		return rep, err
	}
	r := &runner{opts: opts, stores: healthy, broken: broken, w: w, rep: rep, log: log}
	done := map[string]bool{}
	if opts.Pull == PullBroadcast && len(hosts) == 0 {
		got, err := r.broadcast(ctx, units)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.BroadcastError = err.Error()
			log.Warn("cluster archive unusable; pulling every unit directly", "err", err)
		}
		for _, h := range got {
			done[h] = true
		}
	}
	for _, unit := range want {
		if done[unit] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if listed && !slices.Contains(units, unit) {
			// Pulling it would fail with a DNS error that hides the cause.
			r.fail(&HostReport{Host: unit, Via: "direct"}, fmt.Errorf("%s is not a unit of this cluster: the leader lists %s; check the name", unit, strings.Join(units, ", ")))
			continue
		}
		r.direct(ctx, unit)
	}
	if err := ctx.Err(); err != nil {
		// Cancelled while the last host was committed: its stores
		// report the cancellation; the run as a whole was interrupted.
		return rep, err
	}
	slices.SortFunc(rep.Hosts, func(a, b *HostReport) int { return strings.Compare(a.Host, b.Host) })
	return rep, nil
}

type runner struct {
	opts   Options
	stores []Store
	broken []Store // stores that could not be opened
	w      *store.Writer
	rep    *Report
	log    *slog.Logger
}

// broadcast stores what the cluster archive holds and returns the hosts it
// settled (stored or rejected for good).
func (r *runner) broadcast(ctx context.Context, units []string) ([]string, error) {
	start := time.Now()
	exp, err := r.opts.Client.ExportCluster(ctx)
	if err != nil {
		return nil, err
	}
	defer exp.Body.Close()
	br := bufio.NewReaderSize(exp.Reader(r.opts.Progress), 64<<10)
	layout := exp.Layout
	if layout == pioreactor.LayoutUnknown {
		layout = detectLayout(br, units)
	}
	opts := ingest.Options{Layout: ingest.Aggregate, Limits: r.opts.Limits, Units: units}
	if layout == pioreactor.LayoutSingle {
		opts.Layout = ingest.Single
		if len(units) == 1 {
			opts.Host = units[0]
		}
	}
	hosts, err := ingest.Read(ctx, br, r.w, opts)
	if err != nil {
		return nil, fmt.Errorf("cluster archive from %s: %w", r.opts.Client.LeaderAddress(), err)
	}
	var settled []string
	for _, h := range hosts {
		hr := &HostReport{Host: h.Name, Via: "broadcast", Duration: time.Since(start), AppVersion: h.AppVersion}
		r.finish(ctx, h, hr)
		settled = append(settled, h.Name)
	}
	return settled, nil
}

// direct pulls one unit straight from the unit.
func (r *runner) direct(ctx context.Context, unit string) {
	start := time.Now()
	hr := &HostReport{Host: unit, Via: "direct"}
	defer func() { hr.Duration = time.Since(start) }()
	exp, err := r.opts.Client.ExportUnit(ctx, unit)
	if err != nil {
		r.fail(hr, err)
		return
	}
	defer exp.Body.Close()
	hosts, err := ingest.Read(ctx, bufio.NewReaderSize(exp.Reader(r.opts.Progress), 64<<10), r.w, ingest.Options{Layout: ingest.Single, Host: unit, Limits: r.opts.Limits})
	if err != nil {
		r.fail(hr, fmt.Errorf("archive from %s: %w", unit, err))
		return
	}
	if len(hosts) == 0 {
		r.fail(hr, fmt.Errorf("archive from %s is empty", unit))
		return
	}
	hr.AppVersion = hosts[0].AppVersion
	hr.Duration = time.Since(start) // for the log; the deferred update adds the commit
	r.finish(ctx, hosts[0], hr)
}

func (r *runner) fail(hr *HostReport, err error) {
	hr.Stores = []StoreResult{}
	hr.Fail(err)
	r.rep.Hosts = append(r.rep.Hosts, hr)
	r.log.Error("host not backed up", "host", hr.Host, "err", err)
}

// finish commits a validated host, or records its rejection.
func (r *runner) finish(ctx context.Context, h *ingest.Host, hr *HostReport) {
	if h.Err != nil {
		r.fail(hr, h.Err)
		return
	}
	CommitHost(ctx, h.Pending, store.Version{
		Time: r.rep.Time, Zone: r.opts.Zone, Kind: r.opts.Kind, Source: "pioreactor",
		AppVersion: h.AppVersion, Metadata: h.MetadataJSON(), Note: r.opts.Note,
	}, hr, r.stores, r.broken, r.log)
	r.rep.Hosts = append(r.rep.Hosts, hr)
}

// CommitHost commits a pending version into the run's healthy stores (in
// the order the Writer was given them) and records each store's outcome in
// hr, broken stores (that could not be opened) included. Other source kinds
// use it to report like the cluster's units.
func CommitHost(ctx context.Context, p *store.Pending, v store.Version, hr *HostReport, healthy, broken []Store, log *slog.Logger) {
	hr.Size = p.Size()
	results := p.Commit(ctx, v)
	for i, res := range results {
		sr := StoreResult{Store: healthy[i].Name, Stored: res.Stored, err: res.Err}
		if res.Err != nil {
			sr.Error = res.Err.Error()
			if res.Stored > 0 {
				sr.Error += fmt.Sprintf(" (the %d bytes of chunks written before the failure belong to no version; `piosnap check` counts them as unused and the next `piosnap forget` removes them)", res.Stored)
			}
			log.Error("store did not receive host", "host", hr.Host, "store", sr.Store, "err", res.Err)
		} else {
			sr.VersionID = res.Version.ID
			log.Info("stored", "host", hr.Host, "store", sr.Store, "version", res.Version.ShortID(), "new_bytes", res.Stored, "size", hr.Size, "took", hr.Duration.Round(time.Millisecond))
		}
		hr.Stores = append(hr.Stores, sr)
	}
	for _, s := range broken {
		hr.Stores = append(hr.Stores, StoreResult{Store: s.Name, Error: s.Err.Error(), err: s.Err})
	}
}

// Fail marks a host as failed as a whole with err.
func (h *HostReport) Fail(err error) {
	h.err = err
	h.Error = err.Error()
}

// detectLayout peeks at the first entry's name: under a known unit's folder
// means the aggregate layout.
func detectLayout(br *bufio.Reader, units []string) pioreactor.Layout {
	head, err := br.Peek(30)
	if err != nil || binary.LittleEndian.Uint32(head) != 0x04034b50 {
		return pioreactor.LayoutAggregate // let the reader report what is wrong
	}
	n := int(binary.LittleEndian.Uint16(head[26:]))
	full, err := br.Peek(30 + n)
	if err != nil {
		return pioreactor.LayoutAggregate
	}
	first, _, _ := strings.Cut(string(full[30:]), "/")
	if slices.Contains(units, first) {
		return pioreactor.LayoutAggregate
	}
	return pioreactor.LayoutSingle
}
