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
// unreadable tree node ends the walk of its entry; the other entries are
// still walked (repair needs every blob they use), and the first such
// error, naming its entry, is returned.
func walkVersion(ctx context.Context, br *blobReader, v *Version, visit func(id ChunkID, typ uint8) bool) error {
	tw := newTreeWalker(br, visit)
	var first error
	for i := range v.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := &v.Entries[i]
		for _, c := range e.Chunks {
			visit(c, blobData)
		}
		if e.Tree != nil {
			if err := tw.walk(ctx, *e.Tree); err != nil && first == nil {
				first = fmt.Errorf("entry %q: %w", e.Name, err)
			}
		}
	}
	return first
}

// treeWalker walks page trees for walkVersion, reusing its buffers from
// node to node: one node and one list of items per level, and a
// leafResolver.
type treeWalker struct {
	br     *blobReader
	visit  func(ChunkID, uint8) bool
	leaves *leafResolver
	nodes  [][]byte     // per level
	items  [][]treeItem // per level
}

func newTreeWalker(br *blobReader, visit func(ChunkID, uint8) bool) *treeWalker {
	tw := &treeWalker{br: br, visit: visit, leaves: newLeafResolver(br)}
	// A delta leaf needs its base chain to be read (the nodes only).
	tw.leaves.onBase = func(id ChunkID) { visit(id, blobBase) }
	return tw
}

// walk visits the tree whose root is id.
func (tw *treeWalker) walk(ctx context.Context, id ChunkID) error { return tw.walkAt(ctx, id, 0) }

func (tw *treeWalker) walkAt(ctx context.Context, id ChunkID, depth int) error {
	if !tw.visit(id, blobTree) {
		return nil
	}
	if depth >= 16 {
		return fmt.Errorf("page tree deeper than 16 levels (%w)", ErrDamaged)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(tw.nodes) <= depth {
		tw.nodes = append(tw.nodes, nil)
		tw.items = append(tw.items, make([]treeItem, 0, treeFanout))
	}
	node, err := tw.br.read(ctx, id, tw.nodes[depth][:0])
	if err != nil {
		return fmt.Errorf("tree node: %w", err)
	}
	tw.nodes[depth] = node
	items, err := readNode(ctx, node, tw.items[depth][:0], tw.leaves)
	tw.items[depth] = items
	if err != nil {
		return fmt.Errorf("tree node %s: %w", id, err)
	}
	for _, it := range items {
		switch it.kind {
		case itemRef:
			tw.visit(it.id, blobData)
		case itemChild:
			if err := tw.walkAt(ctx, it.id, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// readNode appends the items of a tree node to out: an inner node's
// children, or a leaf's content, resolved with lr when it is a delta leaf.
func readNode(ctx context.Context, node []byte, out []treeItem, lr *leafResolver) ([]treeItem, error) {
	level, err := parseNode(node, func(it treeItem) error {
		out = append(out, it)
		return nil
	})
	if err == nil && level == 0 && len(out) > 0 && out[0].kind == itemBase {
		out, _, err = lr.resolve(ctx, node, out[:0])
	}
	return out, err
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
