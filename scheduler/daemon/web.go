package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
)

// unitsTTL is how long the leader's unit list is reused by the pages, so
// that a leader that does not answer slows one page load, not every one.
const unitsTTL = 30 * time.Second

// daemonWeb implements the web application's Source, Backupper and
// Restorer with the daemon's configuration in force.
type daemonWeb struct {
	d *Daemon

	mu        sync.Mutex
	manifests map[string]*store.Version // by store name + "/" + ID; manifests never change
	units     []string
	unitsErr  error
	unitsAt   time.Time
}

// startWeb serves the web application on cfg.Web.Listen until ctx ends;
// jobsCtx bounds the backups and restores it starts. It returns the
// address it listens on and a function that stops it.
func (d *Daemon) startWeb(ctx, jobsCtx context.Context) (string, func(), error) {
	cfg, log := d.current()
	ln, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		return "", nil, fmt.Errorf("web.listen = %q: %w: choose a free port, or leave web.listen empty", cfg.Web.Listen, err)
	}
	dw := &daemonWeb{d: d, manifests: map[string]*store.Version{}}
	srv, err := web.New(jobsCtx, web.Config{
		PasswordFile: cfg.Web.PasswordFile, PublicStatus: cfg.Web.PublicStatus,
		SessionTimeout: cfg.Web.SessionTimeout.Duration, Zone: cfg.Location(), Log: log,
		WriteTar: func(ctx context.Context, w io.Writer, repo *store.Repository, v *store.Version) error {
			return dir.WriteTar(ctx, w, repo, v)
		},
	}, dw, dw, dw)
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = hs.Serve(ln) }()
	addr := ln.Addr().String()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		srv.Wait()
	}
	if _, err := os.Stat(cfg.Web.PasswordFile); err != nil {
		log.Warn("the web application has no password yet: nobody can log in until one is set with `piosnap web passwd`", "password_file", cfg.Web.PasswordFile)
	}
	log.Info("serving the web application", "addr", "http://"+addr+"/")
	return addr, stop, nil
}

// Versions implements web.Source, reading only the manifests it has not
// read before.
func (w *daemonWeb) Versions(ctx context.Context) ([]web.StoreVersions, error) {
	stores, err := w.d.runApp().app.OpenEach(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]web.StoreVersions, 0, len(stores))
	for _, s := range stores {
		sv := web.StoreVersions{Store: s.Name, Repo: s.Repo, Err: s.Err}
		if s.Repo != nil {
			sv.Versions, sv.Err = w.storeVersions(ctx, s.Name, s.Repo)
		}
		out = append(out, sv)
	}
	return out, nil
}

func (w *daemonWeb) storeVersions(ctx context.Context, name string, repo *store.Repository) ([]*store.Version, error) {
	ids, err := repo.VersionIDs(ctx)
	if err != nil {
		return nil, err
	}
	vs := make([]*store.Version, 0, len(ids))
	live := make(map[string]bool, len(ids))
	for _, id := range ids {
		key := name + "/" + id
		live[key] = true
		w.mu.Lock()
		v := w.manifests[key]
		w.mu.Unlock()
		if v == nil {
			v, err = repo.LoadVersion(ctx, id)
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted by a concurrent forget
			}
			if err != nil {
				return nil, err
			}
			w.mu.Lock()
			w.manifests[key] = v
			w.mu.Unlock()
		}
		vs = append(vs, v)
	}
	w.mu.Lock()
	for key := range w.manifests {
		if strings.HasPrefix(key, name+"/") && !live[key] {
			delete(w.manifests, key)
		}
	}
	w.mu.Unlock()
	store.SortVersions(vs)
	return vs, nil
}

// currentHosts are the hosts that belong to the configuration now, as
// `piosnap status` counts them: the leader's units, asked at most every
// unitsTTL, and the directory sources.
func (w *daemonWeb) currentHosts(ctx context.Context, a run) ([]string, error) {
	w.mu.Lock()
	if time.Since(w.unitsAt) < unitsTTL {
		defer w.mu.Unlock()
		return w.units, w.unitsErr
	}
	w.mu.Unlock()
	units := []string{}
	var err error
	if a.cfg.PioreactorEnabled() {
		uctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		units, err = a.app.Units(uctx)
		cancel()
	}
	if err == nil {
		for _, s := range a.cfg.Sources {
			units = append(units, s.Name) // directory sources are current hosts too
		}
	}
	w.mu.Lock()
	w.units, w.unitsErr, w.unitsAt = units, err, time.Now()
	w.mu.Unlock()
	return units, err
}

// StatusJSON implements web.Source: `piosnap status --json`, from the
// daemon's own state and the cached manifests; recorded damage is looked
// up (one stat per damaged object) as `piosnap status` does, so that the
// page sees a repair at once.
func (w *daemonWeb) StatusJSON(ctx context.Context) ([]byte, error) {
	a := w.d.runApp()
	vs, err := w.Versions(ctx)
	if err != nil {
		return nil, err
	}
	w.d.mu.Lock()
	sf := w.d.status
	sf.Verified = slices.Clone(sf.Verified)
	w.d.mu.Unlock()
	versions := map[string][]*store.Version{}
	var storeErrs []string
	for _, s := range vs {
		if s.Err != nil {
			storeErrs = append(storeErrs, fmt.Sprintf("store %q: %v", s.Store, s.Err))
			continue
		}
		versions[s.Store] = s.Versions
		// As `piosnap status`: damage in objects a repair has removed
		// since is over, though the daemon learns it only on its next run.
		for i := range sf.Verified {
			if sf.Verified[i].Store == s.Store {
				if err := sf.Verified[i].DropGone(ctx, s.Repo); err != nil {
					storeErrs = append(storeErrs, fmt.Sprintf("store %q: %v", s.Store, err))
				}
			}
		}
	}
	units, unitsErr := w.currentHosts(ctx, a)
	return a.app.StatusJSON(Report{
		Now: time.Now(), StatusPath: w.d.statusPath, Status: &sf,
		Versions: versions, StoreErrors: storeErrs, Units: units, UnitsErr: unitsErr,
	})
}

