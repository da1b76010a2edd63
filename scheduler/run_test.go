package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// repo is an in-memory repository: the job stamps each host's version with
// the time the job started, as an export does, and the scheduler reads
// the newest versions back through State.
type repo struct {
	hosts []string
	// dur is how long each job takes.
	dur time.Duration
	// fail decides whether a host fails in the given call (counted from 1).
	fail func(host string, call int) bool
	// stateErrs makes the first stateErrs calls to Newest fail.
	stateErrs int
	// ignoreCancel makes jobs run for dur even when cancelled.
	ignoreCancel bool

	mu         sync.Mutex
	newest     map[string]time.Time
	calls      []call
	running    int
	maxRunning int
	stateCalls int
}

type call struct {
	start     time.Time
	hosts     []string
	cancelled time.Time // when the job's context was cancelled, if it was
}

func newRepo(hosts ...string) *repo {
	return &repo{hosts: hosts, newest: map[string]time.Time{}}
}

func (r *repo) Newest(ctx context.Context) (map[string]time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stateCalls++
	if r.stateCalls <= r.stateErrs {
		return nil, errors.New("bucket piosnap: connection refused")
	}
	m := make(map[string]time.Time, len(r.newest))
	for h, t := range r.newest {
		m[h] = t
	}
	return m, nil
}

func (r *repo) job(ctx context.Context, hosts []string) ([]string, error) {
	start := time.Now()
	r.mu.Lock()
	r.running++
	r.maxRunning = max(r.maxRunning, r.running)
	r.calls = append(r.calls, call{start: start, hosts: hosts})
	n := len(r.calls)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running--
		r.mu.Unlock()
	}()
	t := time.NewTimer(r.dur)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		r.mu.Lock()
		r.calls[n-1].cancelled = time.Now()
		r.mu.Unlock()
		if !r.ignoreCancel {
			return nil, fmt.Errorf("backup: %w", ctx.Err())
		}
		<-t.C
	}
	if hosts == nil {
		hosts = r.hosts
	}
	var failed []string
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range hosts {
		if r.fail != nil && r.fail(h, n) {
			failed = append(failed, h)
			continue
		}
		r.newest[h] = start
	}
	return failed, nil
}

func (r *repo) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// recorder is a Notifier that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	statuses []string
	pings    []time.Time
}

func (n *recorder) Status(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.statuses = append(n.statuses, s)
	return nil
}

func (n *recorder) Watchdog() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pings = append(n.pings, time.Now())
	return nil
}

