package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// A page tree lists an entry's content as a sequence of items: references to
// data blobs (one database page each) and short inline byte strings (WAL
// frame headers). Leaves hold items; inner nodes hold child node IDs. Nodes
// are cut at fixed item counts, so a region of the file whose pages did not
// change keeps its nodes, and a version costs only the nodes above changed
// pages.

// Tree node encoding (the plain content of a blobTree blob).
const (
	treeMagic  = "PSNT" // then one byte: the node's level, 0 for a leaf
	itemRef    = 1      // then a 32-byte data blob ID
	itemInline = 2      // then a uvarint length and that many bytes
	itemChild  = 3      // then a 32-byte node ID and a uvarint content size
	itemCopy   = 5      // then uvarint start and count: items start..start+count-1 of the base leaf
	itemBase   = 6      // first in a delta leaf: a 32-byte base leaf ID and the uvarint delta depth
	// treeFanout is the most items a node holds.
	treeFanout = 256
)

// treeItem is one decoded item of a node.
type treeItem struct {
	kind   byte
	id     ChunkID
	inline []byte // for itemInline; aliases the node's bytes
	size   int64  // for itemChild: content bytes below it; for itemBase: depth
	start  int    // for itemCopy
	count  int    // for itemCopy
}

// sameItem reports whether two leaf items stand for the same content.
func sameItem(a, b treeItem) bool {
	return a.kind == b.kind && a.id == b.id && bytes.Equal(a.inline, b.inline)
}

// parseNode decodes a tree node, calling fn for each item in order.
func parseNode(node []byte, fn func(treeItem) error) (level int, err error) {
	rest, ok := bytes.CutPrefix(node, []byte(treeMagic))
	if !ok || len(rest) < 1 {
		return 0, fmt.Errorf("tree node does not start with %q (%w)", treeMagic, ErrDamaged)
	}
	level = int(rest[0])
	rest = rest[1:]
	for len(rest) > 0 {
		it := treeItem{kind: rest[0]}
		rest = rest[1:]
		if (it.kind == itemChild) != (level > 0) || (it.kind == itemBase && len(node)-len(rest) != len(treeMagic)+2) {
			return level, fmt.Errorf("tree node of level %d holds an item of kind %d (%w)", level, it.kind, ErrDamaged)
		}
		switch it.kind {
		case itemRef, itemChild:
			if len(rest) < 32 {
				return level, fmt.Errorf("tree node ends inside an ID (%w)", ErrDamaged)
			}
			copy(it.id[:], rest)
			rest = rest[32:]
			if it.kind == itemChild {
				v, n := binary.Uvarint(rest)
				if n <= 0 {
					return level, fmt.Errorf("tree node has a bad size (%w)", ErrDamaged)
				}
				it.size, rest = int64(v), rest[n:]
			}
		case itemBase:
			if len(rest) < 32 {
				return level, fmt.Errorf("tree node ends inside an ID (%w)", ErrDamaged)
			}
			copy(it.id[:], rest)
			v, n := binary.Uvarint(rest[32:])
			if n <= 0 {
				return level, fmt.Errorf("tree node has a bad depth (%w)", ErrDamaged)
			}
			it.size, rest = int64(v), rest[32+n:]
		case itemCopy:
			a, n := binary.Uvarint(rest)
			if n <= 0 {
				return level, fmt.Errorf("tree node has a bad copy start (%w)", ErrDamaged)
			}
			c, m := binary.Uvarint(rest[n:])
			if m <= 0 || a > treeFanout || c > treeFanout {
				return level, fmt.Errorf("tree node has a bad copy count (%w)", ErrDamaged)
			}
			it.start, it.count, rest = int(a), int(c), rest[n+m:]
		case itemInline:
			v, n := binary.Uvarint(rest)
			if n <= 0 || v > uint64(len(rest)-n) {
				return level, fmt.Errorf("tree node has a bad inline length (%w)", ErrDamaged)
			}
			it.inline, rest = rest[n:n+int(v)], rest[n+int(v):]
		default:
			return level, fmt.Errorf("tree node holds an item of unknown kind %d (%w)", it.kind, ErrDamaged)
		}
		if err := fn(it); err != nil {
			return level, err
		}
	}
	return level, nil
}

