package store_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/storetest"
)

// BenchmarkStoredZipDatabase writes the STORED archive of a version holding
// a database of $PIOSNAP_BENCH_DB_MIB MiB (default 128) to io.Discard, as
// `export --stored` and restore do: every page read from its pack,
// decompressed and verified. The repository holds
// $PIOSNAP_BENCH_NIGHTS nights (default 5) of the database with 3 % of its
// pages changed each night, so the newest version's tree has delta leaves
// and its pages lie in the packs of every night. $PIOSNAP_BENCH_REPO, if
// set, keeps the repository there (made once, reused by later runs).
//
//	PIOSNAP_BENCH_DB_MIB=128 go test ./store -run '^$' -bench StoredZipDatabase -benchtime 5x
func BenchmarkStoredZipDatabase(b *testing.B) {
	mib, nights := 128, 5
	for _, kv := range []struct {
		name string
		v    *int
	}{{"PIOSNAP_BENCH_DB_MIB", &mib}, {"PIOSNAP_BENCH_NIGHTS", &nights}} {
		if s := os.Getenv(kv.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				b.Fatalf("%s=%q: want a positive number", kv.name, s)
			}
			*kv.v = n
		}
	}
	ctx := context.Background()
	dir := os.Getenv("PIOSNAP_BENCH_REPO")
	if dir == "" {
		dir = b.TempDir()
	}
	var repo *store.Repository
	reads := &countingBackend{Backend: mustLocal(b, dir), ranges: make(map[string]bool)}
	if _, err := os.Stat(filepath.Join(dir, "config")); err == nil {
		if repo, err = store.Open(ctx, reads); err != nil {
			b.Fatal(err)
		}
	} else {
		if repo, err = store.Init(ctx, reads); err != nil {
			b.Fatal(err)
		}
		for night := 0; night < nights; night++ {
			w, err := store.NewWriter(ctx, repo)
			if err != nil {
				b.Fatal(err)
			}
			p := w.Begin("leader1")
			if _, err := p.Add(ctx, "storage/pioreactor.sqlite", 0o644, time.Now(), &pageSource{pages: mib << 8, night: night, changed: 30}); err != nil {
				b.Fatal(err)
			}
			if res := p.Commit(ctx, store.Version{Time: time.Now(), Zone: "UTC", Kind: store.KindBackup}); res[0].Err != nil {
				b.Fatal(res[0].Err)
			}
		}
	}
	vs, err := repo.Versions(ctx)
	if err != nil {
		b.Fatal(err)
	}
	v := vs[0] // the newest
	z, err := repo.StoredZip(v, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(z.Size())
	b.ReportAllocs()
	stop := storetest.SamplePeaks()
	b.ResetTimer()
	for range b.N {
		reads.reset()
		if err := z.WriteTo(ctx, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// The heap in use at its highest, sampled every 5 ms while the
	// archive is written.
	heap, _, _ := stop()
	b.ReportMetric(heap, "peak-heap-MiB")
	// Each frame read from a pack is also decompressed: reading one
	// several times is work done twice.
	n, distinct := reads.counts()
	b.ReportMetric(float64(n), "frame-reads")
	b.ReportMetric(float64(n)/float64(distinct), "reads/frame")
}
