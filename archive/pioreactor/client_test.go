package pioreactor

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		wantLeader string // LeaderAddress()
		wantName   string
		units      map[string]string // unit -> UnitAddress
		wantErr    string
	}{
		{"host only", Config{Leader: "leader1.local"}, "leader1.local:80", "leader1",
			map[string]string{"worker3": "worker3.local:80"}, ""},
		{"host port", Config{Leader: "10.0.0.2:4999", Addresses: map[string]string{"worker1": "10.0.0.3", "worker2": "10.0.0.4:8080"}},
			"10.0.0.2:4999", "the leader", map[string]string{"worker1": "10.0.0.3:80", "worker2": "10.0.0.4:8080", "worker3": "worker3.local:80"}, ""},
		{"url", Config{Leader: "http://pioreactor.local/", LeaderName: "leader1"}, "pioreactor.local:80", "leader1", nil, ""},
		{"https", Config{Leader: "https://leader1.local", Addresses: map[string]string{"w": "https://w.lan"}}, "leader1.local:443", "leader1",
			map[string]string{"w": "w.lan:443"}, ""},
		{"ipv6", Config{Leader: "[::1]:8080"}, "[::1]:8080", "the leader", nil, ""},
		{"empty", Config{}, "", "", nil, "leader address is empty"},
		{"credentials in url", Config{Leader: "http://bob:hunter2@leader1.local"}, "", "", nil, "contains credentials"},
		{"bad scheme", Config{Leader: "ftp://leader1"}, "", "", nil, `scheme "ftp"`},
		{"no host", Config{Leader: "http://:80"}, "", "", nil, "has no host"},
		{"bad unit", Config{Leader: "leader1", Addresses: map[string]string{"worker1": "http://%zz"}}, "", "", nil, "address of unit worker1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.LeaderAddress(); got != tt.wantLeader {
				t.Errorf("LeaderAddress = %q, want %q", got, tt.wantLeader)
			}
			if c.leaderName != tt.wantName {
				t.Errorf("leader name = %q, want %q", c.leaderName, tt.wantName)
			}
			for unit, want := range tt.units {
				if got := c.UnitAddress(unit); got != want {
					t.Errorf("UnitAddress(%s) = %q, want %q", unit, got, want)
				}
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	const user, pass = "pioreactor", "s3cret-pw"
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="Pioreactor"`)
			reply(w, http.StatusUnauthorized, "<html><head><title>401 Unauthorized</title></head></html>")
			return
		}
		reply(w, http.StatusOK, `[{"pioreactor_unit":"leader1"},{"pioreactor_unit":"worker1"}]`)
	})
	addr := serve(t, h)
	tests := []struct {
		name       string
		user, pass string
		wantErr    string
	}{
		{"right", user, pass, ""},
		{"missing", "", "", "leader1 requires HTTP Basic credentials: set user and password_file under [pioreactor] in piosnap's configuration (or the password in $PIOSNAP_PIOREACTOR_PASSWORD)"},
		{"wrong password", user, "wrong-pw", `leader1 rejected the HTTP Basic credentials of user "pioreactor": check user under [pioreactor] and the password in password_file (or $PIOSNAP_PIOREACTOR_PASSWORD)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, addr, nil, func(c *Config) { c.User, c.Password = tt.user, tt.pass })
			units, err := c.Units(testContext(t))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(units, ",") != "leader1,worker1" {
					t.Fatalf("units = %v", units)
				}
				return
			}
			checkErr(t, err, ErrUnauthorized, tt.wantErr)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatal("no *APIError inside")
			}
			for _, s := range []string{err.Error(), ae.Error(), ae.URL} {
				if strings.Contains(s, tt.pass) && tt.pass != "" {
					t.Fatalf("password leaked: %s", s)
				}
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	dead := deadAddr(t)
	c := newClient(t, dead, map[string]string{"worker3": dead}, func(c *Config) { c.Password, c.User = "pw-never-shown", "u" })
	ctx := testContext(t)
	calls := map[string]func() error{
		"units":      func() error { _, err := c.Units(ctx); return err },
		"health":     func() error { _, err := c.Health(ctx, "worker3"); return err },
		"export":     func() error { _, err := c.ExportUnit(ctx, "worker3"); return err },
		"cluster":    func() error { _, err := c.ExportCluster(ctx); return err },
		"import":     func() error { _, err := c.ImportDirect(ctx, "worker3", strings.NewReader("x"), 1, nil); return err },
		"taskresult": func() error { _, err := c.TaskResult(ctx, "worker3", "abc"); return err },
		"probe":      func() error { return c.Probe(ctx, "worker3") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			checkErr(t, err, ErrUnreachable, "")
			who := "worker3"
			if name == "units" || name == "cluster" {
				who = "leader1"
			}
			prefix := who + " unreachable at " + dead + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "it refuses connections") {
				t.Fatalf("message %q, want prefix %q and the cause", err, prefix)
			}
			if strings.Contains(err.Error(), "pw-never-shown") {
				t.Fatal("password leaked")
			}
		})
	}
}

