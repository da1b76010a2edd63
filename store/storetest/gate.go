package storetest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Gate is a reverse proxy in front of a MinIO server that can hold
// requests, so that a test, not the machine's speed, decides at which
// point of a client's work a fault happens. Point the client at Endpoint;
// the client signs for the proxy's host, which the proxy passes on. While
// the server is stopped, a forwarded request has its connection closed,
// as a stopped server's would be.
type Gate struct {
	// Endpoint is host:port of the proxy.
	Endpoint string

	mu    sync.Mutex
	after string        // hold once a request whose path contains after was answered; "" holds at once
	armed bool          // Hold or HoldAfter was called and Release was not
	shut  bool          // holding: requests wait for open to close
	open  chan struct{} // closed by Release
	held  chan struct{} // closed when the first request is held
}

// StartGate starts a gate in front of m that lets every request through
// until told otherwise. It is closed when the test ends.
func StartGate(t testing.TB, m *MinIO) *Gate {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: m.Endpoint}
	g := &Gate{open: make(chan struct{}), held: make(chan struct{})}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = target.Scheme, target.Host
			r.Out.Host = r.In.Host // the client signed the proxy's host
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.wait(r)
		rp.ServeHTTP(w, r)
		g.answered(r)
	}))
	t.Cleanup(func() {
		g.Release()
		srv.Close()
	})
	g.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return g
}

// Hold makes every request from now on wait until Release.
func (g *Gate) Hold() { g.arm("", true) }

// HoldAfter lets requests through until one whose URL path contains
// substr has been answered, and makes every request after it wait until
// Release. Requests already being served are not held.
func (g *Gate) HoldAfter(substr string) { g.arm(substr, false) }

func (g *Gate) arm(after string, shut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.after, g.armed, g.shut = after, true, shut
	g.open, g.held = make(chan struct{}), make(chan struct{})
}

// Held returns a channel that is closed once a request is being held
// since the last Hold or HoldAfter.
func (g *Gate) Held() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// Release lets the held requests and every later one through.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.armed {
		g.armed, g.shut = false, false
		close(g.open)
	}
}

func (g *Gate) wait(r *http.Request) {
	g.mu.Lock()
	if !g.shut {
		g.mu.Unlock()
		return
	}
	open, held := g.open, g.held
	select {
	case <-held:
	default:
		close(held)
	}
	g.mu.Unlock()
	select {
	case <-open:
	case <-r.Context().Done():
	}
}

func (g *Gate) answered(r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.armed && !g.shut && g.after != "" && strings.Contains(r.URL.Path, g.after) {
		g.shut = true
	}
}
