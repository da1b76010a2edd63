// Package systemd tells systemd about piosnap's state through the
// sd_notify protocol: readiness, reloads, stopping, a one-line status and
// watchdog keep-alives. Outside systemd, when $NOTIFY_SOCKET is unset,
// every call does nothing and returns nil.
//
// The unit file piosnap.service sits next to this package; verify.sh
// checks it with systemd-analyze.
package systemd

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to the service manager found in its
// environment. It implements the scheduler's Notifier. The zero value is
// not usable; create one with [New].
type Notifier struct {
	getenv func(string) string
}

// New returns a Notifier that reads $NOTIFY_SOCKET, $WATCHDOG_USEC and
// $WATCHDOG_PID through getenv; nil means os.Getenv.
func New(getenv func(string) string) *Notifier {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &Notifier{getenv: getenv}
}

// Notify sends state, newline-separated VARIABLE=value assignments, to
// the socket named by $NOTIFY_SOCKET: a file system path, or an abstract
// socket name starting with '@'. Without $NOTIFY_SOCKET it does nothing.
func (n *Notifier) Notify(state string) error {
	name := n.getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "@") {
		return fmt.Errorf("systemd: NOTIFY_SOCKET=%q is neither an absolute path nor an abstract socket name starting with '@': unset it when not running under systemd", name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("systemd: connect to NOTIFY_SOCKET %s: %w", name, err)
	}
	_, werr := conn.Write([]byte(state))
	cerr := conn.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("systemd: send %q to NOTIFY_SOCKET %s: %w", firstLine(state), name, err)
	}
	return nil
}

// Ready tells systemd that start-up is complete (READY=1). Call it also
// after a reload has finished.
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Stopping tells systemd that the service is shutting down (STOPPING=1).
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Reloading tells systemd that the service is reloading its configuration
// (RELOADING=1, with MONOTONIC_USEC where the platform provides it). Send
// Ready once the reload is over, whether or not it succeeded.
func (n *Notifier) Reloading() error {
	if usec, ok := monotonicUsec(); ok {
		return n.Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatUint(usec, 10))
	}
	return n.Notify("RELOADING=1")
}

// Status sets the one-line status shown by systemctl status (STATUS=).
// Line breaks in status are replaced by spaces.
func (n *Notifier) Status(status string) error {
	return n.Notify("STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(status))
}

// Watchdog sends a watchdog keep-alive (WATCHDOG=1).
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// WatchdogInterval returns the watchdog timeout systemd expects
// keep-alives within ($WATCHDOG_USEC), and false when the watchdog is off
// or meant for another process ($WATCHDOG_PID). Send keep-alives at half
// the interval or more often.
func (n *Notifier) WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseUint(n.getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec == 0 || usec > math.MaxInt64/uint64(time.Microsecond) {
		return 0, false
	}
	if pid := n.getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
