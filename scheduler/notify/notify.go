// Package notify tells outside monitors how piosnap's scheduled runs went:
// healthchecks.io-style pings (start, success, failure with a reason) and a
// generic webhook that receives a JSON summary of each run.
//
// Every request has a short timeout. Callers log a failed notification and
// carry on: a monitor that cannot be reached must never fail a backup.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds one notification request when no other is set.
const DefaultTimeout = 10 * time.Second

// MaxReason is the longest failure reason sent, in bytes; longer ones are
// cut. healthchecks.io keeps at most 100 kB of a ping body.
const MaxReason = 10_000

// Healthchecks pings a healthchecks.io-style check URL: URL/start when a run
// begins, URL itself when every host succeeded, URL/fail with a reason as
// the body otherwise.
type Healthchecks struct {
	// URL is the check's ping URL, such as https://hc-ping.com/<uuid>.
	URL string
	// Client sends the pings; nil means a client with Timeout.
	Client *http.Client
	// Timeout bounds each ping; zero means DefaultTimeout.
	Timeout time.Duration
}

// Start signals that a run has begun.
func (h *Healthchecks) Start(ctx context.Context) error {
	return h.ping(ctx, "/start", "")
}

// Success signals that a run finished and every host succeeded. summary,
// which may be empty, is sent as the body.
func (h *Healthchecks) Success(ctx context.Context, summary string) error {
	return h.ping(ctx, "", summary)
}

// Fail signals that a run failed, with a short reason as the body.
func (h *Healthchecks) Fail(ctx context.Context, reason string) error {
	return h.ping(ctx, "/fail", reason)
}

func (h *Healthchecks) ping(ctx context.Context, suffix, body string) error {
	u, err := url.Parse(h.URL)
	if err != nil {
		return fmt.Errorf("healthchecks ping: URL %q: %w", h.URL, err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + suffix
	if len(body) > MaxReason {
		body = body[:MaxReason]
	}
	return post(ctx, client(h.Client, h.Timeout), timeout(h.Timeout), "healthchecks ping"+suffix, u, "text/plain; charset=utf-8", []byte(body))
}

// Webhook posts a JSON Event to URL after every run.
type Webhook struct {
	// URL receives the POST.
	URL string
	// Client sends the request; nil means a client with Timeout.
	Client *http.Client
	// Timeout bounds the request; zero means DefaultTimeout.
	Timeout time.Duration
}

// Event is the JSON body a Webhook sends.
type Event struct {
	// RunID identifies the run in piosnap's logs.
	RunID string `json:"run_id"`
	// Time is when the run started.
	Time time.Time `json:"time"`
	// Duration is how long the run took, in seconds.
	Duration float64 `json:"duration_seconds"`
	// Result is "success" (every host in every store), "partial" (some
	// hosts failed) or "failure" (no host succeeded, or the run failed as
	// a whole).
	Result string `json:"result"`
	// Error says why the run failed as a whole, if it did.
	Error string `json:"error"`
	// Hosts is the outcome per host.
	Hosts []HostResult `json:"hosts"`
}

// HostResult is one host's outcome in an Event.
type HostResult struct {
	// Host is the unit's name.
	Host string `json:"host"`
	// OK is true when every store received the host.
	OK bool `json:"ok"`
	// Error says why the host failed, if it did.
	Error string `json:"error"`
	// Stores is the outcome per store.
	Stores []StoreResult `json:"stores"`
}

// StoreResult is one host's outcome in one store.
type StoreResult struct {
	// Store is the store's configured name.
	Store string `json:"store"`
	// Version is the new version's ID, if one was stored.
	Version string `json:"version"`
	// StoredBytes is how much the version added to the store.
	StoredBytes int64 `json:"stored_bytes"`
	// Error says why the store did not receive the host, if it did not.
	Error string `json:"error"`
}

// withLists returns ev with empty lists where it has none, so that the
// body has "hosts": [] and "stores": [] rather than null.
func (ev Event) withLists() Event {
	hosts := make([]HostResult, 0, len(ev.Hosts))
	for _, h := range ev.Hosts {
		if h.Stores == nil {
			h.Stores = []StoreResult{}
		}
		hosts = append(hosts, h)
	}
	ev.Hosts = hosts
	return ev
}

// Send posts ev as JSON.
func (w *Webhook) Send(ctx context.Context, ev Event) error {
	body, err := json.Marshal(ev.withLists())
	if err != nil {
		return fmt.Errorf("webhook: encode event: %w", err)
	}
	u, err := url.Parse(w.URL)
	if err != nil {
		return fmt.Errorf("webhook: URL %q: %w", w.URL, err)
	}
	return post(ctx, client(w.Client, w.Timeout), timeout(w.Timeout), "webhook", u, "application/json", body)
}

func timeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

func client(c *http.Client, d time.Duration) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: timeout(d)}
}

// post sends body to u and accepts any 2xx answer. Errors name the host but
// not the path, which for a ping URL is a secret.
func post(ctx context.Context, c *http.Client, d time.Duration, what string, u *url.URL, contentType string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	where := u.Scheme + "://" + u.Host
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s to %s: %w", what, where, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "piosnap")
	resp, err := c.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL carries the secret path
		}
		return fmt.Errorf("%s to %s failed: %w; check the URL and the network", what, where, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s to %s: server answered %s: %s", what, where, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
