package store

import (
	"context"
	"fmt"
	"sync"
)

// neededIndex is the part of the index that reading some entries needs:
// the places of the blobs they use and nothing else, held compactly
// (blobPlaces), so that a restore or an export holds about 20 bytes a
// blob of the version, not the repository's history. It is loaded when a
// reader first asks for it:
//
//  1. When an entry is stored page by page, the index is read keeping only
//     the places of tree nodes (a few in a thousand records), and the
//     entries' page trees are walked to list the first 8 bytes of the ID
//     of every blob they use (8 bytes a page).
//  2. The index is read again, keeping only the places of blobs whose IDs
//     start so; the list and the tree nodes' places are then let go.
//
// Entries stored in chunks need only the second step: their manifest
// lists their blobs.
//
// A read-ahead (restore, export) does not load it so: it walks the
// entries itself and hands the places of one window of blobs at a time
// to window, so it holds the places of at most aheadWindow blobs however
// large the database.
type neededIndex struct {
	r       *Repository
	entries []*Entry
	mu      sync.Mutex
	x       *blobPlaces
	err     error // why the index could not be loaded; it sticks
	// adjust, if set, changes the places of each window (tests plant
	// prefix collisions with it).
	adjust func(*blobPlaces)
}

func (r *Repository) neededIndex(entries []*Entry) *neededIndex {
	return &neededIndex{r: r, entries: entries}
}

func (s *neededIndex) index(ctx context.Context) (blobIndex, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.x == nil && s.err == nil {
		s.x, s.err = s.load(ctx)
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.x, nil
}

// reload reads the places of the same blobs again, and of missing.
func (s *neededIndex) reload(ctx context.Context, stale blobIndex, missing ChunkID) (blobIndex, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	old, ok := stale.(*blobPlaces)
	if !ok || s.x != old {
		return s.x, nil
	}
	want := old.prefixes(make([]uint64, 0, len(old.places)+1))
	want = append(want, idPrefix(&missing))
	sortPrefixes(&want)
	s.x = nil // let the old places go first
	x, err := s.r.placesOf(ctx, want)
	if err != nil {
		// Keep reading with the old places: the blobs still there are
		// found, the others fail as they would have.
		s.x = old
		return old, err
	}
	s.x = x
	return x, nil
}

// window makes the places of the blobs whose ID prefixes are in want
// (sorted, without duplicates) the places readers find blobs in, in place
// of those held before: a read-ahead's window. An error sticks, as in
// index.
func (s *neededIndex) window(ctx context.Context, want []uint64) (*blobPlaces, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.x = nil // let the previous window go first
	x, err := s.r.placesOf(ctx, want)
	if err != nil {
		s.err = err
		return nil, err
	}
	if s.adjust != nil {
		s.adjust(x)
	}
	s.x, s.err = x, nil
	return x, nil
}

func (s *neededIndex) load(ctx context.Context) (*blobPlaces, error) {
	// Room for every chunk, and for the pages and nodes of a tree of 4 KiB
	// pages (the usual size; other sizes grow the slice or leave room).
	n := 0
	for _, e := range s.entries {
		n += len(e.Chunks)
		if e.Tree != nil {
			n += int(e.Size/4096) + int(e.Size/4096/128) + 1
		}
	}
	want := make([]uint64, 0, n)
	var trees []*Entry
	for _, e := range s.entries {
		for i := range e.Chunks {
			want = append(want, idPrefix(&e.Chunks[i]))
		}
		if e.Tree != nil {
			trees = append(trees, e)
		}
	}
	if len(trees) > 0 {
		br := s.r.newBlobReaderOn(&loadedPlaces{r: s.r, keep: treesOnly})
		tw := newTreeWalker(br, func(id ChunkID, _ uint8) bool {
			want = append(want, idPrefix(&id))
			return true
		})
		for _, e := range trees {
			if err := tw.walk(ctx, *e.Tree); err != nil {
				return nil, fmt.Errorf("entry %q: %w", e.Name, err)
			}
		}
	}
	sortPrefixes(&want)
	return s.r.placesOf(ctx, want)
}

// treesOnly keeps the places of tree nodes.
func treesOnly(typ uint8, _ uint64) bool { return typ == blobTree }
