package simulator

import (
	"context"
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
