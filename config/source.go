package config

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/scheduler"
	"github.com/piosnap/piosnap/store/retention"
)

// Source kinds.
const (
	// KindDir is a directory tree plus an optional database dump, taken
	// while the application that owns them is stopped (e.g. Pydio Cells).
	KindDir = "dir"
)

// Source is one [[source]] entry: something other than the Pioreactor
// cluster that is backed up on the same schedule. Kind says which fields
// apply; only KindDir exists so far.
type Source struct {
	// Kind is the source kind, "dir".
	Kind string `toml:"kind"`
	// Name is the "host" of the source's versions in list, retention,
	// status and metrics.
	Name string `toml:"name"`
	// Paths are the absolute directories backed up, the application's
	// working directory first.
	Paths []string `toml:"paths"`
	// Schedule, when set, backs the source up on this schedule (written
	// and evaluated as the global schedule) instead of the global one.
	Schedule string `toml:"schedule"`
	// Excludes are glob patterns relative to each path ("*" within a name,
	// "**" across folders); a matching folder is left out whole.
	Excludes []string `toml:"excludes"`
	// Hooks stop and start the application around the copy.
	Hooks Hooks `toml:"hooks"`
	// Database, when set, is dumped in the same stopped window.
	Database *Database `toml:"database"`
	// PreRestore says how long a restore's copy of what it replaced is
	// kept beside the folders.
	PreRestore PreRestore `toml:"pre_restore"`
}

// PreRestore says which copies of the state before a restore (the folders
// it replaced, kept as <path>.pre-restore-<time>, and the database dump
// beside them) stay: a copy either rule keeps stays, and the copy a restore
// has just made always does. The others are deleted after the next restore
// of the source, and by backups of it.
type PreRestore struct {
	// KeepLast keeps the newest N restores' copies (default 1).
	KeepLast *int `toml:"keep_last"`
	// KeepWithin keeps every copy younger than this, written as retention
	// durations are (default "7d"; "0d" switches the rule off).
	KeepWithin string `toml:"keep_within"`
}

// Defaults of [source.pre_restore].
const (
	DefaultPreRestoreKeepLast   = 1
	DefaultPreRestoreKeepWithin = "7d"
)

// Policy returns the rules with their defaults applied.
func (p PreRestore) Policy() (last int, within retention.Duration, err error) {
	last = DefaultPreRestoreKeepLast
	if p.KeepLast != nil {
		last = *p.KeepLast
	}
	if last < 0 {
		return 0, within, fmt.Errorf("pre_restore.keep_last = %d: want 0 or more, the number of the newest restores whose copies are kept", last)
	}
	text := p.KeepWithin
	if text == "" {
		text = DefaultPreRestoreKeepWithin
	}
	if within, err = retention.ParseDuration(text); err != nil {
		return 0, within, fmt.Errorf("pre_restore.keep_within: %w", err)
	}
	return last, within, nil
}

// Hooks are the commands that quiesce the application. Each is an argument
// list run without a shell.
type Hooks struct {
	// Stop stops the application, e.g. ["systemctl", "stop", "cells"].
	Stop []string `toml:"stop"`
	// Start starts it again; it runs whenever Stop ran, even when the
	// backup fails or piosnap is asked to stop.
	Start []string `toml:"start"`
	// ReadyCheck, when set, must exit 0 once the application has really
	// stopped.
	ReadyCheck []string `toml:"ready_check"`
	// RequireUnlocked are globs (relative to each path) of files no process
	// may hold a flock on once Stop returned: BoltDB and Bleve lock every
	// open store.
	RequireUnlocked []string `toml:"require_unlocked"`
	// Timeout bounds each hook (default 2m).
	Timeout Duration `toml:"timeout"`
}

// Database engines.
const (
	EngineMariaDB  = "mariadb"
	EngineMySQL    = "mysql"
	EngineCommand  = "command"
	EnginePostgres = "postgres"
)

// Database is the database dumped with a directory source.
type Database struct {
	// Engine is "mariadb", "mysql", "postgres" or "command".
	Engine string `toml:"engine"`
	// Name is the database, e.g. "cells".
	Name string `toml:"name"`
	// OptionsFile is a MySQL option file ([client] user, password, socket
	// or host), mode 0600, passed with --defaults-extra-file; for postgres
	// a pgpass file. The password never appears on a command line.
	OptionsFile string `toml:"options_file"`
	// Credential names a systemd credential (a file in
	// $CREDENTIALS_DIRECTORY) used like OptionsFile.
	Credential string `toml:"credential"`
	// User, Host, Port and Socket are optional connection settings passed
	// as arguments (none of them is secret).
	User   string `toml:"user"`
	Host   string `toml:"host"`
	Port   int    `toml:"port"`
	Socket string `toml:"socket"`
	// Dump and Load are the commands of engine "command": Dump writes the
	// dump to standard output, Load reads one from standard input.
	Dump []string `toml:"dump"`
	Load []string `toml:"load"`
	// Timeout bounds connecting checks and the restore's drop/create
	// statements (default 1m); a dump or load itself is never cut off
	// while it runs.
	Timeout Duration `toml:"timeout"`
}

// DefaultHookTimeout bounds each hook when hooks.timeout is not set.
const DefaultHookTimeout = 2 * time.Minute

func (c *Config) applySourceDefaults() {
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Hooks.Timeout.Duration == 0 {
			s.Hooks.Timeout.Duration = DefaultHookTimeout
		}
		if d := s.Database; d != nil && d.Timeout.Duration == 0 {
			d.Timeout.Duration = time.Minute
		}
	}
}

