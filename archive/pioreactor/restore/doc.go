// Package restore puts a version of a Pioreactor unit's ~/.pioreactor back
// onto a unit: it checks the version and the unit, takes a safety snapshot,
// uploads the archive rebuilt from the repository through the leader, waits
// for the import and the reboot, and verifies the unit by exporting it.
//
// Prepare does everything that changes nothing (hold the version against
// retention, check it with CheckVersion, lay out its archive as a Source,
// wait until the unit can take an import); Run does the rest, ending with
// Verify. A restore reports what it does as Events; the caller prints them and
// passes the steps to a web page. When the unit is the machine piosnap runs
// on, the import's reboot ends the restore before it can verify; a Record
// in the state directory carries the verification across the reboot, and
// FinishSelf completes it.
package restore