// bubbleStart is where synctest's fake clock starts.
var bubbleStart = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// start runs s in the background and returns a function that stops it and
// returns Run's result.
func start(t *testing.T, s *Scheduler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func mustNew(t *testing.T, cfg Config, r *repo) *Scheduler {
	t.Helper()
	s, err := New(cfg, r, r.job, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// starts returns the offsets from the bubble's start at which jobs started.
func starts(calls []call) []time.Duration {
	var d []time.Duration
	for _, c := range calls {
		d = append(d, c.start.Sub(bubbleStart))
	}
	return d
}

func TestRunCatchUpOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader", "worker1")
		// Versions from a week ago: seven daily slots were missed.
		r.newest["leader"] = bubbleStart.Add(-7 * 24 * time.Hour)
		r.newest["worker1"] = bubbleStart.Add(-6 * 24 * time.Hour)
		r.dur = 5 * time.Minute
		s := mustNew(t, Config{Schedule: "0 3 * * *"}, r)
		stop := start(t, s)
		time.Sleep(2*time.Hour + 30*time.Second)
		if got := starts(r.snapshot()); !slices.Equal(got, []time.Duration{0}) {
			t.Fatalf("after 2h, runs started at %v, want one catch-up at 0s", got)
		}
		time.Sleep(24 * time.Hour)
		want := []time.Duration{0, 3 * time.Hour}
		if got := starts(r.snapshot()); !slices.Equal(got, want) {
			t.Fatalf("after 26h, runs started at %v, want %v", got, want)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		st := s.Snapshot()
		if st.LastStart.Sub(bubbleStart) != 3*time.Hour || st.LastEnd.Sub(st.LastStart) != 5*time.Minute || st.Err != nil || len(st.Failed) != 0 {
			t.Errorf("Snapshot = %+v, want last run 03:00-03:05 ok", st)
		}
		if want := bubbleStart.Add(27 * time.Hour); !st.Next.Equal(want) {
			t.Errorf("Snapshot().Next = %s, want %s", st.Next, want)
		}
	})
}

func TestRunUpToDateAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		r.newest["leader"] = bubbleStart.Add(-time.Minute) // the 23:00 slot is covered
		s := mustNew(t, Config{Schedule: "0 23 * * *"}, r)
		stop := start(t, s)
		time.Sleep(22 * time.Hour)
		if got := r.snapshot(); len(got) != 0 {
			t.Fatalf("runs started at %v, want none before 23:00", starts(got))
		}
		time.Sleep(2 * time.Hour)
		if got := starts(r.snapshot()); !slices.Equal(got, []time.Duration{23 * time.Hour}) {
			t.Fatalf("runs started at %v, want [23h]", got)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRunNoOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		r.dur = 25 * time.Minute // outlasts the 10-minute interval
		s := mustNew(t, Config{Schedule: "*/10 * * * *"}, r)
		stop := start(t, s)
		time.Sleep(2 * time.Hour)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if r.maxRunning != 1 {
			t.Errorf("%d jobs ran at once, want 1", r.maxRunning)
		}
		// Each run catches up once, right after the previous one, however
		// many slots it outlasted; the run started at 1h40 is let finish.
		m := time.Minute
		want := []time.Duration{0, 25 * m, 50 * m, 75 * m, 100 * m}
		if got := starts(r.snapshot()); !slices.Equal(got, want) {
			t.Errorf("runs started at %v, want %v", got, want)
		}
	})
}

func TestRunJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		r.dur = time.Minute
		const jitter = 10 * time.Minute
		s := mustNew(t, Config{Schedule: "0 * * * *", Jitter: jitter}, r)
		stop := start(t, s)
		time.Sleep(48*time.Hour - time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		calls := r.snapshot()
		if len(calls) != 48 {
			t.Fatalf("%d runs in 48 hourly slots, want 48", len(calls))
		}
		var delays []time.Duration
		for i, c := range calls {
			d := c.start.Sub(bubbleStart.Add(time.Duration(i) * time.Hour))
			if d < 0 || d >= jitter {
				t.Errorf("run %d started %v after its slot, want within [0, %v)", i, d, jitter)
			}
			delays = append(delays, d)
		}
		slices.Sort(delays)
		if delays[0] == delays[len(delays)-1] {
			t.Errorf("all 48 runs were delayed by %v: jitter is not random", delays[0])
		}
	})
}

func TestRunRetries(t *testing.T) {
	m := time.Minute
	tests := []struct {
		name string
		cfg  Config
		fail func(host string, call int) bool
		// calls lists, in the first two hours, each job's start offset and
		// hosts ("*" for every host).
		calls []string
	}{
		{
			name: "capped backoff, failed hosts only",
			cfg:  Config{Schedule: "0 * * * *", MaxRetries: 5, RetryBase: m, RetryMax: 4 * m},
			fail: func(h string, _ int) bool { return h == "worker2" },
			calls: []string{"0s *", "1m0s worker2", "3m0s worker2", "7m0s worker2", "11m0s worker2", "15m0s worker2",
				"1h0m0s *", "1h1m0s worker2", "1h3m0s worker2", "1h7m0s worker2", "1h11m0s worker2", "1h15m0s worker2"},
		},
		{
			name: "retry succeeds",
			cfg:  Config{Schedule: "0 * * * *", MaxRetries: 5, RetryBase: m, RetryMax: 4 * m},
			fail: func(h string, call int) bool { return h != "leader" && call <= 2 },
			calls: []string{"0s *", "1m0s worker1 worker2", "3m0s worker1 worker2",
				"1h0m0s *"},
		},
		{
			name:  "no retry across the next slot",
			cfg:   Config{Schedule: "0 * * * *", MaxRetries: 5, RetryBase: 20 * m, RetryMax: 40 * m},
			fail:  func(h string, _ int) bool { return h == "worker1" },
			calls: []string{"0s *", "20m0s worker1", "1h0m0s *", "1h20m0s worker1"},
		},
		{
			name:  "retries disabled",
			cfg:   Config{Schedule: "0 * * * *"},
			fail:  func(h string, _ int) bool { return h == "worker1" },
			calls: []string{"0s *", "1h0m0s *"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRepo("leader", "worker1", "worker2")
				r.fail = tt.fail
				s := mustNew(t, tt.cfg, r)
				stop := start(t, s)
				time.Sleep(2*time.Hour - time.Second)
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, c := range r.snapshot() {
					hosts := "*"
					if c.hosts != nil {
						hosts = strings.Join(c.hosts, " ")
					}
					got = append(got, fmt.Sprintf("%v %s", c.start.Sub(bubbleStart), hosts))
				}
				if !slices.Equal(got, tt.calls) {
					t.Errorf("calls:\n got %q\nwant %q", got, tt.calls)
				}
			})
		})
	}
}

func TestRunWholeRunErrorRetriesEveryHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		var mu sync.Mutex
		var hostsSeen [][]string
		job := func(ctx context.Context, hosts []string) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			hostsSeen = append(hostsSeen, hosts)
			return nil, errors.New("repository /var/lib/piosnap/repo: no space left on device")
		}
		s, err := New(Config{Schedule: "@daily", MaxRetries: 2, RetryBase: time.Minute, RetryMax: time.Hour}, r, job, nil)
		if err != nil {
			t.Fatal(err)
		}
		stop := start(t, s)
		time.Sleep(time.Hour)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if len(hostsSeen) != 3 || hostsSeen[0] != nil || hostsSeen[1] != nil || hostsSeen[2] != nil {
			t.Errorf("job called with %q, want every host three times", hostsSeen)
		}
		st := s.Snapshot()
		if st.Err == nil || !strings.Contains(st.String(), "failed: repository /var/lib/piosnap/repo: no space left") {
			t.Errorf("status %q, want the run's error", st)
		}
	})
}

// TestRunDST runs "30 2 * * *" in Europe/Berlin through 2000's two DST
// changes: the spring-forward day (2000-03-26) still runs, at 03:30 CEST,
// and the fall-back day (2000-10-29) runs once.
func TestRunDST(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		r.newest["leader"] = time.Date(1999, 12, 31, 2, 30, 0, 0, berlin)
		s := mustNew(t, Config{Schedule: "30 2 * * *", Zone: berlin}, r)
		s.recheck = 24 * time.Hour // nothing moves the wall clock here
		stop := start(t, s)
		time.Sleep(time.Until(time.Date(2000, 10, 31, 0, 0, 0, 0, berlin)))
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		perDay := map[string][]string{}
		for _, c := range r.snapshot() {
			l := c.start.In(berlin)
			perDay[l.Format("2006-01-02")] = append(perDay[l.Format("2006-01-02")], l.Format("15:04 MST"))
		}
		want := map[string][]string{
			"2000-03-25": {"02:30 CET"},
			"2000-03-26": {"03:30 CEST"},
			"2000-03-27": {"02:30 CEST"},
			"2000-10-28": {"02:30 CEST"},
			"2000-10-29": {"02:30 CEST"},
			"2000-10-30": {"02:30 CET"},
		}
		for day, w := range want {
			if got := perDay[day]; !slices.Equal(got, w) {
				t.Errorf("runs on %s: %q, want %q", day, got, w)
			}
		}
		if len(perDay) != 304 {
			t.Errorf("runs on %d days, want one on each of the 304 days from 2000-01-01 to 2000-10-30", len(perDay))
		}
		for day, runs := range perDay {
			if len(runs) != 1 {
				t.Errorf("%d runs on %s, want 1", len(runs), day)
			}
		}
	})
}

