package main

import (
	"net"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/config"
)

func TestMachineIsSelf(t *testing.T) {
	m := machine{hostname: "leader1", addrs: []net.IP{net.ParseIP("192.168.1.10")}}
	tests := []struct {
		addr string
		want bool
	}{
		{"localhost", true},
		{"localhost:80", true},
		{"http://127.0.0.1:4999", true},
		{"[::1]:80", true},
		{"leader1", true},
		{"LEADER1.local", true},
		{"leader1.local.", true},
		{"http://leader1.local:80/", true},
		{"192.168.1.10", true},
		{"192.168.1.10:9000", true},
		{"192.168.1.11", false},
		{"worker1.local", false},
		{"pioreactor.local", false},
		{"minio.lan:9000", false},
	}
	for _, tt := range tests {
		if got := m.isSelf(tt.addr); got != tt.want {
			t.Errorf("isSelf(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestLeaderDiskWarning(t *testing.T) {
	devs := map[string]uint64{"/": 1, "/var/lib/piosnap/repo": 1, "/mnt/usb/repo": 2}
	m := machine{hostname: "leader1", dev: func(p string) (uint64, bool) {
		d, ok := devs[p]
		return d, ok
	}}
	local := config.Store{Name: "local", Type: "local", Path: "/var/lib/piosnap/repo"}
	usb := config.Store{Name: "usb", Type: "local", Path: "/mnt/usb/repo"}
	offsite := config.Store{Name: "offsite", Type: "s3", Endpoint: "minio.lan:9000", Bucket: "b"}
	onLeader := config.Store{Name: "minio", Type: "s3", Endpoint: "localhost:9000", Bucket: "b"}
	unknown := config.Store{Name: "odd", Type: "local", Path: "/nowhere"}
	tests := []struct {
		name   string
		leader string
		stores []config.Store
		warn   string // "" means no warning
	}{
		{"only the SD card", "localhost", []config.Store{local}, "local (/var/lib/piosnap/repo)"},
		{"leader by its name", "leader1.local", []config.Store{local}, "if the SD card dies"},
		{"MinIO on the leader itself", "localhost", []config.Store{local, onLeader}, "minio (S3 on this machine)"},
		{"a device that cannot be seen counts as the SD card", "localhost", []config.Store{unknown}, "odd (/nowhere)"},
		{"plus an off-site bucket", "localhost", []config.Store{local, offsite}, ""},
		{"plus a USB disk", "localhost", []config.Store{local, usb}, ""},
		{"piosnap runs on another machine", "pioreactor.local", []config.Store{local}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Stores: tt.stores}
			cfg.Pioreactor.Leader = tt.leader
			got := m.leaderDiskWarning(cfg)
			if tt.warn == "" && got != "" || !strings.Contains(got, tt.warn) {
				t.Errorf("warning %q, want one containing %q", got, tt.warn)
			}
		})
	}
}

// TestLeaderDiskWarningShown checks that config check and status show the
// warning for a configuration whose only store is on this machine's disk,
// with the simulator's leader (on loopback) playing this machine. Where the
// temporary directory is on another file system than / (a tmpfs /tmp), the
// store is off "the leader's" disk and neither may warn.
func TestLeaderDiskWarningShown(t *testing.T) {
	_, cfg := cliCluster(t, nil, "")
	d, _ := deviceOf(cfg)
	root, _ := deviceOf("/")
	const warning = "warning: every store is on this leader's own disk"
	want := d == root
	code, out, _ := cliRun(t, cfg, "config", "check")
	if code != exitOK || strings.Contains(out, warning+": local (") != want {
		t.Errorf("config check: exit %d, warning shown %v, want %v:\n%s", code, !want, want, out)
	}
	_, _, errs := cliRun(t, cfg, "status")
	if strings.Contains(errs, warning) != want {
		t.Errorf("status: warning shown %v, want %v:\n%s", !want, want, errs)
	}
}
