package systemd_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/scheduler"
	"github.com/piosnap/piosnap/systemd"
)

var _ scheduler.Notifier = (*systemd.Notifier)(nil)

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// listen opens a notification socket at name and returns it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// receive reads one datagram from conn.
func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	k, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:k])
}

func TestNotify(t *testing.T) {
	tests := []struct {
		name string
		send func(n *systemd.Notifier) error
		want string
	}{
		{"ready", (*systemd.Notifier).Ready, "READY=1"},
		{"stopping", (*systemd.Notifier).Stopping, "STOPPING=1"},
		{"watchdog", (*systemd.Notifier).Watchdog, "WATCHDOG=1"},
		{"status", func(n *systemd.Notifier) error { return n.Status("last run 03:00 ok; next run 03:00") }, "STATUS=last run 03:00 ok; next run 03:00"},
		{"status on one line", func(n *systemd.Notifier) error { return n.Status("a\nb\r\nc") }, "STATUS=a b c"},
		{"raw", func(n *systemd.Notifier) error { return n.Notify("EXTEND_TIMEOUT_USEC=5000000") }, "EXTEND_TIMEOUT_USEC=5000000"},
	}
	sockets := map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify.sock"),
		"abstract": fmt.Sprintf("@piosnap-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	}
	for kind, name := range sockets {
		conn := listen(t, name)
		n := systemd.New(env(map[string]string{"NOTIFY_SOCKET": name}))
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				if err := tt.send(n); err != nil {
					t.Fatal(err)
				}
				if got := receive(t, conn); got != tt.want {
					t.Errorf("sent %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestReloading(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify.sock")
	conn := listen(t, name)
	if err := systemd.New(env(map[string]string{"NOTIFY_SOCKET": name})).Reloading(); err != nil {
		t.Fatal(err)
	}
	got := receive(t, conn)
	first, usec, ok := strings.Cut(got, "\nMONOTONIC_USEC=")
	if first != "RELOADING=1" || !ok {
		t.Fatalf("sent %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	if v, err := strconv.ParseUint(usec, 10, 64); err != nil || v == 0 {
		t.Errorf("MONOTONIC_USEC=%q, want a positive integer", usec)
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	n := systemd.New(env(nil))
	for _, err := range []error{n.Ready(), n.Status("x"), n.Watchdog(), n.Stopping(), n.Reloading()} {
		if err != nil {
			t.Errorf("without NOTIFY_SOCKET: %v, want nil", err)
		}
	}
}

func TestNotifyErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone.sock")
	tests := []struct {
		socket string
		want   []string
	}{
		{"notify.sock", []string{`NOTIFY_SOCKET="notify.sock"`, "neither an absolute path nor an abstract socket name"}},
		{"vsock:2:1234", []string{`NOTIFY_SOCKET="vsock:2:1234"`}},
		{missing, []string{"connect to NOTIFY_SOCKET " + missing, "no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.socket, func(t *testing.T) {
			err := systemd.New(env(map[string]string{"NOTIFY_SOCKET": tt.socket})).Ready()
			if err == nil {
				t.Fatal("Ready succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name   string
		env    map[string]string
		want   time.Duration
		wantOK bool
	}{
		{"off", nil, 0, false},
		{"on", map[string]string{"WATCHDOG_USEC": "60000000"}, time.Minute, true},
		{"for this process", map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": self}, 30 * time.Second, true},
		{"for another process", map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, 0, false},
		{"zero", map[string]string{"WATCHDOG_USEC": "0"}, 0, false},
		{"garbage", map[string]string{"WATCHDOG_USEC": "30s"}, 0, false},
		{"negative", map[string]string{"WATCHDOG_USEC": "-5"}, 0, false},
		{"overflow", map[string]string{"WATCHDOG_USEC": "18446744073709551615"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := systemd.New(env(tt.env)).WatchdogInterval()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func BenchmarkStatus(b *testing.B) {
	name := filepath.Join(b.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	n := systemd.New(env(map[string]string{"NOTIFY_SOCKET": name}))
	for b.Loop() {
		if err := n.Status("last run 2026-05-10 03:00 UTC ok; next run 2026-05-11 03:00 UTC"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSchedulerOverSocket wires the scheduler to a Notifier on a real
// socket: keep-alives and status lines arrive as systemd would see them.
func TestSchedulerOverSocket(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify.sock")
	conn := listen(t, name)
	n := systemd.New(env(map[string]string{"NOTIFY_SOCKET": name}))
	st := newestFunc(func() map[string]time.Time { return nil })
	ran := make(chan struct{}, 1)
	job := func(ctx context.Context, hosts []string) ([]string, error) {
		ran <- struct{}{}
		return nil, nil
	}
	s, err := scheduler.New(scheduler.Config{Schedule: "@yearly"}, st, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetNotifier(n, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-ran
	seen := map[string]bool{}
	for !seen["WATCHDOG=1"] || !seen["STATUS=last run"] {
		msg := receive(t, conn)
		if strings.HasPrefix(msg, "STATUS=last run") {
			msg = "STATUS=last run"
		}
		seen[msg] = true
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type newestFunc func() map[string]time.Time

func (f newestFunc) Newest(context.Context) (map[string]time.Time, error) { return f(), nil }
