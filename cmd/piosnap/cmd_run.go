package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler"
	"github.com/piosnap/piosnap/systemd"
)

// Retry and stop settings of the daemon. They are not configurable: the
// schedule's next slot covers what the retries do not.
const (
	retryBase   = 2 * time.Minute
	retryMax    = 30 * time.Minute
	maxRetries  = 4
	stopGrace   = 30 * time.Second // piosnap.service gives 60 s in all
	pingTimeout = 5 * time.Second
)

func cmdRun(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("run", "")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	d, err := newDaemon(a)
	if err != nil {
		return err
	}
	return d.run(ctx, sigs)
}

// daemon is `piosnap run`: the scheduler, its job, the status file, the
// metrics and the notifications.
type daemon struct {
	base       *app // env and config path; cfg and log are taken from d
	sd         *systemd.Notifier
	sched      *scheduler.Scheduler
	metrics    *daemonMetrics
	statusPath string

	mu           sync.Mutex
	cfg          *config.Config
	log          *slog.Logger
	status       statusFile
	statusWarned bool

	// busy is held by every backup run and by a restore started from the
	// web page, so that a backup never exports a unit being restored.
	busy chan struct{}
}

func newDaemon(a *app) (*daemon, error) {
	d := &daemon{
		base:    a,
		sd:      systemd.New(a.env.Getenv),
		cfg:     a.cfg,
		log:     a.log,
		metrics: newDaemonMetrics(),
		busy:    make(chan struct{}, 1),
	}
	d.statusPath = filepath.Join(a.cfg.StateDir, statusFileName)
	s, err := scheduler.New(schedConfig(a.cfg), repoState{d}, d.scheduledJob, a.log)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	d.sched = s
	return d, nil
}

// schedConfig is the scheduler's part of cfg.
func schedConfig(cfg *config.Config) scheduler.Config {
	return scheduler.Config{
		Schedule: cfg.Schedule, Zone: cfg.Location(), Jitter: cfg.Jitter.Duration,
		RetryBase: retryBase, RetryMax: retryMax, MaxRetries: maxRetries, Grace: stopGrace,
		HostSchedules: cfg.OwnSchedules(),
	}
}

// current returns the configuration and logger in force; a run keeps the
// ones it started with.
func (d *daemon) current() (*config.Config, *slog.Logger) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg, d.log
}

// runApp returns an app for one run, with the configuration in force.
func (d *daemon) runApp() *app {
	cfg, log := d.current()
	a := *d.base
	a.cfg, a.log = cfg, log
	return &a
}

// run runs the daemon until a stop signal arrives on sigs or ctx ends.
func (d *daemon) run(ctx context.Context, sigs <-chan os.Signal) error {
	cfg, log := d.current()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	log.Info("piosnap starting", "version", piosnapVersion(), "config", d.base.configPath)
	if w := d.base.machine.leaderDiskWarning(cfg); w != "" {
		log.Warn(w)
	}

	metricsAddr := ""
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen = %q: %w: choose a free loopback port, or leave metrics.listen empty", cfg.Metrics.Listen, err)
		}
		srv := &http.Server{Handler: d.metricsHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		metricsAddr = ln.Addr().String()
		log.Info("serving metrics", "addr", "http://"+metricsAddr+"/metrics")
		if !cfg.Metrics.Loopback() {
			log.Warn("the metrics endpoint is reachable from other machines and has no authentication (metrics.allow_remote = true): anyone who can reach it can read host names, sizes and times", "addr", metricsAddr)
		}
	}

	webAddr := ""
	if cfg.Web.Listen != "" {
		webCtx, webCancel := context.WithCancel(context.WithoutCancel(ctx))
		addr, stopWeb, err := d.startWeb(ctx, webCtx)
		if err != nil {
			webCancel()
			return err
		}
		defer func() {
			webCancel()
			stopWeb()
		}()
		webAddr = addr
	}

	d.startStatus(cfg, metricsAddr)
	d.mu.Lock()
	d.status.WebAddr = webAddr
	d.mu.Unlock()
	d.refreshFromRepos(runCtx, d.runApp(), nil)
	d.sched.SetNotifier(statusSink{d}, d.watchdogEvery())
	d.writeStatus()
	if err := d.sd.Ready(); err != nil {
		log.Warn("cannot tell systemd that piosnap is ready", "err", err)
	}
	// A restore of this machine rebooted it under the command that ran it:
	// finish its verification now, next to the scheduler (the unit's web
	// server may need a while to start; the watchdog must not wait).
	go d.runApp().finishSelfRestore(runCtx, log)
	log.Info("piosnap daemon started", "pid", os.Getpid(), "schedule", cfg.Schedule, "zone", cfg.ZoneName(), "config", d.base.configPath)

	errc := make(chan error, 1)
	go func() { errc <- d.sched.Run(runCtx) }()
	done := ctx.Done()
	stopping := false
	beginStop := func(why string) {
		if stopping {
			_, log := d.current()
			log.Warn("second stop request: cancelling the running backup now", "signal", why)
			d.sched.Abort()
			return
		}
		stopping = true
		_, log := d.current()
		log.Info("stopping: no new run starts; a running backup may finish (send the signal again to stop at once)", "signal", why, "grace", stopGrace)
		if err := d.sd.Stopping(); err != nil {
			log.Warn("cannot tell systemd that piosnap is stopping", "err", err)
		}
		stop()
	}
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload()
				continue
			}
			beginStop(sig.String())
		case <-done:
			done = nil
			beginStop("context cancelled")
		case err := <-errc:
			d.mu.Lock()
			now := time.Now()
			d.status.Stopped = &now
			d.status.Running = false
			d.mu.Unlock()
			d.writeStatus()
			_, log := d.current()
			if err != nil {
				log.Error("daemon stopped with an error", "err", err)
				return err
			}
			log.Info("piosnap daemon stopped")
			return nil
		}
	}
}

