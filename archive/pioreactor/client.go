package pioreactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Default timeouts used when the corresponding Config field is zero.
const (
	// DefaultTimeout bounds connecting and waiting for response headers of
	// ordinary requests.
	DefaultTimeout = 15 * time.Second
	// DefaultExportTimeout bounds the wait for the first byte of an export.
	// A unit zips its whole directory (the leader's database included) before
	// it answers, and the leader waits up to 120 s for its fan-out.
	DefaultExportTimeout = 10 * time.Minute
)

// Config says where the cluster is and how to talk to it.
type Config struct {
	// Leader is the leader's address: "host", "host:port" or a URL.
	// The scheme defaults to http and the port to the scheme's default (80).
	Leader string
	// LeaderName is the leader's unit name, used in messages. It defaults to
	// the leader's host name without a ".local" suffix.
	LeaderName string
	// Addresses maps a unit name to "host[:port]" (or a URL), like
	// [cluster.addresses] in Pioreactor's config.ini. A unit that is not
	// listed is reached at "<unit>.local" on the leader's scheme and port 80.
	Addresses map[string]string
	// User and Password, when User is set, are sent as HTTP Basic
	// credentials on every request.
	User, Password string
	// Timeout bounds connecting, sending an upload without progress and
	// waiting for response headers. Streaming a response body is not capped.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// ExportTimeout replaces Timeout while waiting for the first byte of an
	// export. Zero means DefaultExportTimeout.
	ExportTimeout time.Duration
	// HTTPClient, when set, is used for all requests. Its own Timeout, if
	// any, caps whole transfers, so leave it zero for large archives.
	HTTPClient *http.Client
}

// Client talks to one Pioreactor cluster. It is safe for concurrent use.
type Client struct {
	leader        *url.URL
	leaderName    string
	addresses     map[string]*url.URL
	user, pass    string
	timeout       time.Duration
	exportTimeout time.Duration
	hc            *http.Client
}

