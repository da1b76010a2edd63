// Package restore puts a version of a Pioreactor unit's ~/.pioreactor back
// onto a unit. CheckVersion checks a version the way the unit's import will,
// Source rebuilds its archive from the repository as it is sent, and Verify
// compares the unit, exported after the import, with the version.
package restore
