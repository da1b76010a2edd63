package store

import "testing"

// TestSharedCacheBudget checks that readers working together share the
// frame-cache bounds instead of each taking them whole, so that a read-ahead
// on more cores does not hold more decompressed frames.
func TestSharedCacheBudget(t *testing.T) {
	r := &Repository{}
	for _, n := range []int{1, 2, 3, 5, 9, 17} {
		frames, bytes := 0, 0
		for range n {
			br := r.newSharedBlobReader(n)
			if br.maxFrames < minCacheFrames {
				t.Errorf("%d readers: one keeps %d frames, fewer than %d", n, br.maxFrames, minCacheFrames)
			}
			frames += br.maxFrames
			bytes += br.maxBytes
		}
		if limit := max(cacheFrames, n*minCacheFrames); frames > limit {
			t.Errorf("%d readers keep %d frames together, want at most %d", n, frames, limit)
		}
		if bytes > cacheBytes {
			t.Errorf("%d readers keep %d bytes together, want at most %d", n, bytes, cacheBytes)
		}
	}
	if br := r.newBlobReader(); br.maxFrames != cacheFrames || br.maxBytes != cacheBytes {
		t.Errorf("a lone reader's bounds are %d frames and %d bytes, want %d and %d", br.maxFrames, br.maxBytes, cacheFrames, cacheBytes)
	}
}