// treeBuilder builds a page tree bottom-up while the content streams past,
// keeping one open node per level.
type treeBuilder struct {
	levels []treeLevel
	// store saves a finished node and returns its ID.
	store func(node []byte) (ChunkID, error)
	// base, if set, returns leaf n of the tree of the entry's previous
	// version, resolved, and its delta depth; ok is false when there is
	// none.
	base   func(n int) (id ChunkID, depth int, items []treeItem, ok bool)
	leaves int        // leaves finished so far
	items  []treeItem // the open leaf's items (inline bytes copied)
}

// maxDepth bounds the chain of delta leaves at leaf n: between 8 and 16,
// so that leaves are rewritten in full on different nights rather than all
// on one.
func maxDepth(n int) int { return 8 + n%9 }

type treeLevel struct {
	buf   []byte
	items int
	size  int64   // content bytes below the open node
	last  ChunkID // the last child added (inner levels)
}

func newTreeBuilder(store func([]byte) (ChunkID, error)) *treeBuilder {
	return &treeBuilder{store: store}
}

func (b *treeBuilder) level(i int) *treeLevel {
	for len(b.levels) <= i {
		b.levels = append(b.levels, treeLevel{})
	}
	lv := &b.levels[i]
	if lv.items == 0 && len(lv.buf) == 0 {
		lv.buf = append(lv.buf, treeMagic...)
		lv.buf = append(lv.buf, byte(i))
	}
	return lv
}

// addRef appends a reference to a data blob of size bytes.
func (b *treeBuilder) addRef(id ChunkID, size int) error {
	lv := b.level(0)
	lv.buf = appendItem(lv.buf, treeItem{kind: itemRef, id: id})
	b.items = append(b.items, treeItem{kind: itemRef, id: id})
	lv.items++
	lv.size += int64(size)
	return b.full(0)
}

// addInline appends bytes stored in the tree itself.
func (b *treeBuilder) addInline(p []byte) error {
	lv := b.level(0)
	it := treeItem{kind: itemInline, inline: bytes.Clone(p)}
	lv.buf = appendItem(lv.buf, it)
	b.items = append(b.items, it)
	lv.items++
	lv.size += int64(len(p))
	return b.full(0)
}

// appendItem encodes a leaf item.
func appendItem(buf []byte, it treeItem) []byte {
	buf = append(buf, it.kind)
	if it.kind == itemInline {
		buf = binary.AppendUvarint(buf, uint64(len(it.inline)))
		return append(buf, it.inline...)
	}
	return append(buf, it.id[:]...)
}

func (b *treeBuilder) full(i int) error {
	if b.levels[i].items < treeFanout {
		return nil
	}
	_, err := b.close(i)
	return err
}

// storeLeaf stores the open leaf: the same leaf as the previous version's
// when nothing in it changed, else as a delta against that leaf when that
// is smaller and the chain not too long, else in full.
func (b *treeBuilder) storeLeaf() (ChunkID, error) {
	lv := &b.levels[0]
	n := b.leaves
	b.leaves++
	items := b.items
	b.items = b.items[:0]
	if b.base == nil {
		return b.store(lv.buf)
	}
	baseID, depth, base, ok := b.base(n)
	if !ok {
		return b.store(lv.buf)
	}
	if len(base) == len(items) {
		same := true
		for j := range items {
			if !sameItem(items[j], base[j]) {
				same = false
				break
			}
		}
		if same {
			return baseID, nil
		}
	}
	if depth+1 > maxDepth(n) {
		return b.store(lv.buf)
	}
	d := append([]byte(treeMagic), 0, itemBase)
	d = append(d, baseID[:]...)
	d = binary.AppendUvarint(d, uint64(depth+1))
	for j := 0; j < len(items); {
		if j < len(base) && sameItem(items[j], base[j]) {
			k := j
			for k < len(items) && k < len(base) && sameItem(items[k], base[k]) {
				k++
			}
			d = append(d, itemCopy)
			d = binary.AppendUvarint(d, uint64(j))
			d = binary.AppendUvarint(d, uint64(k-j))
			j = k
			continue
		}
		d = appendItem(d, items[j])
		j++
	}
	if len(d) >= len(lv.buf) {
		return b.store(lv.buf)
	}
	return b.store(d)
}

