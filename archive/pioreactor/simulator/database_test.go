package simulator

import (
	"bytes"
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSeedDatabase(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int64{1 << 20, 6 << 20} {
		p := filepath.Join(t.TempDir(), "pioreactor.sqlite")
		if err := SeedDatabase(ctx, p, "leader1", []string{"worker1"}, size); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < size || fi.Size() > size+size/2+(1<<20) {
			t.Errorf("seeded %d bytes for a %d byte target", fi.Size(), size)
		}
		if wal, err := os.Stat(p + "-wal"); err == nil && wal.Size() > 0 {
			t.Errorf("%d bytes left in the WAL; the main file must hold the data", wal.Size())
		}
		db, err := sql.Open("sqlite", p)
		if err != nil {
			t.Fatal(err)
		}
		var mode string
		var od, logs, workers int
		db.QueryRow("PRAGMA journal_mode").Scan(&mode)
		db.QueryRow("SELECT count(*) FROM od_readings").Scan(&od)
		db.QueryRow("SELECT count(*) FROM logs").Scan(&logs)
		db.QueryRow("SELECT count(*) FROM workers").Scan(&workers)
		db.Close()
		if mode != "wal" || od == 0 || logs == 0 || workers != 1 {
			t.Errorf("journal_mode %s, od_readings %d, logs %d, workers %d", mode, od, logs, workers)
		}
	}
}

func TestSeedDatabaseErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "dir", "pioreactor.sqlite")
	if err := SeedDatabase(context.Background(), p, "leader1", nil, 1<<20); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v, want one naming %s", err, p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := SeedDatabase(ctx, filepath.Join(t.TempDir(), "x.sqlite"), "leader1", nil, 1<<20); err == nil {
		t.Error("seeding with a cancelled context succeeded")
	}
}

func TestGrowDatabase(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}, DBSize: 4 << 20})
	p := c.DatabasePath()
	before, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lastBefore := lastTimestamp(t, p)
	const n = 3 << 20
	if err := c.GrowDatabase(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(p)
	if int64(len(after)) < int64(len(before))+n {
		t.Fatalf("grew from %d to %d bytes, want at least +%d", len(before), len(after), n)
	}
	// Appends touch only the tail of each table and a few pages around each
	// index's insertion points (one per running unit and experiment, plus
	// the auto-vacuum pointer-map pages): most old pages are unchanged.
	const page = 4096
	changed := 0
	for off := 0; off+page <= len(before); off += page {
		if !bytes.Equal(before[off:off+page], after[off:off+page]) {
			changed++
		}
	}
	if total := len(before) / page; changed > total/5 {
		t.Errorf("%d of %d existing pages changed; growth should append at the end", changed, total)
	}
	if got := lastTimestamp(t, p); got <= lastBefore {
		t.Errorf("last reading %s is not after %s: rows were not appended in time order", got, lastBefore)
	}

	os.Remove(p)
	if err := c.GrowDatabase(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "pioreactor.sqlite") {
		t.Errorf("growing a missing database: %v", err)
	}
}

func lastTimestamp(t *testing.T, p string) string {
	t.Helper()
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ts string
	if err := db.QueryRow("SELECT timestamp FROM od_readings ORDER BY rowid DESC LIMIT 1").Scan(&ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestWriteCalibration(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	u := c.Unit("worker1")
	if err := u.WriteCalibration("od90", "new-cal", "calibration_name: new-cal\n"); err != nil {
		t.Fatal(err)
	}
	got := listing(t, get(t, u.URL()+"/unit_api/zipped_dot_pioreactor").body)
	if !strings.Contains(got, "storage/calibrations/od90/new-cal.yaml method=8") {
		t.Errorf("new calibration not exported:\n%s", got)
	}
	for _, bad := range [][2]string{{"", "x"}, {"od90", "../x"}, {"a/b", "x"}} {
		if err := u.WriteCalibration(bad[0], bad[1], "x"); err == nil {
			t.Errorf("WriteCalibration(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

func TestStartOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no dir", Options{}},
		{"duplicate worker", Options{Dir: t.TempDir(), Workers: []string{"w1", "w1"}}},
		{"worker named like the leader", Options{Dir: t.TempDir(), Workers: []string{"leader1"}}},
		{"broadcast name", Options{Dir: t.TempDir(), Workers: []string{"$broadcast"}}},
		{"path as name", Options{Dir: t.TempDir(), Workers: []string{"a/b"}}},
	}
	for _, tt := range tests {
		if c, err := Start(context.Background(), tt.opts); err == nil {
			c.Close()
			t.Errorf("%s: Start succeeded", tt.name)
		}
	}
}

func TestReuseSeededDir(t *testing.T) {
	dir := t.TempDir()
	c1 := startCluster(t, Options{Dir: dir, Workers: []string{"worker1"}})
	marker := filepath.Join(c1.Unit("worker1").Dir(), "marker")
	os.WriteFile(marker, []byte("x"), 0o644)
	c1.Close()
	c2 := startCluster(t, Options{Dir: dir, Workers: []string{"worker1"}})
	if _, err := os.Stat(filepath.Join(c2.Unit("worker1").Dir(), "marker")); err != nil {
		t.Errorf("an existing unit directory was reseeded: %v", err)
	}
}

// TestPortHeldUntilServing: a unit's port stays taken from the moment it is
// picked until the unit serves on it. Released in between (while the
// cluster is seeded, seconds under qemu), another unit of the same or a
// parallel cluster could pick it too, and Start failed with "address
// already in use" (4 of 5 starts of a 200-unit cluster did).
func TestPortHeldUntilServing(t *testing.T) {
	c := &Cluster{opts: Options{Dir: t.TempDir()}}
	u, err := newUnit(c, "worker1", false)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	if ln, err := net.Listen("tcp", u.Addr()); err == nil {
		ln.Close()
		t.Fatalf("%s was free between being picked and served", u.Addr())
	}
}
