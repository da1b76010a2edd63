package store

import (
	"cmp"
	"slices"
	"testing"
)

// TestBlobPlacesLocate looks blobs up in compact places holding two blobs
// whose IDs share their first 8 bytes: each place of that prefix is a
// candidate, in turn, and then there are no more.
func TestBlobPlacesLocate(t *testing.T) {
	id := func(b0, b8 byte) ChunkID {
		var id ChunkID
		id[0], id[8] = b0, b8
		return id
	}
	a, twin, other := id(1, 1), id(1, 2), id(2, 1)
	x := &blobPlaces{frameTable: frameTable{packs: []ChunkID{id(9, 9)}, frames: []indexFrame{{pack: 0, off: 100, len: 50}}}}
	for i, b := range []ChunkID{other, a, twin} {
		pre := idPrefix(&b)
		x.places = append(x.places, blobPlace{hi: uint32(pre >> 32), lo: uint32(pre), off: uint32(i * 10), len: 10})
	}
	slices.SortStableFunc(x.places, func(p, q blobPlace) int { return cmp.Compare(p.prefix(), q.prefix()) })
	for _, tc := range []struct {
		name string
		id   ChunkID
		n    int
		ok   bool
		off  uint32
	}{
		{"one place", other, 0, true, 0},
		{"no second place", other, 1, false, 0},
		{"shared prefix, first", a, 0, true, 10},
		{"shared prefix, second", a, 1, true, 20},
		{"twin finds the same two", twin, 1, true, 20},
		{"shared prefix, no third", a, 2, false, 0},
		{"unknown prefix", id(3, 0), 0, false, 0},
		{"before every prefix", id(0, 0), 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc, ok := x.locate(tc.id, tc.n)
			if ok != tc.ok || ok && (loc.off != tc.off || loc.frame.off != 100 || loc.frameLen != 50 || loc.frame.pack != x.packs[0]) {
				t.Errorf("locate(%d) = %+v, %v; want offset %d, %v", tc.n, loc, ok, tc.off, tc.ok)
			}
		})
	}
}
