package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/piosnap/piosnap/config"
)

// machine describes the computer piosnap runs on, as far as piosnap needs to
// know it: whether an address names it, and which disk a path is on. Tests
// build one that makes the simulator's leader play "this machine".
type machine struct {
	hostname string
	addrs    []net.IP
	// dev returns the device of the file system that holds path (or its
	// nearest existing ancestor).
	dev func(path string) (uint64, bool)
}

// thisMachine returns the machine piosnap runs on.
func thisMachine() machine {
	m := machine{dev: deviceOf}
	m.hostname, _ = os.Hostname()
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				m.addrs = append(m.addrs, n.IP)
			}
		}
	}
	return m
}

// deviceOf returns the device of the file system holding path, or of its
// nearest existing ancestor.
func deviceOf(path string) (uint64, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, false
	}
	for p := abs; ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			st, ok := fi.Sys().(*syscall.Stat_t)
			return uint64(st.Dev), ok
		}
		if p == filepath.Dir(p) {
			return 0, false
		}
	}
}

// hostOf returns the host of an address written as host, host:port or an
// http(s) URL.
func hostOf(addr string) string {
	if strings.Contains(addr, "://") {
		if u, err := url.Parse(addr); err == nil {
			return u.Hostname()
		}
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.Trim(addr, "[]")
}

// isSelf reports whether addr (host, host:port or URL) names this machine.
func (m machine) isSelf(addr string) bool {
	host := strings.TrimSuffix(strings.ToLower(hostOf(addr)), ".")
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return true
		}
		for _, a := range m.addrs {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	name := strings.ToLower(m.hostname)
	return name != "" && (host == name || host == name+".local")
}

// isLeader reports whether piosnap runs on the cluster's leader.
func (m machine) isLeader(cfg *config.Config) bool { return m.isSelf(cfg.Pioreactor.Leader) }

// leaderDiskWarning returns a warning when piosnap runs on the leader and
// every store is on the leader's own disk (the file system of /, the SD
// card), so that a dead card would take the backups with it; "" otherwise.
// A store is off the leader's disk when it is an S3 store on another
// machine, or a local store on another file system (a USB disk).
func (m machine) leaderDiskWarning(cfg *config.Config) string {
	if !m.isLeader(cfg) {
		return ""
	}
	dev := m.dev
	if dev == nil {
		dev = deviceOf
	}
	root, rootOK := dev("/")
	var on []string
	for _, s := range cfg.Stores {
		switch s.Type {
		case "s3":
			if !m.isSelf(s.Endpoint) {
				return ""
			}
			on = append(on, fmt.Sprintf("%s (S3 on this machine)", s.Name))
		default:
			if d, ok := dev(s.Path); ok && rootOK && d != root {
				return ""
			}
			on = append(on, fmt.Sprintf("%s (%s)", s.Name, s.Path))
		}
	}
	return fmt.Sprintf("every store is on this leader's own disk: %s; if the SD card dies, the backups die with it: add a [[store]] on another machine (type = \"s3\") or on a USB disk", strings.Join(on, ", "))
}
