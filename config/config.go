// Package config reads and validates piosnap's TOML configuration.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/piosnap/piosnap/scheduler"
	"github.com/piosnap/piosnap/store/retention"
)

// DefaultPath is where piosnap looks for its configuration when neither -c
// nor $PIOSNAP_CONFIG names one.
const DefaultPath = "/etc/piosnap/piosnap.toml"

// Example is the commented example configuration, piosnap.example.toml.
//
//go:embed piosnap.example.toml
var Example string

// Config is the whole configuration.
type Config struct {
	// Zone is the IANA time zone schedules and retention buckets use;
	// empty means the system zone.
	Zone string `toml:"zone"`
	// Schedule is a cron expression or descriptor (@daily) for `piosnap run`.
	Schedule string `toml:"schedule"`
	// Jitter delays each scheduled run by a random duration up to it.
	Jitter Duration `toml:"jitter"`
	// StateDir holds the daemon's status file.
	StateDir string `toml:"state_dir"`
	// LockWait is how long a command waits for another piosnap to release a
	// repository before giving up; zero means it does not wait.
	LockWait Duration `toml:"lock_wait"`

	Pioreactor Pioreactor `toml:"pioreactor"`
	Stores     []Store    `toml:"store"`
	Log        Log        `toml:"log"`
	Status     Status     `toml:"status"`
	Metrics    Metrics    `toml:"metrics"`
	Notify     Notify     `toml:"notify"`
	Web        Web        `toml:"web"`
	// Sources are further things to back up, e.g. a Pydio Cells server.
	Sources []Source `toml:"source"`

	location      *time.Location
	pioreactorSet bool
}

// Pioreactor says how to reach the cluster.
type Pioreactor struct {
	// Leader is the leader's address: host, host:port or an http(s) URL.
	Leader string `toml:"leader"`
	// Pull is "broadcast" (one cluster archive, per-unit fallback) or
	// "per-unit" (each unit directly).
	Pull string `toml:"pull"`
	// Addresses maps unit names to host[:port], like Pioreactor's
	// [cluster.addresses]; others are <unit>.local:80.
	Addresses map[string]string `toml:"addresses"`
	// User and PasswordFile give optional HTTP Basic credentials; the
	// password may also come from $PIOSNAP_PIOREACTOR_PASSWORD.
	User         string `toml:"user"`
	PasswordFile string `toml:"password_file"`
	// Timeout bounds connecting and waiting for a reply's headers; it does
	// not cap a long download.
	Timeout Duration `toml:"timeout"`
	// ExportTimeout bounds the wait for an export to start: a unit zips its
	// whole directory (the leader's database included) before it answers.
	// The download itself is never cut off while data flows.
	ExportTimeout Duration `toml:"export_timeout"`
	// RebootTimeout is how long restore waits for a unit to come back.
	RebootTimeout Duration `toml:"reboot_timeout"`
}

// Store is one repository.
type Store struct {
	// Name identifies the store in commands and output.
	Name string `toml:"name"`
	// Type is "local" or "s3".
	Type string `toml:"type"`
	// Path is the local repository directory (type local).
	Path string `toml:"path"`

	// S3 settings (type s3).
	Endpoint        string `toml:"endpoint"`
	Bucket          string `toml:"bucket"`
	Prefix          string `toml:"prefix"`
	Region          string `toml:"region"`
	PathStyle       *bool  `toml:"path_style"`
	TLS             *bool  `toml:"tls"`
	CAFile          string `toml:"ca_file"`
	CredentialsFile string `toml:"credentials_file"`

	Retention Retention `toml:"retention"`

	// VerifyDays is how many days the daemon takes to read and verify
	// every pack of the store: after the first run of each day it reads
	// one part of VerifyDays (`piosnap check --read-data-subset`). 0 turns
	// it off; unset means DefaultVerifyDays.
	VerifyDays *int `toml:"verify_days"`
}

// DefaultVerifyDays is verify_days when unset: every pack is read once a
// month, a thirtieth each day.
const DefaultVerifyDays = 30

// VerifyDaysOrDefault returns verify_days, or DefaultVerifyDays when unset.
func (s *Store) VerifyDaysOrDefault() int {
	if s.VerifyDays == nil {
		return DefaultVerifyDays
	}
	return *s.VerifyDays
}

