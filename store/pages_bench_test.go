package store_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
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

// peakRSS returns the process's peak resident set (VmHWM) in MiB, or 0
// where /proc does not tell.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkBackupLargeDatabase backs up a database of
// $PIOSNAP_BENCH_DB_MIB MiB (default 256) twice into a local repository:
// night 1 stores every page, night 2 the tenth of pages that changed. It
// reports each night's stored bytes and time, and the process's peak RSS,
// under the soft heap limit piosnap sets.
//
//	PIOSNAP_BENCH_DB_MIB=2048 go test ./store -run '^$' -bench LargeDatabase -benchtime 1x
func BenchmarkBackupLargeDatabase(b *testing.B) {
	mib := 256
	if v := os.Getenv("PIOSNAP_BENCH_DB_MIB"); v != "" {
		var err error
		if mib, err = strconv.Atoi(v); err != nil || mib <= 0 {
			b.Fatalf("PIOSNAP_BENCH_DB_MIB=%q: want a positive number of MiB", v)
		}
	}
	// The soft heap limit piosnap itself sets (cmd/piosnap/main.go).
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(96 << 20))
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		repo, err := store.Init(ctx, mustLocal(b, b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		for night := 0; night < 2; night++ {
			start := time.Now()
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
			b.ReportMetric(float64(res[0].Stored)/(1<<20), "night"+strconv.Itoa(night+1)+"-stored-MiB")
			b.ReportMetric(time.Since(start).Seconds(), "night"+strconv.Itoa(night+1)+"-s")
			b.ReportMetric(peakRSS(), "night"+strconv.Itoa(night+1)+"-peak-RSS-MiB")
		}
	}
}