// Notices implements web.Source: the last restore of this machine, which
// the page that started it lost in the reboot.
func (w *daemonWeb) Notices(context.Context) []string {
	return w.d.runApp().app.Notices()
}

// ListJSON implements web.Source: `piosnap list --json [--host H]`.
func (w *daemonWeb) ListJSON(ctx context.Context, host string) ([]byte, error) {
	vs, err := w.Versions(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range vs {
		if s.Err != nil {
			return nil, fmt.Errorf("store %q: %w", s.Store, s.Err)
		}
	}
	return w.d.runApp().app.ListJSON(vs, host)
}

// BackupNow implements web.Backupper: the daemon's job, as at a scheduled
// slot, for every unit.
func (w *daemonWeb) BackupNow(ctx context.Context, say func(string)) error {
	say("backing up every unit into every store (waiting for the repositories if another piosnap holds them)")
	failed, err := w.d.Job(ctx, nil)
	w.d.mu.Lock()
	ev := w.d.status.LastRun
	w.d.mu.Unlock()
	if ev != nil {
		say(fmt.Sprintf("run %s: %s", ev.RunID, ev.Result))
		for _, h := range ev.Hosts {
			if h.Error != "" {
				say(fmt.Sprintf("%s: FAILED: %s", h.Host, h.Error))
				continue
			}
			for _, s := range h.Stores {
				if s.Error != "" {
					say(fmt.Sprintf("%s: store %s FAILED: %s", h.Host, s.Store, s.Error))
				} else {
					say(fmt.Sprintf("%s: ok, store %s, version %.8s, new %s", h.Host, s.Store, s.Version, web.HumanBytes(s.StoredBytes)))
				}
			}
		}
	}
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d unit(s) not backed up: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// restoreOutput passes a restore's output on to say line by line.
func restoreOutput(say func(web.Event)) *lineWriter {
	return &lineWriter{say: func(line string) { say(web.Event{Line: line}) }}
}

// errWebDirRestore refuses a directory source's restore from the web: it
// needs root (owners, stopping the application), which the daemon
// normally lacks, and is run on the server.
func errWebDirRestore(host string) error {
	return fmt.Errorf("%s is a directory source: restore it on the server with `sudo piosnap restore --host %s --version ID --dry-run`, then without --dry-run (nothing was changed)", host, host)
}

// DryRun implements web.Restorer: `piosnap restore --dry-run`. As there,
// a version the daemon's readings found damaged in the store it was found
// in is checked in another store that holds it undamaged, unless req names
// the store; the plan's first line says so, or warns.
func (w *daemonWeb) DryRun(ctx context.Context, req web.RestoreRequest) (*web.Plan, error) {
	a := w.d.runApp()
	if a.cfg.Source(req.Unit) != nil {
		return nil, errWebDirRestore(req.Unit)
	}
	return w.dryRun(ctx, a, req)
}

// dryRun is the command line's dry run of req, with its output as the
// plan's lines.
func (w *daemonWeb) dryRun(ctx context.Context, a run, req web.RestoreRequest) (*web.Plan, error) {
	var lines []string
	say := func(ev web.Event) {
		if ev.Line != "" {
			lines = append(lines, ev.Line)
		}
	}
	lw := restoreOutput(say)
	plan, err := a.app.DryRun(ctx, req, lw, say)
	lw.Flush()
	if plan != nil {
		plan.Lines = append(plan.Lines, lines...)
	}
	return plan, err
}

// Restore implements web.Restorer: `piosnap restore --yes` of one exact
// version, waiting up to lock_wait for an import already running.
func (w *daemonWeb) Restore(ctx context.Context, req web.RestoreRequest, ev func(web.Event)) error {
	a := w.d.runApp()
	if a.cfg.Source(req.Unit) != nil {
		return errWebDirRestore(req.Unit)
	}
	release, err := w.d.acquire(ctx, func() {
		ev(web.Event{Line: "a backup is running; the restore starts when it has finished"})
	})
	if err != nil {
		return err
	}
	defer release()
	lw := restoreOutput(ev)
	err = a.app.Restore(ctx, req, lw, ev)
	lw.Flush()
	return err
}

// lineWriter passes what is written to it on line by line.
type lineWriter struct {
	say func(string)
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line) // incomplete: keep for the next write
			return len(p), nil
		}
		if s := strings.TrimRight(line, "\r\n"); strings.TrimSpace(s) != "" {
			l.say(s)
		}
	}
}

// Flush passes on a last line without a newline.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := strings.TrimSpace(l.buf.String()); s != "" {
		l.say(s)
	}
	l.buf.Reset()
}
