package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
)

// neededIndex is the part of the index that reading some entries needs:
// the places of the blobs they use and nothing else, so that a restore or
// an export holds a number of records that follows the version's size, not
// the repository's history. It is loaded when a reader first asks for it:
//
//  1. When an entry is stored page by page, the index is read keeping only
//     the places of tree nodes (a few in a thousand records), and the
//     entries' page trees are walked to list every blob they use.
//  2. The index is read again, keeping only the places of those blobs;
//     the list of blobs and the tree nodes' places are then let go.
//
// Entries stored in chunks need only the second step: their manifest
// lists their blobs.
type neededIndex struct {
	r       *Repository
	entries []*Entry
	mu      sync.Mutex
	x       *index
	err     error // why the index could not be loaded; it sticks
}

func (r *Repository) neededIndex(entries []*Entry) *neededIndex {
	return &neededIndex{r: r, entries: entries}
}

func (s *neededIndex) index(ctx context.Context) (*index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.x == nil && s.err == nil {
		s.x, s.err = s.load(ctx)
	}
	return s.x, s.err
}

// reload reads the places of the same blobs again, and of missing.
func (s *neededIndex) reload(ctx context.Context, stale *index, missing ChunkID) (*index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.x != stale || s.err != nil {
		return s.x, s.err
	}
	ids := make([]ChunkID, 0, len(stale.entries)+1)
	for i := range stale.entries {
		ids = append(ids, stale.entries[i].id)
	}
	ids = append(ids, missing)
	sortIDs(&ids)
	s.x = nil // let the old places go first
	x, err := s.r.placesOf(ctx, ids)
	if err != nil {
		// Keep reading with the old places: the blobs still there are
		// found, the others fail as they would have.
		s.x = stale
		return stale, err
	}
	s.x = x
	return x, nil
}

func (s *neededIndex) load(ctx context.Context) (*index, error) {
	// Room for every chunk, and for the pages and nodes of a tree of 4 KiB
	// pages (the usual size; other sizes grow the slice or leave room).
	n := 0
	for _, e := range s.entries {
		n += len(e.Chunks)
		if e.Tree != nil {
			n += int(e.Size/4096) + int(e.Size/4096/128) + 1
		}
	}
	ids := make([]ChunkID, 0, n)
	var trees []*Entry
	for _, e := range s.entries {
		ids = append(ids, e.Chunks...)
		if e.Tree != nil {
			trees = append(trees, e)
		}
	}
	if len(trees) > 0 {
		nodes := &loadedIndex{r: s.r, f: treesOnly}
		x, _, err := s.r.loadIndex(ctx, treesOnly)
		if err != nil {
			return nil, err
		}
		nodes.x = x
		br := s.r.newBlobReaderOn(nodes)
		for _, e := range trees {
			err := walkTree(ctx, br, *e.Tree, 0, func(id ChunkID, _ uint8) bool {
				ids = append(ids, id)
				return true
			})
			if err != nil {
				return nil, fmt.Errorf("entry %q: %w", e.Name, err)
			}
		}
	}
	sortIDs(&ids)
	return s.r.placesOf(ctx, ids)
}

// treesOnly keeps the places of tree nodes.
var treesOnly = indexFilter{keep: func(typ uint8, _ ChunkID) keepMode {
	if typ == blobTree {
		return keepPlace
	}
	return keepNothing
}}

// placesOf reads the index keeping the places of the blobs in ids (sorted,
// without duplicates) only.
func (r *Repository) placesOf(ctx context.Context, ids []ChunkID) (*index, error) {
	if len(ids) == 0 {
		return &index{}, nil
	}
	x, _, err := r.loadIndex(ctx, indexFilter{
		keep: func(_ uint8, id ChunkID) keepMode {
			if _, ok := slices.BinarySearchFunc(ids, id, compareIDs); ok {
				return keepPlace
			}
			return keepNothing
		},
		places: len(ids),
	})
	return x, err
}

func compareIDs(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) }

// sortIDs sorts ids and drops duplicates and the room they leave.
func sortIDs(ids *[]ChunkID) {
	slices.SortFunc(*ids, compareIDs)
	*ids = slices.Clip(slices.Compact(*ids))
}
