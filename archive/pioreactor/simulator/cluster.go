package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by [Start] to zero fields of [Options].
const (
	DefaultLeader         = "leader1"
	DefaultAppVersion     = "26.7.2"
	DefaultDBSize         = 2 << 20
	DefaultExportTimeout  = 120 * time.Second
	DefaultImportTimeout  = 120 * time.Second
	DefaultRebootDelay    = 2 * time.Second
	DefaultRebootDowntime = 2 * time.Second
	DefaultUnitTimeout    = 60 * time.Second
)

// Options configures a simulated cluster. Zero fields take the defaults above.
type Options struct {
	// Dir is the root directory; each unit gets Dir/<name>/.pioreactor and
	// its own temporary directory Dir/<name>/tmp (its RAM-backed /tmp, wiped
	// on reboot). Required.
	Dir string
	// Leader is the leader's hostname (default "leader1").
	Leader string
	// Workers are the worker hostnames, e.g. {"worker1", "worker2"}.
	Workers []string
	// DBSize is the initial size in bytes of the leader's database
	// storage/pioreactor.sqlite (default 2 MiB).
	DBSize int64
	// AppVersion is reported in export metadata (default "26.7.2").
	AppVersion string
	// ExportTimeout is the leader's overall cap on a fan-out export
	// (default 120 s, the real leader's task.get timeout).
	ExportTimeout time.Duration
	// ImportTimeout bounds the leader's forward of an import to a unit
	// (default 120 s).
	ImportTimeout time.Duration
	// UnitTimeout is the leader's per-socket-operation timeout when it
	// fetches a unit's archive (default 60 s).
	UnitTimeout time.Duration
	// RebootDelay is how long after a successful import the unit goes down
	// (default 2 s, the real reboot(wait=2)).
	RebootDelay time.Duration
	// RebootDowntime is how long a unit refuses connections while it
	// reboots (default 2 s).
	RebootDowntime time.Duration
	// TmpSize is the capacity in bytes of each unit's /tmp, which current
	// Pioreactor images mount as a tmpfs in RAM (half the RAM by default).
	// An upload, an extraction or the import's copy of ~/.pioreactor that
	// does not fit fails as the real unit does, with ENOSPC. 0 means
	// unlimited.
	TmpSize int64
	// BasicAuth, when non-nil, holds the user and password that every route
	// of every unit requires, as the pioreactor-basic-auth-for-ui plugin does.
	// The leader sends them on its own calls to units.
	BasicAuth *[2]string
	// Logger receives the simulator's logs (default: discarded).
	Logger *slog.Logger
}

// Cluster is a running simulated cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	units  map[string]*Unit
	order  []string
	client *http.Client
	dbMu   sync.Mutex // serialises database growth
	// tmpSize is Options.TmpSize, changed by SetTmpSize.
	tmpSize atomic.Int64
	closed  sync.Once
	err     error
}

// Start seeds the units' directories under opts.Dir (existing seeded
// directories are reused as they are) and starts one HTTP server per unit on
// 127.0.0.1. The cluster runs until Close; ctx only bounds the seeding.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, units: make(map[string]*Unit)}
	c.tmpSize.Store(opts.TmpSize)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.client = &http.Client{Transport: &http.Transport{
		ResponseHeaderTimeout: opts.UnitTimeout,
		MaxIdleConnsPerHost:   4,
	}}
	c.order = append([]string{opts.Leader}, opts.Workers...)
	for _, name := range c.order {
		u, err := newUnit(c, name, name == opts.Leader)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.units[name] = u
	}
	addrs := c.Addresses()
	for _, name := range c.order {
		if err := seedUnit(ctx, c.units[name], c.opts, addrs); err != nil {
			c.Close()
			return nil, fmt.Errorf("seed unit %s: %w", name, err)
		}
	}
	for _, name := range c.order {
		if err := c.units[name].start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	opts.Logger.Info("pioreactor cluster started", "leader", c.LeaderURL(), "units", len(c.order))
	return c, nil
}

func withDefaults(o Options) (Options, error) {
	if o.Dir == "" {
		return o, errors.New("simulator options: Dir is empty; set it to a directory such as t.TempDir()")
	}
	if o.Leader == "" {
		o.Leader = DefaultLeader
	}
	seen := map[string]bool{o.Leader: true}
	for _, w := range o.Workers {
		if w == "" || w == "$broadcast" || seen[w] || filepath.Base(w) != w {
			return o, fmt.Errorf("simulator options: worker name %q is empty, reserved, repeated or not a plain hostname; use distinct names like \"worker1\"", w)
		}
		seen[w] = true
	}
	o.Workers = slices.Sorted(slices.Values(o.Workers))
	if o.DBSize <= 0 {
		o.DBSize = DefaultDBSize
	}
	if o.AppVersion == "" {
		o.AppVersion = DefaultAppVersion
	}
	defaultDuration(&o.ExportTimeout, DefaultExportTimeout)
	defaultDuration(&o.ImportTimeout, DefaultImportTimeout)
	defaultDuration(&o.UnitTimeout, DefaultUnitTimeout)
	defaultDuration(&o.RebootDelay, DefaultRebootDelay)
	defaultDuration(&o.RebootDowntime, DefaultRebootDowntime)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return o, fmt.Errorf("create simulator root %s: %w", o.Dir, err)
	}
	return o, nil
}

func defaultDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Close stops every unit's server, cancels in-flight requests and
// background import and reboot tasks, and waits for them. Files stay on disk.
func (c *Cluster) Close() error {
	c.closed.Do(func() {
		c.cancel()
		var errs []error
		for _, name := range c.order {
			if u := c.units[name]; u != nil {
				errs = append(errs, u.close())
			}
		}
		c.client.CloseIdleConnections()
		c.err = errors.Join(errs...)
	})
	return c.err
}

// LeaderURL is the leader's base URL, "http://127.0.0.1:PORT".
func (c *Cluster) LeaderURL() string { return c.units[c.opts.Leader].URL() }

// Leader returns the leader unit.
func (c *Cluster) Leader() *Unit { return c.units[c.opts.Leader] }

// Units lists the unit names: the leader first, then the workers sorted.
func (c *Cluster) Units() []string { return slices.Clone(c.order) }

// Unit returns the named unit, or nil if there is none.
func (c *Cluster) Unit(name string) *Unit { return c.units[name] }

// SetTmpSize changes the capacity of every unit's /tmp (Options.TmpSize)
// from the next write on; 0 means unlimited.
func (c *Cluster) SetTmpSize(n int64) { c.tmpSize.Store(n) }

// Addresses maps each unit name to its "127.0.0.1:PORT" address, like the
// [cluster.addresses] section of a real cluster's config.ini.
func (c *Cluster) Addresses() map[string]string {
	m := make(map[string]string, len(c.units))
	for name, u := range c.units {
		m[name] = u.addr
	}
	return m
}

// registered reports whether name is a unit the leader knows.
func (c *Cluster) registered(name string) bool {
	_, ok := c.units[name]
	return ok
}
