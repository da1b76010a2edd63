package store_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/piosnap/piosnap/store"
)

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := store.Sleep(context.Background(), 3*time.Second); err != nil || time.Since(start) != 3*time.Second {
			t.Errorf("Sleep(3s) = %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = time.Now()
		if err := store.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("Sleep(1h) with a 1s context = %v after %v", err, time.Since(start))
		}
	})
}

func TestJitter(t *testing.T) {
	if got := store.Jitter(0); got != 0 {
		t.Errorf("Jitter(0) = %v", got)
	}
	d := 100 * time.Millisecond
	seen := map[time.Duration]bool{}
	for range 100 {
		j := store.Jitter(d)
		if j < d/2 || j > d {
			t.Fatalf("Jitter(%v) = %v, want between %v and %v", d, j, d/2, d)
		}
		seen[j] = true
	}
	if len(seen) < 10 {
		t.Errorf("Jitter(%v) gave only %d distinct values in 100 calls", d, len(seen))
	}
}