// reload rereads the configuration file. An invalid file is refused and
// the configuration in force kept.
func (d *daemon) reload() {
	_, log := d.current()
	if err := d.sd.Reloading(); err != nil {
		log.Warn("cannot tell systemd about the reload", "err", err)
	}
	defer func() {
		if err := d.sd.Ready(); err != nil {
			log.Warn("cannot tell systemd the reload is over", "err", err)
		}
	}()
	cfg, err := config.Load(d.base.configPath)
	if err != nil {
		log.Error("configuration reload refused, keeping the running configuration: fix the file and send SIGHUP again (`piosnap config check` shows the problem)", "err", err)
		return
	}
	if err := d.sched.Reload(schedConfig(cfg)); err != nil {
		log.Error("configuration reload refused: fix the file and send SIGHUP again", "err", err)
		return
	}
	old, _ := d.current()
	newLog := newLogger(d.base.env.Stderr, d.base.env.Getenv, cfg.Log.Format, cfg.Log.Level)
	d.mu.Lock()
	d.cfg, d.log = cfg, newLog
	d.status.Schedule, d.status.Zone = cfg.Schedule, cfg.ZoneName()
	d.mu.Unlock()
	if old.Metrics.Listen != cfg.Metrics.Listen {
		newLog.Warn("metrics.listen changed: the new address takes effect when piosnap restarts", "in_use", old.Metrics.Listen, "configured", cfg.Metrics.Listen)
	}
	if old.Web != cfg.Web {
		newLog.Warn("[web] changed: the web page keeps its settings until piosnap restarts (a new password needs no restart)", "in_use", old.Web.Listen, "configured", cfg.Web.Listen)
	}
	if old.StateDir != cfg.StateDir {
		newLog.Warn("state_dir changed: the status file stays where it is until piosnap restarts", "in_use", old.StateDir, "configured", cfg.StateDir)
	}
	newLog.Info("configuration reloaded; a running backup finishes under the old one", "schedule", cfg.Schedule, "stores", len(cfg.Stores))
	d.writeStatus()
}

// acquire waits until no backup run or web restore is running, or ctx
// ends; wait is called first if it has to wait.
func (d *daemon) acquire(ctx context.Context, wait func()) (release func(), err error) {
	select {
	case d.busy <- struct{}{}:
	default:
		if wait != nil {
			wait()
		}
		select {
		case d.busy <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return func() { <-d.busy }, nil
}

// watchdogEvery is half systemd's watchdog timeout, or 0 without one.
func (d *daemon) watchdogEvery() time.Duration {
	iv, ok := d.sd.WatchdogInterval()
	if !ok {
		return 0
	}
	return iv / 2
}

// statusSink receives the scheduler's status line: it goes to systemd and
// into the status file.
type statusSink struct{ d *daemon }

// Status implements scheduler.Notifier.
func (s statusSink) Status(line string) error {
	snap := s.d.sched.Snapshot()
	s.d.mu.Lock()
	s.d.status.State = line
	s.d.status.Running = snap.Running
	s.d.status.Waiting = snap.Waiting
	s.d.status.NextRun = timePtr(snap.Next)
	s.d.mu.Unlock()
	s.d.writeStatus()
	return s.d.sd.Status(line)
}

// Watchdog implements scheduler.Notifier.
func (s statusSink) Watchdog() error { return s.d.sd.Watchdog() }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
