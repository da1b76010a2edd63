package daemon

import (
	"net/http"
	"time"

	"github.com/piosnap/piosnap/scheduler"
	"github.com/piosnap/piosnap/scheduler/metrics"
	"github.com/piosnap/piosnap/scheduler/notify"
	"github.com/piosnap/piosnap/store"
)

// daemonMetrics are the gauges of the daemon's /metrics endpoint.
type daemonMetrics struct {
	reg              *metrics.Registry
	lastSuccess      *metrics.Gauge // host, store
	lastResult       *metrics.Gauge // host, store
	newBytes         *metrics.Gauge // host, store
	versions         *metrics.Gauge // host, store
	interval         *metrics.Gauge // host, store
	duration         *metrics.Gauge // host
	size             *metrics.Gauge // host
	lastRun          *metrics.Gauge // -
	lastRunOK        *metrics.Gauge // -
	retentionSuccess *metrics.Gauge // store
	verifySuccess    *metrics.Gauge // store
	verifyProblems   *metrics.Gauge // store
}

// newDaemonMetrics registers the gauges.
func newDaemonMetrics() *daemonMetrics {
	r := metrics.NewRegistry()
	g := func(name, help string, labels ...string) *metrics.Gauge {
		m, err := r.NewGauge(name, help, labels...)
		if err != nil {
			panic(err) // the names below are constants
		}
		return m
	}
	return &daemonMetrics{
		reg:              r,
		lastSuccess:      g("piosnap_last_success_timestamp_seconds", "Time of the host's newest version in the store (Unix seconds).", "host", "store"),
		lastResult:       g("piosnap_last_run_success", "1 if the last run stored the host in the store, 0 if it failed.", "host", "store"),
		newBytes:         g("piosnap_last_run_new_bytes", "Bytes the last run's version added to the store.", "host", "store"),
		versions:         g("piosnap_versions", "Number of versions of the host in the store.", "host", "store"),
		interval:         g("piosnap_expected_interval_seconds", "Time between the schedule's slots around now; alert on time() - piosnap_last_success_timestamp_seconds > 2 * this.", "host", "store"),
		duration:         g("piosnap_last_run_duration_seconds", "How long pulling and storing the host took in the last run.", "host"),
		size:             g("piosnap_host_size_bytes", "Total content size of the host's ~/.pioreactor in the last run.", "host"),
		lastRun:          g("piosnap_last_run_timestamp_seconds", "When the last run started (Unix seconds)."),
		lastRunOK:        g("piosnap_last_run_ok", "1 if every host succeeded in the last run, 0 otherwise."),
		retentionSuccess: g("piosnap_retention_last_success_timestamp_seconds", "When retention last succeeded in the store (Unix seconds).", "store"),
		verifySuccess:    g("piosnap_verify_last_success_timestamp_seconds", "When a part of the store's data was last read and verified (Unix seconds).", "store"),
		verifyProblems:   g("piosnap_verify_problems", "Damaged objects found by the last reading of the store's data (0: none).", "store"),
	}
}

// recordRun sets the gauges of one run's outcome. Every host of the run
// gets a result in every configured store (stores): a host that failed, or
// that a store did not receive, reads 0 there and added 0 bytes, so the
// "last run failed" alert fires and no earlier run's numbers pass for
// fresh. A run that failed as a whole stored nothing: every host and store
// seen before reads 0.
func (m *daemonMetrics) recordRun(ev notify.Event, start time.Time, stores []string) {
	m.lastRun.Set(unixSeconds(start))
	m.lastRunOK.Set(boolValue(ev.Result == "success"))
	if len(ev.Hosts) == 0 && ev.Result != "success" {
		m.lastResult.Each(func(labels []string, _ float64) {
			m.lastResult.Set(0, labels...)
			m.newBytes.Set(0, labels...)
		})
		return
	}
	for _, h := range ev.Hosts {
		for _, name := range stores {
			ok, stored := false, int64(0)
			for _, s := range h.Stores {
				if s.Store == name && s.Error == "" && s.Version != "" {
					ok, stored = true, s.StoredBytes
				}
			}
			m.lastResult.Set(boolValue(ok), h.Host, name)
			m.newBytes.Set(float64(stored), h.Host, name)
		}
	}
}

// recordHost sets the per-host gauges from a run's report: the time the
// host took, failed or not, and its size when it was read.
func (m *daemonMetrics) recordHost(host string, size int64, d time.Duration, ok bool) {
	if ok {
		m.size.Set(float64(size), host)
	}
	m.duration.Set(d.Seconds(), host)
}

// recordVersions sets the gauges read from one store's versions. Each of
// hosts (the units of the last run) without a version in the store reads
// 0 versions, newest at time 0, so that the stale alert fires for a unit
// that was never backed up.
func (m *daemonMetrics) recordVersions(storeName string, vs []*store.Version, hosts []string) {
	count := map[string]int{}
	newest := map[string]time.Time{}
	for _, h := range hosts {
		count[h] = 0
	}
	for _, v := range vs {
		count[v.Host]++
		if v.Time.After(newest[v.Host]) {
			newest[v.Host] = v.Time
		}
	}
	for h, n := range count {
		if n == 0 {
			m.versions.Set(0, h, storeName)
			m.lastSuccess.Set(0, h, storeName)
			continue
		}
		m.versions.Set(float64(n), h, storeName)
		m.lastSuccess.Set(unixSeconds(newest[h]), h, storeName)
	}
}

// verified records a reading of a store's data that ended at t and found
// problems damaged objects.
func (m *daemonMetrics) verified(storeName string, t time.Time, problems int) {
	m.verifySuccess.Set(unixSeconds(t), storeName)
	m.verifyProblems.Set(float64(problems), storeName)
}

// retentionOK records a successful retention in a store.
func (m *daemonMetrics) retentionOK(storeName string, t time.Time) {
	m.retentionSuccess.Set(unixSeconds(t), storeName)
}

// metricsHandler serves the registry, refreshing the expected interval
// from the schedule in force at each scrape.
func (d *Daemon) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		cfg, _ := d.current()
		now := time.Now()
		d.metrics.setInterval(func(host string) time.Duration {
			return scheduler.Interval(cfg.ScheduleOf(host), cfg.Location(), now)
		})
		d.metrics.reg.ServeHTTP(w, r)
	})
	return mux
}

// setInterval sets the expected interval of every host and store that
// has a last success: interval(host), unless that is 0.
func (m *daemonMetrics) setInterval(interval func(host string) time.Duration) {
	m.lastSuccess.Each(func(labels []string, _ float64) {
		if iv := interval(labels[0]); iv > 0 {
			m.interval.Set(iv.Seconds(), labels...)
		}
	})
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