// New checks cfg and returns a Client for it.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.Leader) == "" {
		return nil, errors.New("pioreactor: leader address is empty: set the leader's host[:port]")
	}
	leader, err := parseAddress(cfg.Leader, "http")
	if err != nil {
		return nil, fmt.Errorf("pioreactor: leader: %w", err)
	}
	c := &Client{
		leader:        leader,
		leaderName:    cfg.LeaderName,
		addresses:     make(map[string]*url.URL, len(cfg.Addresses)),
		user:          cfg.User,
		pass:          cfg.Password,
		timeout:       cfg.Timeout,
		exportTimeout: cfg.ExportTimeout,
		hc:            cfg.HTTPClient,
	}
	if c.leaderName == "" {
		// Messages name the leader by its host name; an IP address or
		// "localhost" says nothing a user recognises.
		c.leaderName = strings.TrimSuffix(leader.Hostname(), ".local")
		if net.ParseIP(c.leaderName) != nil || c.leaderName == "localhost" {
			c.leaderName = "the leader"
		}
	}
	for unit, addr := range cfg.Addresses {
		u, err := parseAddress(addr, leader.Scheme)
		if err != nil {
			return nil, fmt.Errorf("pioreactor: address of unit %s: %w", unit, err)
		}
		c.addresses[unit] = u
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.exportTimeout <= 0 {
		c.exportTimeout = DefaultExportTimeout
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return c, nil
}

// parseAddress turns "host", "host:port" or a URL into a base URL with an
// explicit port. It refuses credentials in the address so that they can
// never leak into messages.
func parseAddress(addr, scheme string) (*url.URL, error) {
	raw := strings.TrimSpace(addr)
	if !strings.Contains(raw, "://") {
		raw = scheme + "://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("cannot parse address %q: use host[:port] or http://host[:port]", addr)
	}
	if u.User != nil {
		return nil, fmt.Errorf("address %q contains credentials: put the user name in user and the password in password_file under [pioreactor] instead", u.Redacted())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("address %q has scheme %q: use http or https", addr, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("address %q has no host: use host[:port]", addr)
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// LeaderAddress returns the leader's "host:port", for messages.
func (c *Client) LeaderAddress() string { return c.leader.Host }

// UnitAddress returns the "host:port" at which unit is reached directly,
// for example "worker3.local:80".
func (c *Client) UnitAddress(unit string) string { return c.unitURL(unit).Host }

func (c *Client) unitURL(unit string) *url.URL {
	if u, ok := c.addresses[unit]; ok {
		return u
	}
	return &url.URL{Scheme: c.leader.Scheme, Host: net.JoinHostPort(unit+".local", "80")}
}

// target names the host a request goes to, for messages.
type target struct {
	name string // unit name, or the leader's name
	base *url.URL
}

func (c *Client) leaderTarget() target       { return target{name: c.leaderName, base: c.leader} }
func (c *Client) unitTarget(u string) target { return target{name: u, base: c.unitURL(u)} }

// request describes one HTTP exchange.
type request struct {
	method      string
	to          target
	path        string // already escaped
	body        io.Reader
	size        int64
	contentType string
	header      http.Header
	wait        time.Duration // header timeout; zero means c.timeout
}

// do sends r and returns the response once headers have arrived. Transport
// failures, the caller's cancellation and the watchdog come back as errors;
// any HTTP status is returned as a response. The caller must close the body.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	wait := r.wait
	if wait <= 0 {
		wait = c.timeout
	}
	rctx, cancel := context.WithCancel(ctx)
	wd := newWatchdog(wait, cancel)
	u := *r.to.base
	u.Path += r.path // r.path is already escaped and free of specials like %2F
	body := r.body
	if body != nil {
		body = &activityReader{r: body, wd: wd}
	}
	req, err := http.NewRequestWithContext(rctx, r.method, u.String(), body)
	if err != nil {
		wd.stop()
		cancel()
		return nil, fmt.Errorf("pioreactor: build request for %s: %w", r.to.name, err)
	}
	if body != nil {
		req.ContentLength = r.size
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	fired := wd.stop()
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pioreactor: %s %s: %w", r.method, r.to.name, ctx.Err())
		}
		var cause error = err
		if fired {
			cause = fmt.Errorf("no response within %s", wait)
		} else if ue := (*url.Error)(nil); errors.As(err, &ue) {
			cause = ue.Err
		}
		msg := fmt.Sprintf("%s unreachable at %s: %v", r.to.name, r.to.base.Host, cause)
		if why := unreachableReason(err); why != "" && !fired {
			msg = fmt.Sprintf("%s unreachable at %s: %s: %v", r.to.name, r.to.base.Host, why, cause)
		}
		return nil, &Error{Kind: ErrUnreachable, Unit: r.to.name, Msg: msg, Err: err}
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// unreachableReason says in plain words why a request got no reply, for the
// common network errors; "" for others.
func unreachableReason(err error) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
		return "its name does not resolve (check the name, or give its IP address under [pioreactor.addresses])"
	case errors.As(err, &dns):
		return "its name could not be looked up (the name service failed)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "it refuses connections (the machine is up, but no web server listens on that port)"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection was cut (network trouble, or the unit is restarting)"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "there is no network route to it (off, or on another network)"
	case errors.As(err, &ne) && ne.Timeout():
		return "it did not answer in time (off, or the network is down)"
	}
	return ""
}

// watchdog cancels a request when it sees no activity for d.
type watchdog struct {
	d     time.Duration
	mu    sync.Mutex
	t     *time.Timer
	fired bool
	done  bool
}

func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() {
		w.mu.Lock()
		if !w.done {
			w.fired = true
		}
		w.mu.Unlock()
		cancel()
	})
	return w
}

// kick restarts the countdown because the request made progress.
func (w *watchdog) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && !w.fired {
		w.t.Reset(w.d)
	}
}

// stop disarms the watchdog and reports whether it had fired.
func (w *watchdog) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.t.Stop()
	return w.fired
}

// activityReader kicks the watchdog as an upload body is consumed.
type activityReader struct {
	r  io.Reader
	wd *watchdog
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.wd.kick()
	}
	return n, err
}

// cancelBody releases the request context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
