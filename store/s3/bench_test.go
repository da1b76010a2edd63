package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store/storetest"
)

// heapSampler records the peak of live heap bytes while it runs.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done sync.WaitGroup
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	h.done.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	})
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.done.Wait()
	return h.peak.Load()
}

// BenchmarkPut uploads objects of 1 to 8 MiB to a real MinIO and reports
// the peak live heap above the baseline (the benchmark's own 8 MiB source
// buffer included in the baseline).
func BenchmarkPut(b *testing.B) {
	m := storetest.StartMinIO(b)
	src := make([]byte, 8<<20)
	for i := range src {
		src[i] = byte(rand.Uint32())
	}
	for _, bc := range []struct {
		name     string
		stream   bool
		parallel int
	}{
		{"seekable", false, 1},
		{"seekable-4way", false, 4},
		{"stream", true, 1},
		{"stream-4way", true, 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			be, err := New(Config{Endpoint: m.Endpoint, Bucket: "bench", Region: "us-east-1", PathStyle: true,
				AccessKey: m.AccessKey, SecretKey: m.SecretKey})
			if err != nil {
				b.Fatal(err)
			}
			if err := be.CreateBucket(context.Background()); err != nil {
				b.Fatal(err)
			}
			sizes := make([]int, b.N)
			var total int64
			for i := range sizes {
				sizes[i] = 1<<20 + rand.IntN(7<<20+1)
				total += int64(sizes[i])
			}
			b.SetBytes(total / int64(b.N))
			runtime.GC()
			baseSample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			metrics.Read(baseSample)
			base := baseSample[0].Value.Uint64()
			hs := startHeapSampler()
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range bc.parallel {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						var r io.Reader = bytes.NewReader(src[:sizes[i]])
						if bc.stream {
							r = struct{ io.Reader }{r}
						}
						if err := be.Put(context.Background(), fmt.Sprintf("obj/%d", i), r, int64(sizes[i])); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			peak := hs.Stop()
			extra := float64(0)
			if peak > base {
				extra = float64(peak-base) / (1 << 20)
			}
			b.ReportMetric(extra, "peak-heap-MiB")
		})
	}
}