// Retention is a store's retention policy, with restic's forget semantics.
type Retention struct {
	KeepLast          int    `toml:"keep_last"`
	KeepHourly        int    `toml:"keep_hourly"`
	KeepDaily         int    `toml:"keep_daily"`
	KeepWeekly        int    `toml:"keep_weekly"`
	KeepMonthly       int    `toml:"keep_monthly"`
	KeepYearly        int    `toml:"keep_yearly"`
	KeepWithin        string `toml:"keep_within"`
	KeepWithinHourly  string `toml:"keep_within_hourly"`
	KeepWithinDaily   string `toml:"keep_within_daily"`
	KeepWithinWeekly  string `toml:"keep_within_weekly"`
	KeepWithinMonthly string `toml:"keep_within_monthly"`
	KeepWithinYearly  string `toml:"keep_within_yearly"`
	// AfterBackup runs forget after every scheduled backup (default true).
	AfterBackup *bool `toml:"after_backup"`
}

// Log configures logging.
type Log struct {
	// Format is "auto" (colour on a terminal, plain under journald), "text"
	// or "json".
	Format string `toml:"format"`
	// Level is "debug", "info", "warn" or "error".
	Level string `toml:"level"`
}

// Status configures freshness reporting.
type Status struct {
	// StaleAfter flags a host whose newest version is older than this.
	StaleAfter Duration `toml:"stale_after"`
}

// Metrics configures the optional Prometheus endpoint.
type Metrics struct {
	// Listen is a loopback address such as "127.0.0.1:9472"; empty is off.
	Listen string `toml:"listen"`
	// AllowRemote permits a non-loopback Listen address (for a Prometheus
	// on another machine); the daemon then warns that the endpoint has no
	// authentication.
	AllowRemote bool `toml:"allow_remote"`
}

