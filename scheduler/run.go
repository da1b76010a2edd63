package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
)

// Run schedules and runs jobs until ctx is cancelled; runs never overlap.
//
// Stopping has two stages. Cancelling ctx stops scheduling: a pending
// jitter or retry delay is abandoned and no new job starts, but a job
// already running may finish for up to Config.Grace. After that, or at
// once when [Scheduler.Abort] is called, the job's own context is
// cancelled. Run returns nil after a clean stop, and an error wrapping
// [ErrJobAbandoned] if the job then still does not return within 10
// seconds.
func (s *Scheduler) Run(ctx context.Context) error {
	l := loop{s: s}
	if s.notifier != nil && s.watchdogEvery > 0 {
		t := time.NewTicker(s.watchdogEvery)
		defer t.Stop()
		l.tick = t.C
		s.ping()
	}
	for {
		cfg, sched := s.current()
		wake, err := l.step(ctx, cfg, sched)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		timer := time.NewTimer(time.Until(wake))
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-l.tick:
				s.ping()
			case <-s.reload:
				break wait
			case <-timer.C:
				break wait
			}
		}
		timer.Stop()
	}
}

// loop holds the state of one call to Run.
type loop struct {
	s    *Scheduler
	tick <-chan time.Time
	// handled is, per group (see schedules.groups), the latest slot a
	// decision was taken for; the repositories are consulted again only
	// once a later slot of some group passes.
	handled map[string]time.Time
	// waiting is what the loop waits for ("clock", "state"), or "".
	waiting string
}

// step takes the decision for now, runs the jobs that are due (the main
// schedule's first, then each host with a schedule of its own), and
// returns when to look again.
func (l *loop) step(ctx context.Context, cfg Config, sc schedules) (time.Time, error) {
	if l.handled == nil {
		l.handled = map[string]time.Time{}
	}
	now := time.Now()
	wake := now.Add(l.s.recheck)
	groups := sc.groups()
	var next time.Time // the earliest next slot of any group
	fresh := false     // some group has a slot no decision was taken for
	for _, g := range groups {
		if n := g.sched.Next(now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
		if slot := Prev(g.sched, now); slot.IsZero() || slot.After(l.handled[g.host]) {
			fresh = true
		}
	}
	if !next.IsZero() && next.Before(wake) {
		wake = next
	}
	if !fresh {
		l.s.update(func(st *Status) { st.Next = next })
		return wake, nil
	}
	newest, err := l.s.state.Newest(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return wake, nil
		}
		l.wait("state", fmt.Sprintf("cannot read the newest stored versions (%v); trying again in %v", err, l.s.recheck))
		return now.Add(l.s.recheck), nil
	}
	if _, t := newestOf(newest); now.Before(t) {
		_, reason := Due(now, newest, sc.main) // says why the clock is wrong
		l.wait("clock", reason)
		return now.Add(l.s.recheck), nil
	}
	if l.waiting != "" {
		l.waiting = ""
		l.s.log.Info("no longer waiting")
	}
	type due struct {
		hosts []string // nil: the main schedule's hosts
		next  time.Time
	}
	var runs []due
	for _, g := range groups {
		slot := Prev(g.sched, now)
		if !slot.IsZero() && !slot.After(l.handled[g.host]) {
			continue
		}
		l.handled[g.host] = slot
		run, reason := false, ""
		if g.host == "" {
			main := maps.Clone(newest)
			for h := range sc.own {
				delete(main, h)
			}
			run, reason = Due(now, main, g.sched)
		} else {
			run, reason = DueHost(newest[g.host], g.host, slot)
		}
		if !run {
			l.s.log.Debug("no run due", "schedule_of", groupAttr(g.host), "reason", reason, "next", g.sched.Next(now))
			continue
		}
		l.s.log.Info("run due", "schedule_of", groupAttr(g.host), "reason", reason)
		d := due{next: g.sched.Next(now)}
		if g.host != "" {
			d.hosts = []string{g.host}
		}
		runs = append(runs, d)
	}
	if len(runs) == 0 {
		l.s.update(func(st *Status) { st.Waiting, st.Next = "", next })
		return wake, nil
	}
	for _, d := range runs {
		if ctx.Err() != nil {
			break
		}
		if err := l.runSlot(ctx, cfg, d.next, d.hosts); err != nil {
			return time.Time{}, err
		}
	}
	return time.Now(), nil
}

// groupAttr names a schedule group in the log.
func groupAttr(host string) string {
	if host == "" {
		return "main"
	}
	return host
}

