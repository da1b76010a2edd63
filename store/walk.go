package store

import (
	"context"
	"fmt"
)

// walkVersion calls visit for every blob v uses: each entry's chunks, and
// for an entry stored page by page every tree node and page. The nodes of
// a delta leaf's base chain are visited as blobBase: the leaf needs them
// to be read, but not the pages only they name. visit returns whether to
// descend into a tree node; returning false for a node walked before skips
// a subtree already walked (its return for other types is ignored). An
// unreadable tree node stops the walk with an error naming the entry.
func walkVersion(ctx context.Context, br *blobReader, v *Version, visit func(id ChunkID, typ uint8) bool) error {
	for i := range v.Entries {
		e := &v.Entries[i]
		for _, c := range e.Chunks {
			visit(c, blobData)
		}
		if e.Tree != nil {
			if err := walkTree(ctx, br, *e.Tree, 0, visit); err != nil {
				return fmt.Errorf("entry %q: %w", e.Name, err)
			}
		}
	}
	return nil
}

func walkTree(ctx context.Context, br *blobReader, id ChunkID, depth int, visit func(ChunkID, uint8) bool) error {
	if !visit(id, blobTree) {
		return nil
	}
	if depth >= 16 {
		return fmt.Errorf("page tree deeper than 16 levels (%w)", ErrDamaged)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	node, err := br.read(ctx, id, nil)
	if err != nil {
		return fmt.Errorf("tree node: %w", err)
	}
	var items []treeItem
	level, err := parseNode(node, func(it treeItem) error {
		items = append(items, it)
		return nil
	})
	if err == nil && level == 0 && len(items) > 0 && items[0].kind == itemBase {
		// A delta leaf: its base chain is needed to read it (the nodes
		// only), and its content is the resolved items.
		items, _, err = resolveLeaf(node, func(b ChunkID) ([]byte, error) {
			visit(b, blobBase)
			return br.read(ctx, b, nil)
		}, 0)
	}
	if err != nil {
		return fmt.Errorf("tree node %s: %w", id, err)
	}
	for _, it := range items {
		switch it.kind {
		case itemRef:
			visit(it.id, blobData)
		case itemChild:
			if err := walkTree(ctx, br, it.id, depth+1, visit); err != nil {
				return err
			}
		}
	}
	return nil
}

// blobMarks records which blobs the versions of a repository use: the mark
// phase that check and forget share. Each tree node is walked once, however
// many versions name it.
type blobMarks struct {
	x      *index
	used   []bool           // per index entry
	loose  map[ChunkID]bool // used blobs the index lacks (format-1 chunks)
	walked map[ChunkID]bool // tree nodes walked, below which all is marked
}

func newBlobMarks(x *index) *blobMarks {
	return &blobMarks{x: x, used: make([]bool, len(x.entries)), loose: make(map[ChunkID]bool), walked: make(map[ChunkID]bool)}
}

// mark walks v and marks every blob it uses. present, if not nil, is asked
// about each blob (i is its index entry, or -1 if the index lacks it); a
// blob it calls absent is not descended into.
func (m *blobMarks) mark(ctx context.Context, br *blobReader, v *Version, present func(id ChunkID, i int) bool) error {
	return walkVersion(ctx, br, v, func(id ChunkID, typ uint8) bool {
		if typ == blobTree {
			if m.walked[id] {
				return false
			}
			m.walked[id] = true
		}
		i := m.x.find(id)
		if i >= 0 {
			m.used[i] = true
		} else {
			m.loose[id] = true
		}
		return present == nil || present(id, i)
	})
}
