package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultGrace is how long a running job may go on after Run's context is
// cancelled when Config.Grace is zero.
const DefaultGrace = 30 * time.Second

const (
	// defaultRecheck bounds every sleep, so that a wall clock set by NTP is
	// noticed within a minute, and paces retries while waiting for the
	// clock or for the repositories.
	defaultRecheck = time.Minute
	// abandonAfter is how long Run waits for a job after cancelling its
	// context before it gives up on it.
	abandonAfter = 10 * time.Second
)

// ErrJobAbandoned is returned by [Scheduler.Run] when a job did not return
// within 10 seconds of its context being cancelled.
var ErrJobAbandoned = errors.New("scheduler: backup job ignored cancellation")

// Config is the scheduling part of piosnap's configuration.
type Config struct {
	// Schedule is a cron expression or descriptor; see [ParseSchedule].
	Schedule string
	// Zone is the IANA zone Schedule is evaluated in; nil means UTC.
	Zone *time.Location
	// Jitter delays each scheduled run by a random duration in
	// [0, Jitter). Zero runs on the slot.
	Jitter time.Duration
	// RetryBase is the delay before the first retry of failed hosts; each
	// further retry doubles it, up to RetryMax.
	RetryBase, RetryMax time.Duration
	// MaxRetries is how many times failed hosts are retried per slot.
	// Zero disables retries. Retries that would start at or after the
	// next slot are dropped: the next slot covers those hosts.
	MaxRetries int
	// Grace is how long a running job may go on after Run's context is
	// cancelled before the job's own context is cancelled. Zero means
	// DefaultGrace.
	Grace time.Duration
	// HostSchedules back up the named hosts on schedules of their own
	// (written as Schedule, in Zone) instead of Schedule. At a slot of
	// Schedule the job is then given nil, which means every host but
	// these; at a slot of a host's own schedule, that host.
	HostSchedules map[string]string
}

// schedules are a Config's parsed schedules: the main one and each host's
// own.
type schedules struct {
	main cron.Schedule
	own  map[string]cron.Schedule
}

// group is one schedule and the hosts it backs up: host "" is the main
// schedule's (every host without one of its own).
type group struct {
	host  string
	sched cron.Schedule
}

// groups lists the main schedule first, then the hosts' own by name.
func (sc schedules) groups() []group {
	out := []group{{sched: sc.main}}
	for _, h := range slices.Sorted(maps.Keys(sc.own)) {
		out = append(out, group{host: h, sched: sc.own[h]})
	}
	return out
}

// check validates c and returns its parsed schedules. Errors name the
// configuration key at fault.
func (c Config) check() (schedules, error) {
	sched, err := ParseSchedule(c.Schedule, c.Zone)
	if err != nil {
		return schedules{}, err
	}
	sc := schedules{main: sched, own: map[string]cron.Schedule{}}
	for h, text := range c.HostSchedules {
		if sc.own[h], err = ParseSchedule(text, c.Zone); err != nil {
			return schedules{}, fmt.Errorf("schedule of %s: %w", h, err)
		}
	}
	switch {
	case c.Jitter < 0:
		return schedules{}, fmt.Errorf("jitter %v is negative: use 0 to run on the slot, or a positive duration such as \"5m\"", c.Jitter)
	case c.MaxRetries < 0:
		return schedules{}, fmt.Errorf("max_retries %d is negative: use 0 to disable retries", c.MaxRetries)
	case c.MaxRetries > 0 && c.RetryBase <= 0:
		return schedules{}, fmt.Errorf("retry_base %v must be positive when max_retries is %d: set it to a duration such as \"1m\"", c.RetryBase, c.MaxRetries)
	case c.MaxRetries > 0 && c.RetryMax < c.RetryBase:
		return schedules{}, fmt.Errorf("retry_max %v is shorter than retry_base %v: raise retry_max", c.RetryMax, c.RetryBase)
	case c.Grace < 0:
		return schedules{}, fmt.Errorf("grace %v is negative: use 0 for the default of %v", c.Grace, DefaultGrace)
	}
	return sc, nil
}

// State reports the newest complete version per host, as stored in the
// repositories.
type State interface {
	// Newest returns the time of each host's newest complete version.
	// Hosts without versions may be absent.
	Newest(ctx context.Context) (map[string]time.Time, error)
}

// Job runs one backup, followed by retention, for hosts (nil means every
// host, but those with schedules of their own: see
// Config.HostSchedules) and returns the hosts that failed. A non-nil error means the run
// failed as a whole. A Job must return promptly, leaving no partial
// version behind, once ctx is cancelled.
type Job func(ctx context.Context, hosts []string) (failed []string, err error)

// Notifier is told about the scheduler's progress, for example by
// systemd's notification socket.
type Notifier interface {
	// Status publishes a one-line, human-readable status.
	Status(status string) error
	// Watchdog tells the supervisor that the scheduler loop is alive.
	Watchdog() error
}

// Status describes the scheduler's last run and next run.
type Status struct {
	// LastStart and LastEnd bound the last run, retries included; both
	// are zero before the first run.
	LastStart, LastEnd time.Time
	// Err is the last run's error, if it failed as a whole.
	Err error
	// Failed lists the hosts that still failed after the last run's
	// retries.
	Failed []string
	// Running is true while a run, or its jitter or retry delay, is in
	// progress.
	Running bool
	// Next is the next scheduled slot.
	Next time.Time
	// Waiting says why nothing can run, such as a clock that is behind.
	Waiting string
}

