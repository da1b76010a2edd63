// Package simulator runs a simulated Pioreactor cluster on loopback for tests
// and benchmarks: one leader and any number of workers, each an HTTP server
// with its own address serving a real directory on disk as its ~/.pioreactor.
//
// The simulator reproduces the 26.7.2 export/import contract described in
// /work/shared/spec/pioreactor-api.md, including its quirks: the per-unit
// archive layout written the way Python's zipfile writes it, the leader's
// flat "<host>/" aggregate, the single-result pass-through, the duplicate
// metadata entry after an import, the config.ini rewrite, the reboot after an
// import and the loss of task results that follows it.
//
// It is the project's only fake. Tests start a cluster with [Start], talk to
// it over HTTP like they would to real units, and use the controls on [Unit]
// and [Cluster] (offline, slow, sentinel, export delay, failing imports,
// database growth, calibration changes) to reach every path of the contract.
//
// For storage benchmarks, [AgeDatabase] and [Cluster.AgeNight] age the
// leader's database night by night like a real one (appends, updates in
// place, index inserts among older entries, deleted ranges), and
// [DiffPages] measures what a night changed, page by page.
package simulator