// Loopback reports whether Listen is a loopback address.
func (m Metrics) Loopback() bool {
	host, _, err := net.SplitHostPort(m.Listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// Web configures the daemon's optional web application.
type Web struct {
	// Listen is host:port, e.g. "0.0.0.0:9473" for the lab's network;
	// empty is off.
	Listen string `toml:"listen"`
	// PasswordFile holds the login password's bcrypt hash, written by
	// `piosnap web passwd`; default state_dir/web.password.
	PasswordFile string `toml:"password_file"`
	// PublicStatus serves a read-only freshness page at /status without a
	// login.
	PublicStatus bool `toml:"public_status"`
	// SessionTimeout ends a login session that has been idle this long.
	SessionTimeout Duration `toml:"session_timeout"`
}

// Notify configures optional pings.
type Notify struct {
	// Healthchecks is a healthchecks.io-style ping URL.
	Healthchecks string `toml:"healthchecks_url"`
	// Webhook receives a JSON body after every run.
	Webhook string `toml:"webhook_url"`
}

// Duration is a time.Duration written as a Go duration string ("90s", "36h").
type Duration struct{ time.Duration }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write e.g. \"90s\", \"10m\" or \"36h\"", string(b))
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config %s does not exist: create it from the example (`piosnap config example > %s`) or name another with -c", path, path)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a configuration.
func Parse(text string) (*Config, error) {
	var c Config
	md, err := toml.Decode(text, &c)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("unknown key %s: check its spelling against piosnap.example.toml (`piosnap config example`)", strings.Join(keys, ", "))
	}
	c.pioreactorSet = md.IsDefined("pioreactor")
	c.applyDefaults(md)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Defaults applied to fields left out.
const (
	DefaultSchedule = "@daily"
	DefaultPull     = "broadcast"
	DefaultLockWait = 10 * time.Minute
)

// applyDefaults fills in the fields left out. md tells a field left out
// from one set to zero where zero means something (lock_wait = "0s": do not
// wait).
func (c *Config) applyDefaults(md toml.MetaData) {
	if c.Schedule == "" {
		c.Schedule = DefaultSchedule
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/piosnap"
	}
	if !md.IsDefined("lock_wait") {
		c.LockWait.Duration = DefaultLockWait
	}
	p := &c.Pioreactor
	if p.Leader == "" {
		p.Leader = "pioreactor.local"
	}
	if p.Pull == "" {
		p.Pull = DefaultPull
	}
	if p.Timeout.Duration == 0 {
		p.Timeout.Duration = 60 * time.Second
	}
	if p.ExportTimeout.Duration == 0 {
		p.ExportTimeout.Duration = 10 * time.Minute
	}
	if p.RebootTimeout.Duration == 0 {
		p.RebootTimeout.Duration = 5 * time.Minute
	}
	for i := range c.Stores {
		s := &c.Stores[i]
		if s.Type == "" {
			s.Type = "local"
		}
		if s.Name == "" {
			s.Name = s.Type
		}
	}
	if c.Log.Format == "" {
		c.Log.Format = "auto"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Web.PasswordFile == "" {
		c.Web.PasswordFile = filepath.Join(c.StateDir, "web.password")
	}
	if c.Web.SessionTimeout.Duration == 0 {
		c.Web.SessionTimeout.Duration = 12 * time.Hour
	}
	if c.Status.StaleAfter.Duration == 0 {
		c.Status.StaleAfter.Duration = 36 * time.Hour
	}
	c.applySourceDefaults()
}

var storeName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Validate checks every field and names the first wrong one.
func (c *Config) Validate() error {
	loc, err := LoadZone(c.Zone)
	if err != nil {
		return err
	}
	c.location = loc
	if _, err := scheduler.ParseSchedule(c.Schedule, loc); err != nil {
		return err
	}
	p := c.Pioreactor
	if p.Pull != "broadcast" && p.Pull != "per-unit" {
		return fmt.Errorf("pioreactor.pull = %q: allowed values are \"broadcast\" and \"per-unit\"", p.Pull)
	}
	if err := checkAddress("pioreactor.leader", p.Leader); err != nil {
		return err
	}
	for unit, addr := range p.Addresses {
		if err := checkAddress("pioreactor.addresses."+unit, addr); err != nil {
			return err
		}
	}
	if p.PasswordFile != "" && p.User == "" {
		return errors.New("pioreactor.password_file is set but pioreactor.user is empty: set both for HTTP Basic auth")
	}
	if len(c.Stores) == 0 {
		return errors.New("no [[store]] configured: add at least one, e.g. [[store]] type = \"local\" path = \"/var/lib/piosnap/repo\"")
	}
	seen := map[string]bool{}
	for i, s := range c.Stores {
		field := fmt.Sprintf("store[%d]", i)
		if !storeName.MatchString(s.Name) {
			return fmt.Errorf("%s.name = %q: use lower-case letters, digits, '-' and '_'", field, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("%s.name = %q: two stores have this name; names must be unique", field, s.Name)
		}
		seen[s.Name] = true
		field = fmt.Sprintf("store %q", s.Name)
		switch s.Type {
		case "local":
			if s.Path == "" {
				return fmt.Errorf("%s: path is required for a local store", field)
			}
			if s.Endpoint != "" || s.Bucket != "" {
				return fmt.Errorf("%s: endpoint and bucket belong to type = \"s3\" stores", field)
			}
		case "s3":
			if s.Endpoint == "" || s.Bucket == "" {
				return fmt.Errorf("%s: endpoint and bucket are required for an s3 store", field)
			}
			if strings.Contains(s.Endpoint, "://") {
				return fmt.Errorf("%s: endpoint %q must be host[:port] without a scheme; use tls = true/false", field, s.Endpoint)
			}
			if s.Path != "" {
				return fmt.Errorf("%s: path belongs to type = \"local\" stores; use prefix for s3", field)
			}
		default:
			return fmt.Errorf("%s: type = %q: allowed values are \"local\" and \"s3\"", field, s.Type)
		}
		if _, err := s.Retention.Policy(); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if n := s.VerifyDaysOrDefault(); n < 0 || n > 3650 {
			return fmt.Errorf("%s: verify_days = %d: use 1 to 3650 days (%d by default), or 0 to turn the daemon's reading of stored data off", field, n, DefaultVerifyDays)
		}
	}
	if err := c.validateSources(); err != nil {
		return err
	}
	switch c.Log.Format {
	case "auto", "text", "json":
	default:
		return fmt.Errorf("log.format = %q: allowed values are \"auto\", \"text\" and \"json\"", c.Log.Format)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return fmt.Errorf("log.level = %q: allowed values are \"debug\", \"info\", \"warn\" and \"error\"", c.Log.Level)
	}
	if c.Metrics.Listen != "" {
		host, _, err := net.SplitHostPort(c.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen = %q: want host:port, e.g. \"127.0.0.1:9472\"", c.Metrics.Listen)
		}
		if !c.Metrics.AllowRemote && !c.Metrics.Loopback() {
			return fmt.Errorf("metrics.listen = %q: the metrics endpoint has no authentication, so it listens on loopback only (127.0.0.1 or ::1); for a Prometheus on another machine, set allow_remote = true under [metrics] (anyone who can reach %s can then read the metrics)", c.Metrics.Listen, host)
		}
	}
	if c.Web.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Web.Listen); err != nil || port == "" {
			return fmt.Errorf("web.listen = %q: want host:port, e.g. \"0.0.0.0:9473\" for the lab network or \"127.0.0.1:9473\" for this machine only", c.Web.Listen)
		}
	}
	for field, u := range map[string]string{"notify.healthchecks_url": c.Notify.Healthchecks, "notify.webhook_url": c.Notify.Webhook} {
		if u == "" {
			continue
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("%s = %q: want an http:// or https:// URL", field, u)
		}
	}
	return nil
}