func TestRunClockInThePast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		// The stored version is five hours ahead of the clock, as after a
		// boot without a real-time clock.
		r.newest["leader"] = bubbleStart.Add(5 * time.Hour)
		var logs strings.Builder
		s, err := New(Config{Schedule: "0 * * * *"}, r, r.job, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		stop := start(t, s)
		time.Sleep(4*time.Hour + 30*time.Second) // off the loop's minute ticks
		if got := r.snapshot(); len(got) != 0 {
			t.Fatalf("runs started at %v while the clock was behind, want none", starts(got))
		}
		st := s.Snapshot()
		want := "clock 2000-01-01T04:00:00Z is earlier than the newest stored version 2000-01-01T05:00:00Z (host leader): waiting for the time to be set"
		if !strings.HasPrefix(st.Waiting, want) {
			t.Errorf("Waiting = %q, want it to start with %q", st.Waiting, want)
		}
		if !strings.HasPrefix(st.String(), "waiting: clock 2000-01-01T04:00:00Z") {
			t.Errorf("status line %q does not say why nothing runs", st)
		}
		// Time passes the stored version: the 06:00 slot runs.
		time.Sleep(2 * time.Hour)
		if got := starts(r.snapshot()); !slices.Equal(got, []time.Duration{6 * time.Hour}) {
			t.Errorf("runs started at %v, want [6h]", got)
		}
		if st := s.Snapshot(); st.Waiting != "" {
			t.Errorf("still waiting (%q) after the clock caught up", st.Waiting)
		}
		if n := strings.Count(logs.String(), "not running backups"); n != 1 {
			t.Errorf("the wait was logged %d times, want once:\n%s", n, logs.String())
		}
		if !strings.Contains(logs.String(), "no longer waiting") {
			t.Errorf("the end of the wait was not logged:\n%s", logs.String())
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRunStateUnreadable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		r.stateErrs = 3
		s := mustNew(t, Config{Schedule: "@daily"}, r)
		stop := start(t, s)
		time.Sleep(30 * time.Second)
		if w := s.Snapshot().Waiting; !strings.Contains(w, "cannot read the newest stored versions (bucket piosnap: connection refused)") {
			t.Errorf("Waiting = %q, want the State error", w)
		}
		time.Sleep(3 * time.Minute)
		if got := starts(r.snapshot()); !slices.Equal(got, []time.Duration{3 * time.Minute}) {
			t.Errorf("runs started at %v, want [3m] once the state is readable", got)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRunStop(t *testing.T) {
	const grace = 30 * time.Second
	tests := []struct {
		name         string
		dur          time.Duration // job duration
		ignoreCancel bool
		abort        bool          // call Abort right after cancelling
		wantStop     time.Duration // how long Run takes to return after cancel
		wantCancel   time.Duration // when the job's ctx is cancelled, -1 for never
		wantErr      error
	}{
		{"job finishes within grace", 20 * time.Second, false, false, 10 * time.Second, -1, nil},
		{"job cancelled after grace", time.Hour, false, false, grace, grace, nil},
		{"second stop cancels at once", time.Hour, false, true, 0, 0, nil},
		{"job ignores cancellation", time.Hour, true, false, grace + 10*time.Second, grace, ErrJobAbandoned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRepo("leader")
				r.dur, r.ignoreCancel = tt.dur, tt.ignoreCancel
				s := mustNew(t, Config{Schedule: "@daily", Grace: grace}, r)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- s.Run(ctx) }()
				time.Sleep(10 * time.Second)
				cancel()
				stopAt := time.Now()
				if tt.abort {
					s.Abort()
				}
				err := <-done
				if got := time.Since(stopAt); got != tt.wantStop {
					t.Errorf("Run returned %v after cancel, want %v", got, tt.wantStop)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Run = %v, want %v", err, tt.wantErr)
				}
				calls := r.snapshot()
				if len(calls) != 1 {
					t.Fatalf("%d jobs, want 1", len(calls))
				}
				c := calls[0].cancelled
				switch {
				case tt.wantCancel < 0 && !c.IsZero():
					t.Errorf("job cancelled %v after stop, want never", c.Sub(stopAt))
				case tt.wantCancel >= 0 && (c.IsZero() || c.Sub(stopAt) != tt.wantCancel):
					t.Errorf("job cancelled at %v (zero: never), want %v after stop", c, tt.wantCancel)
				}
				if tt.ignoreCancel {
					time.Sleep(tt.dur) // let the stubborn job end inside the bubble
				}
			})
		})
	}
}

func TestRunStopDuringJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		s := mustNew(t, Config{Schedule: "@daily", Jitter: time.Hour}, r)
		s.jitter = func(time.Duration) time.Duration { return 59 * time.Minute }
		stop := start(t, s)
		time.Sleep(time.Minute)
		before := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if time.Since(before) != 0 {
			t.Errorf("Run took %v to stop during the jitter delay, want 0", time.Since(before))
		}
		if got := r.snapshot(); len(got) != 0 {
			t.Errorf("a job started at %v after stopping", starts(got))
		}
	})
}

func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		r.newest["leader"] = bubbleStart
		s := mustNew(t, Config{Schedule: "0 * * * *"}, r)
		stop := start(t, s)
		time.Sleep(90*time.Minute + 30*time.Second) // off the loop's minute ticks

		err := s.Reload(Config{Schedule: "0 25 * * *"})
		if err == nil || !strings.Contains(err.Error(), "reload refused, keeping the running configuration") || !strings.Contains(err.Error(), `"0 25 * * *"`) {
			t.Errorf("Reload(invalid) = %v, want a refusal naming the schedule", err)
		}
		time.Sleep(time.Hour) // the old hourly schedule still runs at 2h
		if err := s.Reload(Config{Schedule: "45 * * * *"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		m := time.Minute
		// Hourly runs at 1h and 2h; at 2h30 the new schedule's last slot,
		// 1h45, is older than the 2h version, so the next run is at 2h45.
		want := []time.Duration{60 * m, 120 * m, 165 * m}
		if got := starts(r.snapshot()); !slices.Equal(got, want) {
			t.Errorf("runs started at %v, want %v", got, want)
		}
	})
}

func TestNotifier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRepo("leader")
		r.dur = 10 * time.Minute
		n := &recorder{}
		s := mustNew(t, Config{Schedule: "0 12 * * *"}, r)
		s.SetNotifier(n, 30*time.Second)
		stop := start(t, s)
		time.Sleep(time.Hour + time.Second) // off the 30 s ticks
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// One at start, then every 30s, including while the job ran.
		if len(n.pings) != 121 {
			t.Errorf("%d watchdog pings in an hour at 30s, want 121", len(n.pings))
		}
		for i := 1; i < len(n.pings); i++ {
			if d := n.pings[i].Sub(n.pings[i-1]); d != 30*time.Second {
				t.Fatalf("watchdog gap of %v at %s, want 30s", d, n.pings[i])
			}
		}
		want := []string{
			"running since 2000-01-01 00:00 UTC; next run 2000-01-01 12:00 UTC",
			"last run 2000-01-01 00:00 UTC ok; next run 2000-01-01 12:00 UTC",
		}
		if !slices.Equal(n.statuses, want) {
			t.Errorf("statuses:\n got %q\nwant %q", n.statuses, want)
		}
	})
}

func TestNewErrors(t *testing.T) {
	r := newRepo("leader")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad schedule", Config{Schedule: "daily"}, `schedule "daily"`},
		{"negative jitter", Config{Schedule: "@daily", Jitter: -time.Second}, "jitter -1s is negative"},
		{"negative retries", Config{Schedule: "@daily", MaxRetries: -1}, "max_retries -1 is negative"},
		{"retries without base", Config{Schedule: "@daily", MaxRetries: 3}, "retry_base 0s must be positive"},
		{"max below base", Config{Schedule: "@daily", MaxRetries: 3, RetryBase: time.Hour, RetryMax: time.Minute}, "retry_max 1m0s is shorter than retry_base 1h0m0s"},
		{"negative grace", Config{Schedule: "@daily", Grace: -time.Second}, "grace -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, r, r.job, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{Schedule: "@daily"}, nil, r.job, nil); err == nil {
		t.Error("New without a State succeeded")
	}
	if _, err := New(Config{Schedule: "@daily"}, r, nil, nil); err == nil {
		t.Error("New without a Job succeeded")
	}
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for i := 1; i <= 7; i++ {
		got = append(got, Backoff(time.Second, 20*time.Second, i))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 20, 20}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("Backoff sequence %v, want %v", got, want)
	}
	if d := Backoff(time.Minute, time.Hour, 1000); d != time.Hour {
		t.Errorf("Backoff at attempt 1000 = %v, want the cap", d)
	}
}

