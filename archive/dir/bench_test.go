package dir_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// BenchmarkTakeAndRestore reads a tree of $PIOSNAP_BENCH_DIR_MIB MiB
// (default 256) of incompressible files into a local repository (the
// application's downtime during a backup, less the hooks and the dump),
// takes it again unchanged, and restores it to a new folder. Each is
// reported in MB/s.
func BenchmarkTakeAndRestore(b *testing.B) {
	mib := 256
	if v, err := strconv.Atoi(os.Getenv("PIOSNAP_BENCH_DIR_MIB")); err == nil && v > 0 {
		mib = v
	}
	ctx := context.Background()
	root := filepath.Join(b.TempDir(), "cells")
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4<<20)
	total := int64(0)
	for i := 0; total < int64(mib)<<20; i++ {
		p := filepath.Join(root, "data", fmt.Sprintf("ds%d", i%4), fmt.Sprintf("f%04d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		n := 64<<10 + rng.IntN(len(buf)-64<<10)
		for j := range buf[:n] {
			buf[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, buf[:n], 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(n)
	}
	be, err := local.Create(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	repo, err := store.Init(ctx, be)
	if err != nil {
		b.Fatal(err)
	}
	lock, err := repo.Lock(ctx, "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer lock.Unlock(ctx)
	src := &dir.Source{Name: "cells", Paths: []string{root}}
	take := func() *store.Version {
		w, err := store.NewWriter(ctx, repo)
		if err != nil {
			b.Fatal(err)
		}
		t, err := dir.Take(ctx, w, src)
		if err != nil {
			b.Fatal(err)
		}
		return t.Pending.Commit(ctx, t.Version)[0].Version
	}
	mbps := func(el float64) float64 { return float64(total) / 1e6 / el }
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := b.Elapsed()
		b.StartTimer()
		take()
		first := (b.Elapsed() - st).Seconds()
		st = b.Elapsed()
		v := take()
		again := (b.Elapsed() - st).Seconds()
		st = b.Elapsed()
		to := filepath.Join(b.TempDir(), "restored")
		if _, err := dir.Restore(ctx, dir.RestoreOptions{Version: v, Repo: repo, Source: src, To: map[string]string{root: to}}); err != nil {
			b.Fatal(err)
		}
		restore := (b.Elapsed() - st).Seconds()
		b.ReportMetric(mbps(first), "first-MB/s")
		b.ReportMetric(mbps(again), "unchanged-MB/s")
		b.ReportMetric(mbps(restore), "restore-MB/s")
	}
}
