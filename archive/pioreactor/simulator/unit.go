package simulator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Unit is one simulated Pioreactor (leader or worker): an HTTP server on a
// fixed loopback address serving the directory Dir as its ~/.pioreactor.
type Unit struct {
	c        *Cluster
	name     string
	dir      string
	tmp      string
	isLeader bool
	addr     string
	handler  http.Handler
	wg       sync.WaitGroup // background import and reboot tasks

	// held is the listener that picked the unit's port, kept until the
	// unit first serves so that nothing else can take the port meanwhile
	// (another unit of this cluster or of a cluster started beside it).
	held net.Listener

	mu             sync.Mutex
	srv            *http.Server
	serveDone      chan struct{}
	offline        bool
	rebooting      int
	closed         bool
	slow           time.Duration // the delays are read through hold
	exportDelay    time.Duration
	importDelay    time.Duration
	rebootDelay    time.Duration
	rebootDowntime time.Duration
	failNext       *string
	tasks          map[string]taskResult
	importing      bool
	queued         int // import tasks accepted that have not started yet
	imports        int
	exports        int
	reboots        int
	pendingReboots int           // enqueued or running reboots
	changed        chan struct{} // closed and replaced whenever the state above changes
}

func newUnit(c *Cluster, name string, leader bool) (*Unit, error) {
	root := filepath.Join(c.opts.Dir, name)
	u := &Unit{
		c: c, name: name, isLeader: leader,
		dir:     filepath.Join(root, ".pioreactor"),
		tmp:     filepath.Join(root, "tmp"),
		tasks:   make(map[string]taskResult),
		changed: make(chan struct{}),

		rebootDelay:    c.opts.RebootDelay,
		rebootDowntime: c.opts.RebootDowntime,
	}
	for _, d := range []string{u.dir, u.tmp} {
		if err := os.MkdirAll(d, 0o775); err != nil {
			return nil, fmt.Errorf("create %s for unit %s: %w", d, name, err)
		}
	}
	ln, err := listenFixed()
	if err != nil {
		return nil, fmt.Errorf("listen for unit %s on loopback: %w", name, err)
	}
	u.addr, u.held = ln.Addr().String(), ln
	u.handler = u.routes()
	return u, nil
}

// listenFixed listens on a random loopback port below Linux's ephemeral
// range (32768–60999 by default); the caller keeps the listener until the
// unit serves on it. A unit closes and reopens its port when it
// goes offline or reboots; a port from the ephemeral range could meanwhile
// become the source port of some outgoing connection, and reopening it would
// fail. Ports below the range are never handed out that way.
func listenFixed() (net.Listener, error) {
	var err error
	for range 100 {
		port := 20000 + rand.IntN(12000)
		var ln net.Listener
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return ln, nil
		}
	}
	return nil, err
}

// Name is the unit's hostname.
func (u *Unit) Name() string { return u.name }

// URL is the unit's base URL, "http://127.0.0.1:PORT". It stays the same
// across reboots and offline periods.
func (u *Unit) URL() string { return "http://" + u.addr }

// Addr is the unit's "127.0.0.1:PORT" address.
func (u *Unit) Addr() string { return u.addr }

// Dir is the unit's ~/.pioreactor directory.
func (u *Unit) Dir() string { return u.dir }

// TempDir is the unit's temporary directory ($TMPDIR): exports are built
// there and import backups are moved there. It is emptied on every reboot.
func (u *Unit) TempDir() string { return u.tmp }

// IsLeader reports whether the unit is the cluster's leader.
func (u *Unit) IsLeader() bool { return u.isLeader }

// SetOffline takes the unit off the network (connections are refused, open
// ones are closed) or brings it back on the same port.
func (u *Unit) SetOffline(off bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.offline = off
	return u.reconcileLocked()
}

// The delays below also apply to a wait already under way, counted from its
// start: a test can hold the unit in a state with a long delay, look at it
// as long as it needs, and release it by setting 0.

// SetSlow delays every response of the unit by d (0 turns it off).
func (u *Unit) SetSlow(d time.Duration) { u.set(func() { u.slow = d }) }

// SetExportDelay makes GET /unit_api/zipped_dot_pioreactor wait d before it
// starts zipping, after it has taken the export timestamp.
func (u *Unit) SetExportDelay(d time.Duration) { u.set(func() { u.exportDelay = d }) }

// SetImportDelay makes the background import task hold the import lock for d
// before it does its work, so tests can observe the lock.
func (u *Unit) SetImportDelay(d time.Duration) { u.set(func() { u.importDelay = d }) }

// SetRebootDelay sets how long after a successful import the unit goes down
// (Options.RebootDelay at the start).
func (u *Unit) SetRebootDelay(d time.Duration) { u.set(func() { u.rebootDelay = d }) }

// SetRebootDowntime sets how long the unit stays down when it reboots
// (Options.RebootDowntime at the start).
func (u *Unit) SetRebootDowntime(d time.Duration) { u.set(func() { u.rebootDowntime = d }) }

