package store

import "context"

// BlobPlace returns the backend name of the pack holding blob id and the
// offset and length of the frame holding it, for tests that damage packs.
func BlobPlace(ctx context.Context, r *Repository, id ChunkID) (pack string, frameOff, frameLen int64, err error) {
	x, err := r.reloadIndex(ctx)
	if err != nil {
		return "", 0, 0, err
	}
	i := x.find(id)
	if i < 0 {
		return "", 0, 0, errNotIndexed
	}
	e := x.entries[i]
	return packName(x.packs[e.pack]), int64(e.frameOff), int64(e.frameLen), nil
}

// LeafDepths returns the delta depth of every leaf of a page tree, in
// order, for tests of delta leaves.
func LeafDepths(ctx context.Context, r *Repository, root ChunkID) ([]int, error) {
	br := r.newBlobReader()
	var depths []int
	var walk func(id ChunkID) error
	walk = func(id ChunkID) error {
		node, err := br.read(ctx, id, nil)
		if err != nil {
			return err
		}
		var kids []ChunkID
		level, err := parseNode(node, func(it treeItem) error {
			if it.kind == itemChild {
				kids = append(kids, it.id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if level == 0 {
			_, d, err := resolveLeaf(node, func(b ChunkID) ([]byte, error) { return br.read(ctx, b, nil) }, 0)
			depths = append(depths, d)
			return err
		}
		for _, k := range kids {
			if err := walk(k); err != nil {
				return err
			}
		}
		return nil
	}
	return depths, walk(root)
}

// Idle reports whether none of w's store goroutines runs and no frame is
// being compressed: what a Writer must come back to once no version is
// pending, whatever happened.
func (w *Writer) Idle() bool {
	for _, pk := range w.packers {
		if pk.sink != nil || len(pk.tokens) > 0 {
			return false
		}
	}
	return true
}
