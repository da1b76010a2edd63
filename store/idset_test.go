package store

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// TestIDSet checks the set of blobs a run adds against a map, through
// growth, removals and additions again.
func TestIDSet(t *testing.T) {
	id := func(n int) ChunkID {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(n))
		return sha256.Sum256(b[:])
	}
	s := newIDSet()
	want := make(map[ChunkID]bool)
	check := func(stage string, upTo int) {
		t.Helper()
		for n := 0; n < upTo; n++ {
			if got := s.has(id(n)); got != want[id(n)] {
				t.Fatalf("%s: has(id %d) = %v, want %v", stage, n, got, want[id(n)])
			}
		}
		if s.live != len(want) {
			t.Fatalf("%s: %d IDs live, want %d", stage, s.live, len(want))
		}
	}
	if s.has(id(0)) {
		t.Fatal("empty set has an ID")
	}
	s.remove(id(0)) // removing from an empty set does nothing
	const n = 3*idBlock + 17
	for i := 0; i < n; i++ {
		s.add(id(i))
		want[id(i)] = true
		if i%7 == 0 {
			s.add(id(i)) // again: no second copy
		}
	}
	check("after adding", n+100)
	if s.n != n {
		t.Errorf("%d IDs stored for %d distinct, want no duplicates", s.n, n)
	}
	for i := 0; i < n; i += 3 {
		s.remove(id(i))
		delete(want, id(i))
	}
	check("after removing every third", n+100)
	for i := 0; i < n; i += 6 {
		s.add(id(i))
		want[id(i)] = true
	}
	for i := n; i < n+2*idBlock; i++ { // grow past the removed slots
		s.add(id(i))
		want[id(i)] = true
	}
	check("after adding again", n+2*idBlock+100)
	if load := float64(s.used) / float64(len(s.table)); load > 0.75 {
		t.Errorf("table %.2f full, want at most 0.75", load)
	}
}
