package simulator

import (
	"crypto/rand"
	"strings"
	"testing"
)

// TestTmpFull runs imports into units whose /tmp (a tmpfs in RAM) is too
// small for the upload, for its extraction, or for the task's copy of
// ~/.pioreactor. Each fails as the real unit does, and none changes the
// unit's directory.
func TestTmpFull(t *testing.T) {
	const n = 256 << 10 // an incompressible entry: upload and extraction are n bytes each
	body := make([]byte, n)
	rand.Read(body)
	archive := makeZip(t, metadataFor("worker1"), zipEntry{name: "storage/big.bin", mode: 0o100644, body: string(body)})
	probe := startCluster(t, Options{Workers: []string{"worker1"}})
	dir := dirSize(probe.Unit("worker1").Dir()) // what the task copies into /tmp
	if dir == 0 {
		t.Fatal("worker1's directory is empty")
	}
	up := int64(len(archive))

	tests := []struct {
		name    string
		tmp     int64
		leader  bool   // upload through the leader's proxy, which saves it in the leader's /tmp first
		status  int    // the upload's HTTP status
		message string // the upload's error, or the task's
	}{
		{"upload, unit", up / 2, false, 500, "Failed to save uploaded archive"},
		{"upload, leader", up / 2, true, 500, "Failed to save uploaded archive"},
		{"extraction", up + n/2, false, 202, noSpace},
		{"copy of ~/.pioreactor", up + n + dir/2, false, 202, string(errBackup)},
		{"enough room", up + n + dir + 64<<10, true, 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCluster(t, Options{Workers: []string{"worker1"}, TmpSize: tt.tmp})
			u := c.Unit("worker1")
			url := u.URL() + "/unit_api/import_zipped_dot_pioreactor"
			if tt.leader {
				url = c.LeaderURL() + "/api/units/worker1/import_zipped_dot_pioreactor"
			}
			r := postArchive(t, url, "archive", "worker1.zip", archive)
			if r.status != tt.status {
				t.Fatalf("upload: HTTP %d %s, want %d", r.status, r.body, tt.status)
			}
			if r.status == 500 {
				m := r.json(t)
				if m["error"] != tt.message || !strings.Contains(m["cause"].(string), noSpace) {
					t.Errorf("upload: %s, want %q caused by %q", r.body, tt.message, noSpace)
				}
			} else {
				id, _ := r.json(t)["task_id"].(string)
				var p reply
				waitFor(t, "the task's end", func() bool {
					p = get(t, u.URL()+"/unit_api/task_results/"+id)
					return p.status == 200 || u.Reboots() > 0
				})
				if tt.message == "" {
					waitFor(t, "the reboot", func() bool { return u.Reboots() == 1 })
					return
				}
				if m := p.json(t); m["status"] != "failed" || m["error"] != tt.message {
					t.Errorf("task: %s, want failed with %q", p.body, tt.message)
				}
			}
			if got := dirSize(u.Dir()); got != dir || u.Imports() != 0 {
				t.Errorf("the failed import changed worker1: %d bytes (was %d), %d imports", got, dir, u.Imports())
			}
		})
	}
}

// TestExportTmpFull: the unit builds its export in /tmp too.
func TestExportTmpFull(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}, TmpSize: 1 << 10})
	r := get(t, c.Unit("worker1").URL()+"/unit_api/zipped_dot_pioreactor")
	if r.status != 500 || !strings.Contains(string(r.body), noSpace) {
		t.Errorf("export into a full /tmp: HTTP %d %s", r.status, r.body)
	}
	if got := dirSize(c.Unit("worker1").TempDir()); got != 0 {
		t.Errorf("the failed export left %d bytes in /tmp", got)
	}
}
