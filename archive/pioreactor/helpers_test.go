package pioreactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// reply writes a fixed status and body; JSON bodies get a JSON content type.
func reply(w http.ResponseWriter, status int, body string) {
	if strings.HasPrefix(strings.TrimSpace(body), "{") || strings.HasPrefix(strings.TrimSpace(body), "[") {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/html")
	}
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

// fixed is a handler that answers every request with status and body.
func fixed(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { reply(w, status, body) }
}

// serve starts a loopback server for h and returns its "host:port".
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// newClient builds a Client whose leader and every named unit live at the
// given addresses.
func newClient(t *testing.T, leader string, units map[string]string, mod ...func(*Config)) *Client {
	t.Helper()
	// The timeout only bounds a hang; tests of the timeout set their own.
	cfg := Config{Leader: leader, LeaderName: "leader1", Addresses: units, Timeout: time.Minute}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// checkErr asserts that err matches kind (nil: no error expected) and, when
// msg is not empty, that its message equals msg.
func checkErr(t *testing.T, err, kind error, msg string) {
	t.Helper()
	switch {
	case kind == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case kind != nil && err == nil:
		t.Fatalf("no error, want %v", kind)
	case kind != nil && !errors.Is(err, kind):
		t.Fatalf("error %q does not match %v", err, kind)
	}
	if msg != "" && err.Error() != msg {
		t.Fatalf("message\n got: %s\nwant: %s", err, msg)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
