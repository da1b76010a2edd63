package storetest

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SamplePeaks starts sampling this process's memory every 5 ms, for
// benchmarks. The stop function it returns ends the sampling and returns,
// in MiB, the peak heap in use (live objects and garbage not yet collected),
// the peak live heap above what was live at the start (what the code
// measured holds), and the peak resident set since the start (Linux only;
// 0 elsewhere).
func SamplePeaks() (stop func() (heap, live, rss float64)) {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // resets VmHWM; Linux only
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	base := s[1].Value.Uint64() // what was live before: the caller's own
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak, live uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			live = max(live, s[1].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (float64, float64, float64) {
		close(done)
		wg.Wait()
		return float64(peak) / (1 << 20), float64(live-min(live, base)) / (1 << 20), peakRSS()
	}
}

// peakRSS returns the process's peak resident set (VmHWM) in MiB, or 0
// where /proc/self/status does not exist.
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