// hold waits until the delay *knob has passed since start, or ctx ends. The
// knob is read again whenever the unit's settings change, so a new value
// applies to a wait already under way.
func (u *Unit) hold(ctx context.Context, start time.Time, knob *time.Duration) error {
	for {
		u.mu.Lock()
		left, changed := *knob-time.Since(start), u.changed
		u.mu.Unlock()
		if left <= 0 {
			return nil
		}
		timer := time.NewTimer(left)
		select {
		case <-timer.C:
		case <-changed:
		case <-ctx.Done():
		}
		timer.Stop()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// FailNextImport makes the next import task fail with msg as its error,
// without touching the directory and without a reboot.
func (u *Unit) FailNextImport(msg string) { u.set(func() { u.failNext = &msg }) }

// SetSentinel creates (a regular, empty file) or removes
// DISALLOW_UI_FILE_SYSTEM in the unit's directory.
func (u *Unit) SetSentinel(on bool) error {
	p := filepath.Join(u.dir, sentinelName)
	if on {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return fmt.Errorf("create sentinel %s: %w", p, err)
		}
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove sentinel %s: %w", p, err)
	}
	return nil
}

// Imports counts the import tasks of this unit that completed successfully.
func (u *Unit) Imports() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.imports
}

// Exports counts the exports of this unit that have begun, including those
// still waiting out the export delay.
func (u *Unit) Exports() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.exports
}

// Reboots counts the reboots this unit has completed.
func (u *Unit) Reboots() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reboots
}

// WaitRebooted blocks until no import is accepted or running and every
// reboot the unit has started is over (the unit answers again), or ctx ends.
func (u *Unit) WaitRebooted(ctx context.Context) error {
	for {
		u.mu.Lock()
		done, ch := !u.importing && u.queued == 0 && u.pendingReboots == 0, u.changed
		u.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for unit %s to reboot: %w", u.name, ctx.Err())
		}
	}
}

// WriteCalibration writes storage/calibrations/<device>/<name>.yaml with the
// given content (".yaml" is added unless name already ends with it).
func (u *Unit) WriteCalibration(device, name, yaml string) error {
	if device == "" || name == "" || filepath.Base(device) != device || filepath.Base(name) != name {
		return fmt.Errorf("write calibration %q/%q: device and name must be plain file names", device, name)
	}
	if filepath.Ext(name) != ".yaml" {
		name += ".yaml"
	}
	d := filepath.Join(u.dir, "storage", "calibrations", device)
	if err := os.MkdirAll(d, 0o775); err != nil {
		return fmt.Errorf("create calibration directory %s: %w", d, err)
	}
	if err := os.WriteFile(filepath.Join(d, name), []byte(yaml), 0o644); err != nil {
		return fmt.Errorf("write calibration %s/%s: %w", device, name, err)
	}
	return nil
}

func (u *Unit) set(f func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f()
	u.notifyLocked()
}

func (u *Unit) notifyLocked() {
	close(u.changed)
	u.changed = make(chan struct{})
}

func (u *Unit) start() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reconcileLocked()
}

// reconcileLocked opens or closes the listener to match the wanted state.
func (u *Unit) reconcileLocked() error {
	defer u.notifyLocked()
	up := !u.offline && u.rebooting == 0 && !u.closed
	switch {
	case up && u.srv == nil:
		ln := u.held
		u.held = nil
		if ln == nil {
			var err error
			if ln, err = listenRetry(u.addr); err != nil {
				return fmt.Errorf("reopen unit %s on %s: %w", u.name, u.addr, err)
			}
		}
		srv := &http.Server{
			Handler:           u.handler,
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return u.c.ctx },
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				u.c.opts.Logger.Error("unit server stopped", "unit", u.name, "err", err)
			}
		}()
		u.srv, u.serveDone = srv, done
	case !up && u.srv != nil:
		err := u.srv.Close()
		<-u.serveDone
		u.srv, u.serveDone = nil, nil
		if err != nil {
			return fmt.Errorf("stop unit %s: %w", u.name, err)
		}
	}
	return nil
}

func listenRetry(addr string) (net.Listener, error) {
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

func (u *Unit) close() error {
	u.mu.Lock()
	u.closed = true
	err := u.reconcileLocked()
	if u.held != nil {
		err = errors.Join(err, u.held.Close())
		u.held = nil
	}
	u.mu.Unlock()
	u.wg.Wait()
	return err
}

// reboot takes the unit down for the configured downtime, wipes its /tmp and
// forgets its task results, then brings it back on the same port.
func (u *Unit) reboot(ctx context.Context) {
	if u.hold(ctx, time.Now(), &u.rebootDelay) != nil {
		u.mu.Lock()
		u.pendingReboots--
		u.notifyLocked()
		u.mu.Unlock()
		return
	}
	u.mu.Lock()
	u.rebooting++
	err := u.reconcileLocked()
	u.mu.Unlock()
	if err != nil {
		u.c.opts.Logger.Error("reboot: going down failed", "unit", u.name, "err", err)
	}
	_ = u.hold(ctx, time.Now(), &u.rebootDowntime)
	if err := wipeDir(u.tmp); err != nil {
		u.c.opts.Logger.Error("reboot: wipe /tmp failed", "unit", u.name, "err", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.tasks = make(map[string]taskResult)
	u.rebooting--
	u.pendingReboots--
	u.reboots++
	if err := u.reconcileLocked(); err != nil {
		u.c.opts.Logger.Error("reboot: coming back failed", "unit", u.name, "err", err)
	}
}

func wipeDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}