func (c *Config) validateSources() error {
	seen := map[string]bool{}
	for i, s := range c.Sources {
		field := fmt.Sprintf("source[%d]", i)
		if !storeName.MatchString(s.Name) {
			return fmt.Errorf("%s.name = %q: give each source a name of lower-case letters, digits, '-' and '_'; it is the host of its versions", field, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("%s.name = %q: two sources have this name; names must be unique", field, s.Name)
		}
		seen[s.Name] = true
		field = fmt.Sprintf("source %q", s.Name)
		if s.Kind != KindDir {
			return fmt.Errorf("%s: kind = %q: allowed value is \"dir\"", field, s.Kind)
		}
		if len(s.Paths) == 0 {
			return fmt.Errorf("%s: paths is empty: list the directories to back up, e.g. paths = [\"/var/cells\"]", field)
		}
		for j, p := range s.Paths {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
				return fmt.Errorf("%s: paths[%d] = %q: want an absolute, clean path other than /", field, j, p)
			}
			for k, q := range s.Paths[:j] {
				if p == q || strings.HasPrefix(p, q+"/") || strings.HasPrefix(q, p+"/") {
					return fmt.Errorf("%s: paths[%d] = %q overlaps paths[%d] = %q: list each tree once", field, j, p, k, q)
				}
			}
		}
		for _, g := range append(slices.Clone(s.Excludes), s.Hooks.RequireUnlocked...) {
			if err := checkGlob(g); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
		}
		h := s.Hooks
		if (len(h.Stop) == 0) != (len(h.Start) == 0) {
			return fmt.Errorf("%s: hooks.stop and hooks.start go together: whatever stops the application must start it again", field)
		}
		if len(h.Stop) == 0 && (len(h.ReadyCheck) > 0 || len(h.RequireUnlocked) > 0) {
			return fmt.Errorf("%s: hooks.ready_check and hooks.require_unlocked check that hooks.stop worked: set hooks.stop and hooks.start too", field)
		}
		if s.Schedule != "" {
			if _, err := scheduler.ParseSchedule(s.Schedule, c.location); err != nil {
				return fmt.Errorf("%s: %w (leave schedule out to back it up on the global schedule)", field, err)
			}
		}
		if _, _, err := s.PreRestore.Policy(); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if d := s.Database; d != nil {
			if err := d.validate(); err != nil {
				return fmt.Errorf("%s: database: %w", field, err)
			}
		}
	}
	return nil
}

func (d *Database) validate() error {
	switch d.Engine {
	case EngineMariaDB, EngineMySQL, EnginePostgres:
		if d.Name == "" {
			return errors.New("name is empty: give the database to dump, e.g. name = \"cells\"")
		}
		if len(d.Dump) > 0 || len(d.Load) > 0 {
			return fmt.Errorf("dump and load belong to engine = \"command\", not %q", d.Engine)
		}
		if d.OptionsFile != "" && d.Credential != "" {
			return errors.New("give options_file or credential, not both")
		}
		if d.Credential != "" && strings.ContainsAny(d.Credential, "/\\") {
			return fmt.Errorf("credential = %q: a systemd credential name has no '/'", d.Credential)
		}
		if d.OptionsFile != "" && !filepath.IsAbs(d.OptionsFile) {
			return fmt.Errorf("options_file = %q: give an absolute path", d.OptionsFile)
		}
	case EngineCommand:
		if len(d.Dump) == 0 || len(d.Load) == 0 {
			return errors.New("engine = \"command\" needs dump (writes the dump to standard output) and load (reads it from standard input)")
		}
		if d.Name == "" {
			d.Name = "database"
		}
	default:
		return fmt.Errorf("engine = %q: allowed values are \"mariadb\", \"mysql\", \"postgres\" and \"command\"", d.Engine)
	}
	if strings.ContainsAny(d.Name, "/\\ \x00`'\"") {
		return fmt.Errorf("name = %q: not a database name", d.Name)
	}
	return nil
}

// checkGlob checks that a pattern is relative and well formed.
func checkGlob(g string) error {
	if g == "" || strings.HasPrefix(g, "/") {
		return fmt.Errorf("pattern %q: want a non-empty pattern relative to each path, e.g. \"data/.minio.sys/tmp\"", g)
	}
	for _, part := range strings.Split(g, "/") {
		if part == "**" {
			continue
		}
		if _, err := path.Match(part, ""); err != nil {
			return fmt.Errorf("pattern %q: %v", g, err)
		}
	}
	return nil
}

// Source returns the source named name, or nil.
func (c *Config) Source(name string) *Source {
	for i := range c.Sources {
		if c.Sources[i].Name == name {
			return &c.Sources[i]
		}
	}
	return nil
}

// ScheduleOf returns the schedule host is backed up on: its source's own,
// else the global one.
func (c *Config) ScheduleOf(host string) string {
	if s := c.Source(host); s != nil && s.Schedule != "" {
		return s.Schedule
	}
	return c.Schedule
}

// OwnSchedules returns the sources backed up on schedules of their own, by
// name.
func (c *Config) OwnSchedules() map[string]string {
	out := map[string]string{}
	for _, s := range c.Sources {
		if s.Schedule != "" {
			out[s.Name] = s.Schedule
		}
	}
	return out
}

// PioreactorEnabled reports whether backups include the Pioreactor
// cluster: when the [pioreactor] table is present, or when no [[source]]
// is configured (the original, Pioreactor-only configuration).
func (c *Config) PioreactorEnabled() bool { return c.pioreactorSet || len(c.Sources) == 0 }
