// Package web is the daemon's web application: an overview of every unit's
// backups and of the daemon's readings of stored data (with a warning at
// the top when they found damage), a page per unit with its versions, ZIP
// downloads, "back up now", and restore from the browser with live
// progress and a way back.
//
// Pages are rendered on the server with html/template from embedded files;
// a few lines of JavaScript poll a running job's progress. Every page and
// action needs a login (a bcrypt hash in a file, a session cookie, a CSRF
// token on every state-changing request), except an optional read-only
// status page. A JSON API under /api/ serves scripts the same: status,
// versions, jobs, "back up now", and a restore's check and start, with the
// page's login, CSRF and confirmation rules.
//
// The package does not know how backups and restores are done: it consumes
// small interfaces (Source, Backupper, Restorer) that the daemon in
// cmd/piosnap implements. Backups and restores run in the daemon's own
// goroutines, so a browser that closes loses nothing.
package web
