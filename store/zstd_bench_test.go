//go:build linux

package store_test

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkZstdLevel compresses a real file (a leader's SQLite database, e.g.
// storage/pioreactor.sqlite unzipped from a unit's export) in pieces of the
// sizes the repository compresses: 1 MiB chunks and 256 KiB frames. It
// reports the compressed share and the compression throughput per core,
// from the thread's own CPU time, which a loaded machine disturbs far less
// than wall time:
//
//	PIOSNAP_BENCH_FILE=/path/to/pioreactor.sqlite go test ./store -run '^$' -bench ZstdLevel -benchtime 3x
func BenchmarkZstdLevel(b *testing.B) {
	path := os.Getenv("PIOSNAP_BENCH_FILE")
	if path == "" {
		b.Skip("set PIOSNAP_BENCH_FILE to a database file to compress")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	data = data[:min(len(data), 256<<20)]
	for _, piece := range []int{1 << 20, 256 << 10} {
		for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
			b.Run(fmt.Sprintf("%dKiB/%s", piece>>10, lvl), func(b *testing.B) {
				enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1))
				if err != nil {
					b.Fatal(err)
				}
				var out int
				var cpu time.Duration
				var buf []byte
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				for range b.N {
					start := threadCPU(b)
					out = 0
					for i := 0; i < len(data); i += piece {
						buf = enc.EncodeAll(data[i:min(i+piece, len(data))], buf[:0])
						out += len(buf)
					}
					cpu += threadCPU(b) - start
				}
				b.ReportMetric(float64(out)/float64(len(data))*100, "%-of-plain")
				b.ReportMetric(float64(len(data))*float64(b.N)/cpu.Seconds()/1e6, "MB/s-per-core")
			})
		}
	}
}

// threadCPU returns the calling thread's CPU time; the benchmark goroutine
// is locked to its thread while it measures.
func threadCPU(b *testing.B) time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