func checkAddress(field, addr string) error {
	if addr == "" {
		return fmt.Errorf("%s is empty: give host, host:port or http://host:port", field)
	}
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s = %q: want host, host:port or an http(s):// URL", field, addr)
		}
		return nil
	}
	if strings.ContainsAny(addr, "/ ") {
		return fmt.Errorf("%s = %q: want host, host:port or an http(s):// URL", field, addr)
	}
	return nil
}

// LoadZone resolves an IANA zone name; empty means the system zone.
func LoadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("zone = %q is not an IANA time zone: write e.g. \"Europe/Berlin\", \"America/New_York\" or \"UTC\"", name)
	}
	return loc, nil
}

// Location returns the configured time zone.
func (c *Config) Location() *time.Location {
	if c.location == nil {
		return time.Local
	}
	return c.location
}

// ZoneName is the zone's name as recorded in versions.
func (c *Config) ZoneName() string { return c.Location().String() }

// Store returns the store named name.
func (c *Config) Store(name string) (*Store, error) {
	var names []string
	for i := range c.Stores {
		if c.Stores[i].Name == name {
			return &c.Stores[i], nil
		}
		names = append(names, c.Stores[i].Name)
	}
	return nil, fmt.Errorf("no store named %q: configured stores are %s", name, strings.Join(names, ", "))
}

// Policy converts the retention settings; an all-zero policy is valid here
// (it means "no retention") and refused only when forget runs.
func (r Retention) Policy() (retention.Policy, error) {
	p := retention.Policy{
		Last: r.KeepLast, Hourly: r.KeepHourly, Daily: r.KeepDaily,
		Weekly: r.KeepWeekly, Monthly: r.KeepMonthly, Yearly: r.KeepYearly,
	}
	for _, d := range []struct {
		field string
		text  string
		dst   *retention.Duration
	}{
		{"keep_within", r.KeepWithin, &p.Within},
		{"keep_within_hourly", r.KeepWithinHourly, &p.WithinHourly},
		{"keep_within_daily", r.KeepWithinDaily, &p.WithinDaily},
		{"keep_within_weekly", r.KeepWithinWeekly, &p.WithinWeekly},
		{"keep_within_monthly", r.KeepWithinMonthly, &p.WithinMonthly},
		{"keep_within_yearly", r.KeepWithinYearly, &p.WithinYearly},
	} {
		if d.text == "" {
			continue
		}
		v, err := retention.ParseDuration(d.text)
		if err != nil {
			return p, fmt.Errorf("retention.%s: %w", d.field, err)
		}
		*d.dst = v
	}
	if p.Empty() {
		return p, nil
	}
	if err := p.Validate(); err != nil {
		return p, err // "retention keep_daily is -5: …" names itself
	}
	return p, nil
}

// ForgetAfterBackup reports whether retention runs after each scheduled
// backup of the store.
func (r Retention) ForgetAfterBackup() bool { return r.AfterBackup == nil || *r.AfterBackup }

// PathStyleOrDefault reports whether S3 requests use path-style addressing
// (default true, which MinIO needs).
func (s *Store) PathStyleOrDefault() bool { return s.PathStyle == nil || *s.PathStyle }

// TLSOrDefault reports whether S3 requests use HTTPS (default true).
func (s *Store) TLSOrDefault() bool { return s.TLS == nil || *s.TLS }
