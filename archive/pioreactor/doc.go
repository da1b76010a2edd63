// Package pioreactor is an HTTP client for the archive endpoints of a
// Pioreactor cluster: listing units, exporting the ~/.pioreactor directory of
// the whole cluster (through the leader) or of one unit (directly), importing
// an archive into a unit and following the import until the unit has rebooted.
//
// The client speaks the contract of Pioreactor releases 25.9.18 through
// 26.7.x: it understands every error-body shape those releases produce and
// both task-result polling contracts. Failures come back as errors that name
// the unit and the fix; the well-known cases can be tested with errors.Is
// against the Err* kinds (ErrSentinel, ErrUnreachable, ErrLeaderTimeout, ...)
// and the raw HTTP reply is available through errors.As with *APIError.
//
// Credentials given in Config are sent as HTTP Basic auth and never appear in
// URLs or error messages.
package pioreactor
