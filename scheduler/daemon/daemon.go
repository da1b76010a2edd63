package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
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

// Options is what a Daemon is made of.
type Options struct {
	// ConfigPath is the configuration file, reread on SIGHUP.
	ConfigPath string
	// Config and Log are the configuration and logger to start with.
	Config *config.Config
	Log    *slog.Logger
	// Version is piosnap's version, logged at start.
	Version string
	// Warnings are logged at start, after the version.
	Warnings []string
	// NewLogger makes the logger of a configuration loaded on reload.
	NewLogger func(*config.Config) *slog.Logger
	// App returns the command line's work under one configuration and
	// logger. A run and a web request use the ones in force when they
	// start.
	App func(cfg *config.Config, log *slog.Logger) App
	// Systemd receives the daemon's readiness, status and watchdog pings.
	Systemd *systemd.Notifier
}

// Daemon is `piosnap run`: the scheduler, its job, the status file, the
// metrics, the notifications and the web application.
type Daemon struct {
	opts       Options
	sd         *systemd.Notifier
	sched      *scheduler.Scheduler
	metrics    *daemonMetrics
	statusPath string

	mu           sync.Mutex
	cfg          *config.Config
	log          *slog.Logger
	status       StatusFile
	statusWarned bool

	// busy is held by every backup run and by a restore started from the
	// web page, so that a backup never exports a unit being restored.
	busy chan struct{}
}

// New returns a daemon for opts. An error means the configuration's
// schedules are invalid.
func New(opts Options) (*Daemon, error) {
	d := &Daemon{
		opts:    opts,
		sd:      opts.Systemd,
		cfg:     opts.Config,
		log:     opts.Log,
		metrics: newDaemonMetrics(),
		busy:    make(chan struct{}, 1),
	}
	d.statusPath = filepath.Join(opts.Config.StateDir, StatusFileName)
	s, err := scheduler.New(schedConfig(opts.Config), repoState{d}, d.ScheduledJob, opts.Log)
	if err != nil {
		return nil, err
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
func (d *Daemon) current() (*config.Config, *slog.Logger) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg, d.log
}

// run is the work of one run or request, under the configuration in force
// when it starts.
type run struct {
	cfg *config.Config
	log *slog.Logger
	app App
}

// runApp returns the command line's work with the configuration in force.
func (d *Daemon) runApp() run {
	cfg, log := d.current()
	return run{cfg: cfg, log: log, app: d.opts.App(cfg, log)}
}

// Run runs the daemon until a stop signal (SIGTERM, os.Interrupt) arrives
// on sigs or ctx ends; SIGHUP on sigs reloads the configuration. A second
// stop request cancels a running backup.
func (d *Daemon) Run(ctx context.Context, sigs <-chan os.Signal) error {
	cfg, log := d.current()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	log.Info("piosnap starting", "version", d.opts.Version, "config", d.opts.ConfigPath)
	for _, w := range d.opts.Warnings {
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
	d.lastRunToScheduler()
	d.sched.SetNotifier(statusSink{d}, d.watchdogEvery())
	d.writeStatus()
	if err := d.sd.Ready(); err != nil {
		log.Warn("cannot tell systemd that piosnap is ready", "err", err)
	}
	// A restore of this machine rebooted it under the command that ran it:
	// finish its verification now, next to the scheduler (the unit's web
	// server may need a while to start; the watchdog must not wait).
	go d.runApp().app.FinishSelfRestore(runCtx)
	log.Info("piosnap daemon started", "pid", os.Getpid(), "schedule", cfg.Schedule, "zone", cfg.ZoneName(), "config", d.opts.ConfigPath)

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
func (d *Daemon) reload() {
	_, log := d.current()
	if err := d.sd.Reloading(); err != nil {
		log.Warn("cannot tell systemd about the reload", "err", err)
	}
	defer func() {
		if err := d.sd.Ready(); err != nil {
			log.Warn("cannot tell systemd the reload is over", "err", err)
		}
	}()
	cfg, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		log.Error("configuration reload refused, keeping the running configuration: fix the file and send SIGHUP again (`piosnap config check` shows the problem)", "err", err)
		return
	}
	if err := d.sched.Reload(schedConfig(cfg)); err != nil {
		log.Error("configuration reload refused: fix the file and send SIGHUP again", "err", err)
		return
	}
	old, _ := d.current()
	newLog := d.opts.NewLogger(cfg)
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
func (d *Daemon) acquire(ctx context.Context, wait func()) (release func(), err error) {
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
func (d *Daemon) watchdogEvery() time.Duration {
	iv, ok := d.sd.WatchdogInterval()
	if !ok {
		return 0
	}
	return iv / 2
}

// statusSink receives the scheduler's status line: it goes to systemd and
// into the status file.
type statusSink struct{ d *Daemon }

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
