// Package daemon is `piosnap run`: the long-running process that backs up
// the cluster on its schedule.
//
// A [Daemon] runs the [scheduler.Scheduler] with a job that takes the
// stores' locks, backs up, applies retention, pings healthchecks and the
// webhook, and records the outcome in the status file ([StatusFile], which
// `piosnap status` reads), in the Prometheus metrics and in systemd's
// status line. It reloads its configuration on SIGHUP, serves the metrics
// and the web application (package web) when configured, and finishes the
// verification of a restore of its own machine after the reboot.
//
// The work itself (opening stores, a backup, retention, a restore, the
// command line's report formats) is the command line's: the daemon reaches
// it through the small interfaces of [App], which cmd/piosnap implements.
package daemon