func TestStatusString(t *testing.T) {
	at := time.Date(2026, 5, 10, 3, 0, 0, 0, time.UTC)
	next := at.Add(24 * time.Hour)
	tests := []struct {
		st   Status
		want string
	}{
		{Status{}, "no run yet"},
		{Status{Next: next}, "no run yet; next run 2026-05-11 03:00 UTC"},
		{Status{LastStart: at, Running: true, Next: next}, "running since 2026-05-10 03:00 UTC; next run 2026-05-11 03:00 UTC"},
		{Status{LastStart: at, Next: next}, "last run 2026-05-10 03:00 UTC ok; next run 2026-05-11 03:00 UTC"},
		{Status{LastStart: at, Failed: []string{"worker1", "worker2"}}, "last run 2026-05-10 03:00 UTC: 2 host(s) failed: [worker1 worker2]"},
		{Status{LastStart: at, Err: errors.New("disk full")}, "last run 2026-05-10 03:00 UTC failed: disk full"},
		{Status{LastStart: at, Waiting: "clock behind"}, "waiting: clock behind"},
	}
	for _, tt := range tests {
		if got := tt.st.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestStatusIn(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	st := Status{LastStart: time.Date(2026, 5, 10, 1, 0, 0, 0, time.UTC), Next: time.Date(2026, 5, 11, 1, 0, 0, 0, time.UTC)}
	tests := []struct {
		loc  *time.Location
		want string
	}{
		{berlin, "last run 2026-05-10 03:00 CEST ok; next run 2026-05-11 03:00 CEST"},
		{nil, "last run 2026-05-10 01:00 UTC ok; next run 2026-05-11 01:00 UTC"},
	}
	for _, tt := range tests {
		if got := st.In(tt.loc).String(); got != tt.want {
			t.Errorf("In(%v).String() = %q, want %q", tt.loc, got, tt.want)
		}
	}
	if got := (Status{}).In(berlin); !got.LastStart.IsZero() || !got.Next.IsZero() {
		t.Errorf("In kept zero times zero? got %+v", got)
	}
}

// A run the schedule did not start (the web page's "back up now") is the
// last run in the status line; a slot in progress keeps its own status.
func TestRanByHand(t *testing.T) {
	r := newRepo("leader")
	s, err := New(Config{Schedule: "@daily"}, r, r.job, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 10, 3, 0, 0, 0, time.UTC)
	next := at.Add(24 * time.Hour)
	s.update(func(st *Status) { st.Next = next })
	s.Ran(at, at.Add(time.Minute), []string{"worker2"}, nil)
	if got, want := s.Snapshot().String(), "last run 2026-05-10 03:00 UTC: 1 host(s) failed: [worker2]; next run 2026-05-11 03:00 UTC"; got != want {
		t.Errorf("after a run by hand: %q, want %q", got, want)
	}
	s.Ran(at.Add(time.Hour), at.Add(2*time.Hour), nil, nil)
	if got, want := s.Snapshot().String(), "last run 2026-05-10 04:00 UTC ok; next run 2026-05-11 03:00 UTC"; got != want {
		t.Errorf("after a second run by hand: %q, want %q", got, want)
	}
	s.update(func(st *Status) { *st = Status{LastStart: at.Add(3 * time.Hour), Running: true, Next: next} })
	s.Ran(at.Add(4*time.Hour), at.Add(5*time.Hour), nil, errors.New("disk full"))
	if got, want := s.Snapshot().String(), "running since 2026-05-10 06:00 UTC; next run 2026-05-11 03:00 UTC"; got != want {
		t.Errorf("a run by hand during a slot: %q, want %q", got, want)
	}
}
