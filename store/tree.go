package store

import (
	"bytes"
	"encoding/binary"
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
	// treeFanout is the most items a node holds.
	treeFanout = 256
)

// treeItem is one decoded item of a node.
type treeItem struct {
	kind   byte
	id     ChunkID
	inline []byte // for itemInline; aliases the node's bytes
	size   int64  // for itemChild: content bytes below it
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
		if (it.kind == itemChild) != (level > 0) {
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
}

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
	lv.buf = append(lv.buf, itemRef)
	lv.buf = append(lv.buf, id[:]...)
	lv.items++
	lv.size += int64(size)
	return b.full(0)
}

// addInline appends bytes stored in the tree itself.
func (b *treeBuilder) addInline(p []byte) error {
	lv := b.level(0)
	lv.buf = append(lv.buf, itemInline)
	lv.buf = binary.AppendUvarint(lv.buf, uint64(len(p)))
	lv.buf = append(lv.buf, p...)
	lv.items++
	lv.size += int64(len(p))
	return b.full(0)
}

func (b *treeBuilder) full(i int) error {
	if b.levels[i].items < treeFanout {
		return nil
	}
	_, err := b.close(i)
	return err
}

// close stores the open node of level i and adds it to level i+1.
func (b *treeBuilder) close(i int) (ChunkID, error) {
	lv := b.level(i)
	id, err := b.store(lv.buf)
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
			id, err := b.store(lv.buf)
			return id, err
		}
		if lv.items > 0 {
			if _, err := b.close(i); err != nil {
				return ChunkID{}, err
			}
		}
	}
}
