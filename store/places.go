package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"slices"
	"sync"
)

// blobPlaces holds where some blobs lie, for reading them: 20 bytes a blob
// (the first 8 bytes of its ID and its place in its frame), 16 bytes a
// frame and 32 bytes a pack, where the whole index keeps 44 bytes a blob.
// A blob is looked up by the first 8 bytes of its ID only, so each place
// found is a candidate: every blob whose ID starts the same is kept, and
// reading tries them in turn, the SHA-256 check every read makes telling
// which one is the blob (see blobReader.readIndexed). IDs are SHA-256
// hashes: that any two of a million blobs share their first 8 bytes has a
// chance of about 1 in 37 million, so nearly every lookup has one
// candidate.
type blobPlaces struct {
	places []blobPlace // sorted by prefix
	frameTable
}

// blobPlace is one blob's place in a blobPlaces.
type blobPlace struct {
	hi, lo   uint32 // the ID's first 8 bytes, big-endian (see idPrefix)
	frame    uint32 // position in blobPlaces.frames
	off, len uint32 // in the frame's plain content
}

// idPrefix returns the first 8 bytes of id as a number, by which
// blobPlaces finds blobs.
func idPrefix(id *ChunkID) uint64 { return binary.BigEndian.Uint64(id[:8]) }

func (p *blobPlace) prefix() uint64 { return uint64(p.hi)<<32 | uint64(p.lo) }

// locate returns the n-th place (from 0) of a blob whose ID starts like
// id's, or false when there are no more.
func (x *blobPlaces) locate(id ChunkID, n int) (blobLoc, bool) {
	pre := idPrefix(&id)
	i, _ := slices.BinarySearchFunc(x.places, pre, func(p blobPlace, pre uint64) int { return cmp.Compare(p.prefix(), pre) })
	i += n
	if i >= len(x.places) || x.places[i].prefix() != pre {
		return blobLoc{}, false
	}
	p := &x.places[i]
	f := &x.frames[p.frame]
	return blobLoc{frame: frameKey{x.packs[f.pack], f.off}, frameLen: f.len, off: p.off, len: p.len}, true
}

// prefixes appends the prefixes of the blobs x places to dst.
func (x *blobPlaces) prefixes(dst []uint64) []uint64 {
	for i := range x.places {
		dst = append(dst, x.places[i].prefix())
	}
	return dst
}

// add parses the plain content of one index object into x, keeping the
// places of the records keep asks for. On damage, x is left as it was.
func (x *blobPlaces) add(plain []byte, keep func(typ uint8, prefix uint64) bool, packNum map[ChunkID]uint32) error {
	places, frames, packs := len(x.places), len(x.frames), len(x.packs)
	last := -1 // the frame of the previous record kept, within this object
	err := parseIndex(plain, func(pack ChunkID, rec blobRecord) {
		pre := idPrefix(&rec.ID)
		if !keep(rec.Type, pre) {
			return
		}
		last = x.frameOf(pack, rec, last, packNum)
		x.places = append(x.places, blobPlace{hi: uint32(pre >> 32), lo: uint32(pre), frame: uint32(last), off: rec.Off, len: rec.Len})
	})
	if err != nil {
		x.truncate(frames, packs, packNum)
		x.places = x.places[:places]
	}
	return err
}

// loadPlaces reads every index object, keeping the places of the records
// keep asks for; expect is how many that will be, about (fewer only costs
// growing the slice). A damaged index object is left out, as loadIndex
// does; an error reading the backend is returned.
func (r *Repository) loadPlaces(ctx context.Context, keep func(typ uint8, prefix uint64) bool, expect int) (*blobPlaces, error) {
	objs, err := r.indexObjects(ctx)
	if err != nil {
		return nil, err
	}
	x := &blobPlaces{places: make([]blobPlace, 0, expect)}
	packNum := make(map[ChunkID]uint32)
	_, _, err = r.readIndexObjects(ctx, objs, func(plain []byte) error {
		return x.add(plain, keep, packNum)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(x.places, func(a, b blobPlace) int { return cmp.Compare(a.prefix(), b.prefix()) })
	return x, nil
}

// placesOf reads the index keeping the places of the blobs whose ID
// prefix is in want (sorted, without duplicates) only.
func (r *Repository) placesOf(ctx context.Context, want []uint64) (*blobPlaces, error) {
	if len(want) == 0 {
		return &blobPlaces{}, nil
	}
	return r.loadPlaces(ctx, func(_ uint8, pre uint64) bool {
		_, ok := slices.BinarySearch(want, pre)
		return ok
	}, len(want))
}

// sortPrefixes sorts want and drops duplicates and the room they leave.
func sortPrefixes(want *[]uint64) {
	slices.Sort(*want)
	*want = slices.Clip(slices.Compact(*want))
}

// loadedPlaces is the places of the blobs keep asks for, read again with
// the same filter when stale (a forget may have repacked them).
type loadedPlaces struct {
	r    *Repository
	keep func(typ uint8, prefix uint64) bool
	mu   sync.Mutex
	x    *blobPlaces
	err  error
}

func (s *loadedPlaces) index(ctx context.Context) (blobIndex, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.x == nil && s.err == nil {
		s.x, s.err = s.r.loadPlaces(ctx, s.keep, 0)
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.x, nil
}

func (s *loadedPlaces) reload(ctx context.Context, stale blobIndex, _ ChunkID) (blobIndex, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.x != nil && blobIndex(s.x) != stale {
		return s.x, nil
	}
	x, err := s.r.loadPlaces(ctx, s.keep, 0)
	if err != nil {
		return nil, err
	}
	s.x = x
	return x, nil
}
