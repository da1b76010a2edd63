package main

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
}

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
	}
}

// recordRun sets the gauges of one run's outcome.
func (m *daemonMetrics) recordRun(ev notify.Event, start time.Time) {
	m.lastRun.Set(unixSeconds(start))
	m.lastRunOK.Set(boolValue(ev.Result == "success"))
	for _, h := range ev.Hosts {
		for _, s := range h.Stores {
			m.lastResult.Set(boolValue(s.Error == "" && s.Version != ""), h.Host, s.Store)
			if s.Error == "" {
				m.newBytes.Set(float64(s.StoredBytes), h.Host, s.Store)
			}
		}
		if h.Error != "" {
			for _, s := range h.Stores {
				m.lastResult.Set(0, h.Host, s.Store)
			}
		}
	}
}

// recordHost sets the per-host gauges from a run's report.
func (m *daemonMetrics) recordHost(host string, size int64, d time.Duration) {
	m.size.Set(float64(size), host)
	m.duration.Set(d.Seconds(), host)
}

// recordVersions sets the gauges read from one store's versions.
func (m *daemonMetrics) recordVersions(storeName string, vs []*store.Version) {
	count := map[string]int{}
	newest := map[string]time.Time{}
	for _, v := range vs {
		count[v.Host]++
		if v.Time.After(newest[v.Host]) {
			newest[v.Host] = v.Time
		}
	}
	for h, n := range count {
		m.versions.Set(float64(n), h, storeName)
		m.lastSuccess.Set(unixSeconds(newest[h]), h, storeName)
	}
}

// retentionOK records a successful retention in a store.
func (m *daemonMetrics) retentionOK(storeName string, t time.Time) {
	m.retentionSuccess.Set(unixSeconds(t), storeName)
}

// metricsHandler serves the registry, refreshing the expected interval
// from the schedule in force at each scrape.
func (d *daemon) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		cfg, _ := d.current()
		if sched, err := scheduler.ParseSchedule(cfg.Schedule, cfg.Location()); err == nil {
			now := time.Now()
			prev, next := scheduler.Prev(sched, now), sched.Next(now)
			if !prev.IsZero() && !next.IsZero() {
				d.metrics.setInterval(next.Sub(prev))
			}
		}
		d.metrics.reg.ServeHTTP(w, r)
	})
	return mux
}

// setInterval sets the expected interval for every host and store that
// has a last success.
func (m *daemonMetrics) setInterval(iv time.Duration) {
	m.lastSuccess.Each(func(labels []string, _ float64) {
		m.interval.Set(iv.Seconds(), labels...)
	})
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