// wait records why nothing can run, and logs it when the kind of wait
// changes: the reason itself changes every minute as the clock moves.
func (l *loop) wait(kind, reason string) {
	if kind != l.waiting {
		l.s.log.Warn("not running backups", "reason", reason)
		l.waiting = kind
	}
	l.s.update(func(st *Status) { st.Waiting = reason })
}

// runSlot runs the job once for hosts (nil: the main schedule's) after the
// jitter delay, then retries the hosts that failed, with backoff, as long
// as each retry starts before nextSlot.
func (l *loop) runSlot(ctx context.Context, cfg Config, nextSlot time.Time, hosts []string) error {
	start := time.Now()
	l.s.update(func(st *Status) {
		*st = Status{LastStart: start, Running: true, Next: nextSlot}
	})
	defer l.s.update(func(st *Status) { st.Running, st.LastEnd = false, time.Now() })
	if cfg.Jitter > 0 {
		d := l.s.jitter(cfg.Jitter)
		l.s.log.Info("delaying run by jitter", "delay", d)
		if !l.sleep(ctx, d) {
			return nil
		}
	}
	for attempt := 0; ; attempt++ {
		l.s.log.Info("backup started", "hosts", hostsAttr(hosts), "attempt", attempt+1)
		failed, err := l.runJob(ctx, cfg, hosts)
		l.s.update(func(st *Status) { st.Err, st.Failed = err, failed })
		switch {
		case errors.Is(err, ErrJobAbandoned):
			return fmt.Errorf("stop: %w; a partial version may remain", err)
		case ctx.Err() != nil:
			l.s.log.Info("backup ended while stopping", "failed", failed, "err", err)
			return nil
		case err == nil && len(failed) == 0:
			l.s.log.Info("backup finished")
			return nil
		}
		if err == nil {
			hosts = failed
		}
		if attempt >= cfg.MaxRetries {
			l.s.log.Error("backup failed; giving up until the next slot", "failed", failed, "err", err, "retries", cfg.MaxRetries, "next", nextSlot)
			return nil
		}
		d := Backoff(cfg.RetryBase, cfg.RetryMax, attempt+1)
		if !nextSlot.IsZero() && !time.Now().Add(d).Before(nextSlot) {
			l.s.log.Error("backup failed; the next retry would fall on the next slot, which covers it", "failed", failed, "err", err, "next", nextSlot)
			return nil
		}
		l.s.log.Warn("backup failed; retrying", "failed", failed, "err", err, "in", d)
		if !l.sleep(ctx, d) {
			return nil
		}
	}
}

// runJob runs the job in its own goroutine, keeping the watchdog fed, and
// implements the two-stage stop described on Run.
func (l *loop) runJob(ctx context.Context, cfg Config, hosts []string) ([]string, error) {
	jobCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	type result struct {
		failed []string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		failed, err := l.s.job(jobCtx, hosts)
		done <- result{failed, err}
	}()
	grace := cfg.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	stopping, abort := ctx.Done(), l.s.abort
	var graceUp, force <-chan time.Time
	for {
		select {
		case r := <-done:
			return r.failed, r.err
		case <-l.tick:
			l.s.ping()
		case <-stopping:
			stopping = nil
			l.s.log.Info("stopping: letting the running backup finish", "grace", grace)
			graceUp = time.After(grace)
		case <-graceUp:
			graceUp, abort = nil, nil
			l.s.log.Warn("stopping: grace period over, cancelling the running backup")
			cancel()
			force = time.After(abandonAfter)
		case <-abort:
			graceUp, abort = nil, nil
			l.s.log.Warn("stopping now: cancelling the running backup")
			cancel()
			force = time.After(abandonAfter)
		case <-force:
			return nil, ErrJobAbandoned
		}
	}
}

// sleep waits for d, keeping the watchdog fed. It reports false if ctx
// was cancelled first.
func (l *loop) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-l.tick:
			l.s.ping()
		case <-t.C:
			return true
		}
	}
}

// Backoff returns the delay before retry number attempt (counted from 1):
// base doubled attempt-1 times, capped at limit.
func Backoff(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// newestOf returns the host with the newest version and its time; ties go
// to the host whose name sorts first.
func newestOf(newest map[string]time.Time) (host string, at time.Time) {
	for h, t := range newest {
		if t.After(at) || (t.Equal(at) && h < host) {
			host, at = h, t
		}
	}
	return host, at
}

// hostsAttr renders a host list for logs, where nil means every host.
func hostsAttr(hosts []string) any {
	if hosts == nil {
		return "all"
	}
	return hosts
}
