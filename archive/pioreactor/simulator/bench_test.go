package simulator

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSeedDatabase measures seeding throughput; MB/s is of database file.
func BenchmarkSeedDatabase(b *testing.B) {
	const size = 64 << 20
	b.SetBytes(size)
	for b.Loop() {
		p := filepath.Join(b.TempDir(), "pioreactor.sqlite")
		if err := SeedDatabase(context.Background(), p, "leader1", []string{"worker1", "worker2", "worker3"}, size); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Size() < size {
			b.Fatalf("database %v bytes, want at least %d (err %v)", fi.Size(), size, err)
		}
	}
}

// BenchmarkGrowDatabase measures appending rows to a live leader database.
func BenchmarkGrowDatabase(b *testing.B) {
	const n = 16 << 20
	c, err := Start(context.Background(), Options{Dir: b.TempDir(), Workers: []string{"worker1", "worker2", "worker3"}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(n)
	for b.Loop() {
		if err := c.GrowDatabase(context.Background(), n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnitExport measures GET /unit_api/zipped_dot_pioreactor on a
// leader with a 64 MiB database; MB/s is of the database size.
func BenchmarkUnitExport(b *testing.B) {
	benchExport(b, "/unit_api/zipped_dot_pioreactor")
}

// BenchmarkLeaderBroadcastExport measures the leader's in-memory $broadcast
// aggregate of four units, the leader holding a 64 MiB database.
func BenchmarkLeaderBroadcastExport(b *testing.B) {
	benchExport(b, "/api/units/$broadcast/zipped_dot_pioreactor")
}

func benchExport(b *testing.B, path string) {
	const size = 64 << 20
	c, err := Start(context.Background(), Options{Dir: b.TempDir(), Workers: []string{"worker1", "worker2", "worker3"}, DBSize: size})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(size)
	for b.Loop() {
		resp, err := http.Get(c.LeaderURL() + path)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("status %d, %d bytes, err %v", resp.StatusCode, n, err)
		}
		b.ReportMetric(float64(n)/float64(size), "zip/db")
	}
}
