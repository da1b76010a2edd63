// Package scheduler decides when piosnap takes snapshots and runs them.
//
// A schedule is a standard five-field cron expression or a descriptor such
// as @daily, evaluated on the wall clock of one IANA zone. Scheduling is
// state-based: on start and at every wake-up the scheduler asks the
// repositories for each host's newest complete version and runs once if
// any host is older than the most recent scheduled slot. Missed slots are
// never replayed one by one; one catch-up run covers all of them.
//
// Runs never overlap. A run may be delayed by a random jitter, hosts that
// failed are retried with capped exponential backoff until the next slot,
// and nothing runs while the clock is earlier than the newest stored
// version (a Raspberry Pi without a real-time clock boots in the past
// until NTP or Pioreactor's clock sync sets the time).
//
// The decision itself is the pure function [Due]; [Scheduler] is the loop
// around it.
package scheduler
