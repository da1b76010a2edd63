package store_test

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/storetest"
)

// pageSource streams a SQLite-looking database of n pages of 4 KiB without
// holding it: page k's content depends on k and on the night it last
// changed, and about changed in 1000 pages change each night. Pages
// compress to about half, like a real database's.
type pageSource struct {
	pages, night, changed int
	k                     int
	page                  [4096]byte
	off                   int
}

func (s *pageSource) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.off == len(s.page) || s.k == 0 {
			if s.k == s.pages {
				break
			}
			gen := 0
			for night := s.night; night > 0; night-- {
				if int(splitmix(uint64(s.k)<<20|uint64(night))%1000) < s.changed {
					gen = night
					break
				}
			}
			rng := rand.New(rand.NewPCG(uint64(s.k), uint64(gen)))
			for i := 0; i < len(s.page); i += 8 {
				binary.LittleEndian.PutUint64(s.page[i:], rng.Uint64()&0x0f0f0f0f0f0f0f0f)
			}
			if s.k == 0 {
				copy(s.page[:], "SQLite format 3\x00")
				binary.BigEndian.PutUint16(s.page[16:], 4096)
			}
			s.k++
			s.off = 0
		}
		c := copy(p[n:], s.page[s.off:])
		s.off += c
		n += c
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// BenchmarkBackupLargeDatabase backs up a database of
// $PIOSNAP_BENCH_DB_MIB MiB (default 256) $PIOSNAP_BENCH_NIGHTS times
// (default 2) into a local repository: night 1 stores every page, each
// later night the tenth of pages that changed since, so the index grows
// with the history as a month of nights makes it grow. Each night opens the
// repository afresh, as the nightly process does. It reports the first and
// the last night's stored bytes, time, peak RSS and peak heap, and the same
// for a restore of the last version (its STORED archive, every page read
// and verified, written to nowhere), all under the soft heap limit piosnap
// sets.
//
//	PIOSNAP_BENCH_DB_MIB=2048 go test ./store -run '^$' -bench LargeDatabase -benchtime 1x
//	PIOSNAP_BENCH_DB_MIB=2048 PIOSNAP_BENCH_NIGHTS=10 go test ./store -run '^$' -bench LargeDatabase -benchtime 1x
func BenchmarkBackupLargeDatabase(b *testing.B) {
	mib := benchEnv(b, "PIOSNAP_BENCH_DB_MIB", 256)
	nights := benchEnv(b, "PIOSNAP_BENCH_NIGHTS", 2)
	// The soft heap limit piosnap itself sets (cmd/piosnap/main.go).
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(96 << 20))
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		if _, err := store.Init(ctx, mustLocal(b, dir)); err != nil {
			b.Fatal(err)
		}
		report := func(label string, stored int64, start time.Time, stop func() (float64, float64, float64)) {
			heap, live, rss := stop()
			b.ReportMetric(live, label+"-peak-live-MiB")
			if stored >= 0 {
				b.ReportMetric(float64(stored)/(1<<20), label+"-stored-MiB")
			}
			b.ReportMetric(time.Since(start).Seconds(), label+"-s")
			b.ReportMetric(rss, label+"-peak-RSS-MiB")
			b.ReportMetric(heap, label+"-peak-heap-MiB")
		}
		var last *store.Version
		for night := 0; night < nights; night++ {
			stop := storetest.SamplePeaks()
			start := time.Now()
			repo, err := store.Open(ctx, mustLocal(b, dir))
			if err != nil {
				b.Fatal(err)
			}
			w, err := store.NewWriter(ctx, repo)
			if err != nil {
				b.Fatal(err)
			}
			p := w.Begin("leader1")
			if _, err := p.Add(ctx, "storage/pioreactor.sqlite", 0o644, time.Now(), &pageSource{pages: mib << 8, night: night, changed: 100}); err != nil {
				b.Fatal(err)
			}
			res := p.Commit(ctx, store.Version{Time: time.Now(), Zone: "UTC", Kind: store.KindBackup})
			if res[0].Err != nil {
				b.Fatal(res[0].Err)
			}
			last = res[0].Version
			switch night {
			case 0:
				report("night1", res[0].Stored, start, stop)
			case nights - 1:
				report("night"+strconv.Itoa(nights), res[0].Stored, start, stop)
			default:
				stop()
			}
		}
		stop := storetest.SamplePeaks()
		start := time.Now()
		repo, err := store.Open(ctx, mustLocal(b, dir))
		if err != nil {
			b.Fatal(err)
		}
		z, err := repo.StoredZip(last, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := z.WriteTo(ctx, io.Discard); err != nil {
			b.Fatal(err)
		}
		report("restore", -1, start, stop)
	}
}

// benchEnv returns the positive integer in the environment variable name,
// or def when it is unset.
func benchEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