func TestUnreachableReason(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: err}}
	}
	tests := []struct {
		err  error
		want string
	}{
		{&net.DNSError{Err: "no such host", Name: "worker9.local", IsNotFound: true}, "its name does not resolve"},
		{&net.DNSError{Err: "server misbehaving", Name: "worker9.local"}, "could not be looked up"},
		{op(syscall.ECONNREFUSED), "refuses connections"},
		{op(syscall.ECONNRESET), "the connection was cut"},
		{op(syscall.EHOSTUNREACH), "no network route"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, "did not answer in time"},
		{errors.New("tls: bad certificate"), ""},
	}
	for _, tt := range tests {
		if got := unreachableReason(tt.err); tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("unreachableReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	addr := serve(t, h)
	defer close(release)
	c := newClient(t, addr, map[string]string{"worker3": addr}, func(c *Config) {
		c.Timeout = 100 * time.Millisecond
		c.ExportTimeout = 300 * time.Millisecond
	})
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"health", func() error { _, err := c.Health(testContext(t), "worker3"); return err },
			"worker3 unreachable at " + addr + ": no response within 100ms"},
		{"export uses ExportTimeout", func() error { _, err := c.ExportUnit(testContext(t), "worker3"); return err },
			"worker3 unreachable at " + addr + ": no response within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			checkErr(t, tt.call(), ErrUnreachable, tt.want)
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("took %v: cut off by the test's context, not by the timeout", d)
			}
		})
	}
}

// TestBodyNotCapped streams a body for longer than Timeout: only the wait
// for headers is bounded.
func TestBodyNotCapped(t *testing.T) {
	const timeout = time.Second
	rest := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", "attachment; filename=worker3_dot_pioreactor.zip")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("chunk"))
		w.(http.Flusher).Flush()
		select {
		case <-rest:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte(strings.Repeat("chunk", 4)))
	})
	addr := serve(t, h)
	c := newClient(t, addr, map[string]string{"worker3": addr}, func(c *Config) { c.Timeout, c.ExportTimeout = timeout, timeout })
	ex, err := c.ExportUnit(testContext(t), "worker3")
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Body.Close()
	first := make([]byte, len("chunk"))
	if _, err := io.ReadFull(ex.Body, first); err != nil {
		t.Fatal(err)
	}
	// The rest of the body comes after the timeout, whatever the load.
	time.Sleep(timeout + timeout/2)
	close(rest)
	b, err := io.ReadAll(ex.Body)
	if err != nil {
		t.Fatalf("body cut short after %d more bytes: %v", len(b), err)
	}
	if got := string(first) + string(b); got != strings.Repeat("chunk", 5) {
		t.Fatalf("body = %q", got)
	}
}

func TestContextCanceled(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	addr := serve(t, h)
	c := newClient(t, addr, map[string]string{"worker3": addr})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.Health(ctx, "worker3")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want context.Canceled and not ErrUnreachable", err)
	}
}

func TestUnitsAndHealthReplies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		kind   error
	}{
		{"ok", 200, `{"status":"ok","pioreactor_unit":"worker3","utc_time":"2026-08-04T16:54:52.123Z"}`, nil},
		{"not json", 200, `<html>captive portal</html>`, ErrProtocol},
		{"500", 500, `{"error":"boom"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, fixed(tt.status, tt.body))
			c := newClient(t, addr, map[string]string{"worker3": addr})
			h, err := c.Health(testContext(t), "worker3")
			switch {
			case tt.status != 200:
				var ae *APIError
				if !errors.As(err, &ae) || ae.Message != "boom" {
					t.Fatalf("err = %v", err)
				}
			case tt.kind != nil:
				checkErr(t, err, tt.kind, "")
			default:
				if err != nil || h != (Health{Status: "ok", Unit: "worker3", UTCTime: "2026-08-04T16:54:52.123Z"}) {
					t.Fatalf("Health = %+v, %v", h, err)
				}
			}
		})
	}
}

// TestTruncatedReply: a reply cut short by the server is an error, not a
// partial decode.
func TestTruncatedReply(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"status\": ")
		buf.Flush()
		conn.Close()
	}))
	c := newClient(t, addr, map[string]string{"worker3": addr})
	_, err := c.Health(testContext(t), "worker3")
	if err == nil || !strings.Contains(err.Error(), "read reply") {
		t.Fatalf("err = %v, want a read error", err)
	}
	_, err = c.TaskResult(testContext(t), "worker3", "t1")
	if err == nil || !strings.Contains(err.Error(), "read reply") {
		t.Fatalf("err = %v, want a read error", err)
	}
}