// In returns s with its times in loc (UTC when loc is nil), the zone the
// schedule is written in, so that one status line never mixes zones.
func (s Status) In(loc *time.Location) Status {
	if loc == nil {
		loc = time.UTC
	}
	for _, t := range []*time.Time{&s.LastStart, &s.LastEnd, &s.Next} {
		if !t.IsZero() {
			*t = t.In(loc)
		}
	}
	return s
}

// String formats s on one line, as used for systemd's STATUS=.
func (s Status) String() string {
	const layout = "2006-01-02 15:04 MST"
	var b []byte
	switch {
	case s.Waiting != "":
		b = fmt.Appendf(b, "waiting: %s", s.Waiting)
	case s.Running:
		b = fmt.Appendf(b, "running since %s", s.LastStart.Format(layout))
	case s.LastStart.IsZero():
		b = fmt.Appendf(b, "no run yet")
	case s.Err != nil:
		b = fmt.Appendf(b, "last run %s failed: %v", s.LastStart.Format(layout), s.Err)
	case len(s.Failed) > 0:
		b = fmt.Appendf(b, "last run %s: %d host(s) failed: %v", s.LastStart.Format(layout), len(s.Failed), s.Failed)
	default:
		b = fmt.Appendf(b, "last run %s ok", s.LastStart.Format(layout))
	}
	if !s.Next.IsZero() {
		b = fmt.Appendf(b, "; next run %s", s.Next.Format(layout))
	}
	return string(b)
}

// Scheduler runs a Job on a schedule. Create it with [New]; its methods
// are safe for concurrent use.
type Scheduler struct {
	state State
	job   Job
	log   *slog.Logger
	// jitter returns a random delay in [0, d).
	jitter func(d time.Duration) time.Duration
	// recheck is defaultRecheck; tests that sleep for months raise it.
	recheck time.Duration

	notifier      Notifier
	watchdogEvery time.Duration

	reload    chan struct{}
	abort     chan struct{}
	abortOnce sync.Once

	mu        sync.Mutex
	cfg       Config
	sched     schedules
	status    Status
	published string // the last status line given to notifier
}

// New returns a scheduler for cfg, or an error naming the invalid setting.
// A nil log discards log output.
func New(cfg Config, st State, job Job, log *slog.Logger) (*Scheduler, error) {
	if st == nil || job == nil {
		return nil, errors.New("scheduler: New needs a State and a Job")
	}
	sched, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		state:   st,
		job:     job,
		log:     log,
		jitter:  func(d time.Duration) time.Duration { return rand.N(d) },
		recheck: defaultRecheck,
		reload:  make(chan struct{}, 1),
		abort:   make(chan struct{}),
		cfg:     cfg,
		sched:   sched,
	}, nil
}

// SetNotifier makes the scheduler publish its status to n and, when
// watchdogEvery is positive, call n.Watchdog that often from its loop.
// Call it before Run.
func (s *Scheduler) SetNotifier(n Notifier, watchdogEvery time.Duration) {
	s.notifier, s.watchdogEvery = n, watchdogEvery
}

// Reload replaces the configuration. The new schedule takes effect at
// once, including a catch-up run if it is due; a run in progress finishes
// under the old settings. An invalid cfg is refused with an error naming
// the setting, and the old configuration stays in force.
func (s *Scheduler) Reload(cfg Config) error {
	sched, err := cfg.check()
	if err != nil {
		return fmt.Errorf("reload refused, keeping the running configuration: %w", err)
	}
	s.mu.Lock()
	s.cfg, s.sched = cfg, sched
	s.mu.Unlock()
	select {
	case s.reload <- struct{}{}:
	default:
	}
	return nil
}

// Abort cancels the running job's context at once instead of waiting for
// the grace period. It is meant for a second stop request, after Run's
// context was cancelled; jobs started after Abort are cancelled as soon
// as they start.
func (s *Scheduler) Abort() {
	s.abortOnce.Do(func() { close(s.abort) })
}

// Snapshot returns the current status.
func (s *Scheduler) Snapshot() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Failed = append([]string(nil), st.Failed...)
	return st
}

// Ran records a run the schedule did not start (the web page's "back up
// now", or a run of an earlier process) as the last run, so that the
// status line tells it; the next slot stays. While a run of the schedule
// is in progress, its own status is kept.
func (s *Scheduler) Ran(start, end time.Time, failed []string, err error) {
	s.update(func(st *Status) {
		if st.Running {
			return
		}
		st.LastStart, st.LastEnd, st.Err, st.Failed = start, end, err, slices.Clone(failed)
	})
}

func (s *Scheduler) current() (Config, schedules) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg, s.sched
}

// update changes the status under the lock and publishes it.
func (s *Scheduler) update(f func(st *Status)) {
	s.mu.Lock()
	f(&s.status)
	line := s.status.In(s.cfg.Zone).String()
	changed := line != s.published
	s.published = line
	s.mu.Unlock()
	if changed && s.notifier != nil {
		if err := s.notifier.Status(line); err != nil {
			s.log.Warn("cannot publish status", "err", err)
		}
	}
}

func (s *Scheduler) ping() {
	if err := s.notifier.Watchdog(); err != nil {
		s.log.Warn("cannot send watchdog keep-alive", "err", err)
	}
}