// close stores the open node of level i and adds it to level i+1.
func (b *treeBuilder) close(i int) (ChunkID, error) {
	lv := b.level(i)
	var id ChunkID
	var err error
	if i == 0 {
		id, err = b.storeLeaf()
	} else {
		id, err = b.store(lv.buf)
	}
	if err != nil {
		return id, err
	}
	size := lv.size
	lv.buf, lv.items, lv.size = lv.buf[:0], 0, 0
	up := b.level(i + 1)
	up.buf = append(up.buf, itemChild)
	up.buf = append(up.buf, id[:]...)
	up.buf = binary.AppendUvarint(up.buf, uint64(size))
	up.items++
	up.size += size
	up.last = id
	return id, b.full(i + 1)
}

// finish stores the remaining open nodes and returns the root's ID.
func (b *treeBuilder) finish() (ChunkID, error) {
	b.level(0)
	for i := 0; ; i++ {
		lv := &b.levels[i]
		top := i == len(b.levels)-1
		if top {
			if i > 0 && lv.items == 1 {
				return lv.last, nil
			}
			if i == 0 {
				return b.storeLeaf()
			}
			return b.store(lv.buf)
		}
		if lv.items > 0 {
			if _, err := b.close(i); err != nil {
				return ChunkID{}, err
			}
		}
	}
}

// leafResolver reads leaves, a delta leaf applied to its chain of bases,
// reusing its buffers from leaf to leaf: one node and one list of items per
// link of the chain, so reading a tree's leaves makes no garbage once the
// longest chain has been read.
type leafResolver struct {
	br *blobReader
	// onBase, if set, is told each base leaf before it is read.
	onBase func(ChunkID)
	nodes  [][]byte     // per link of the chain: the base leaf's bytes
	items  [][]treeItem // per link: the base leaf's items, resolved
}

func newLeafResolver(br *blobReader) *leafResolver { return &leafResolver{br: br} }

// errStopParse stops parseNode after the item wanted.
var errStopParse = errors.New("stop")

// resolve appends the items of leaf node to out, a delta leaf's applied
// to its base's (read first, and so on down the chain), and returns them
// with the leaf's delta depth (0 for a full leaf). Inline items alias node
// and the resolver's buffers: they are valid until the next resolve.
func (lr *leafResolver) resolve(ctx context.Context, node []byte, out []treeItem) ([]treeItem, int, error) {
	return lr.resolveAt(ctx, node, out, 0)
}

func (lr *leafResolver) resolveAt(ctx context.Context, node []byte, out []treeItem, link int) ([]treeItem, int, error) {
	var first treeItem
	level, err := parseNode(node, func(it treeItem) error {
		first = it
		return errStopParse
	})
	if err != nil && err != errStopParse {
		return out, 0, err
	}
	if level != 0 {
		return out, 0, fmt.Errorf("tree node of level %d where a leaf belongs (%w)", level, ErrDamaged)
	}
	if first.kind != itemBase {
		_, err := parseNode(node, func(it treeItem) error {
			if it.kind == itemCopy {
				return fmt.Errorf("tree leaf copies from no base (%w)", ErrDamaged)
			}
			out = append(out, it)
			return nil
		})
		return out, 0, err
	}
	if link > 64 {
		return out, 0, fmt.Errorf("chain of delta leaves longer than 64 (%w)", ErrDamaged)
	}
	if len(lr.nodes) <= link {
		lr.nodes = append(lr.nodes, nil)
		lr.items = append(lr.items, make([]treeItem, 0, treeFanout))
	}
	if lr.onBase != nil {
		lr.onBase(first.id)
	}
	baseNode, err := lr.br.read(ctx, first.id, lr.nodes[link][:0])
	if err != nil {
		return out, 0, fmt.Errorf("base leaf %s: %w", first.id, err)
	}
	lr.nodes[link] = baseNode
	base, _, err := lr.resolveAt(ctx, baseNode, lr.items[link][:0], link+1)
	lr.items[link] = base
	if err != nil {
		return out, 0, err
	}
	isBase := true
	_, err = parseNode(node, func(it treeItem) error {
		switch {
		case isBase:
			isBase = false
		case it.kind == itemCopy:
			if it.start+it.count > len(base) {
				return fmt.Errorf("delta leaf copies items %d+%d of a base of %d (%w)", it.start, it.count, len(base), ErrDamaged)
			}
			out = append(out, base[it.start:it.start+it.count]...)
		case it.kind == itemBase:
			return fmt.Errorf("delta leaf names two bases (%w)", ErrDamaged)
		default:
			out = append(out, it)
		}
		return nil
	})
	return out, int(first.size), err
}
