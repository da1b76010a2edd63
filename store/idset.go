package store

import "encoding/binary"

// idSet is a set of blob IDs held compactly, for the blobs a run adds: the
// IDs in blocks of fixed size (so growing never copies them) and an
// open-addressing table of their positions, 32 bytes an ID plus 5–11 bytes
// of table.
type idSet struct {
	blocks [][]ChunkID // idBlock IDs each, the last one filling
	n      int         // IDs in blocks, removed ones included
	table  []uint32    // per slot: 0 empty, idGone removed, else position+1
	live   int         // IDs in the set
	used   int         // slots not empty
}

const (
	idBlock = 1 << 13 // IDs per block: 256 KiB
	idGone  = ^uint32(0)
)

func newIDSet() *idSet { return &idSet{} }

func (s *idSet) at(pos uint32) *ChunkID { return &s.blocks[pos/idBlock][pos%idBlock] }

// slot returns where id is in the table, or where it would go and false.
func (s *idSet) slot(id *ChunkID) (int, bool) {
	mask := len(s.table) - 1
	free := -1
	// IDs are SHA-256 hashes: their first bytes are as good as any hash.
	for i := int(binary.LittleEndian.Uint64(id[:8])) & mask; ; i = (i + 1) & mask {
		switch v := s.table[i]; v {
		case 0:
			if free < 0 {
				free = i
			}
			return free, false
		case idGone:
			if free < 0 {
				free = i
			}
		default:
			if *s.at(v - 1) == *id {
				return i, true
			}
		}
	}
}

// has reports whether id is in the set.
func (s *idSet) has(id ChunkID) bool {
	if s.live == 0 {
		return false
	}
	_, ok := s.slot(&id)
	return ok
}

// add puts id in the set.
func (s *idSet) add(id ChunkID) {
	if (s.used+1)*4 > len(s.table)*3 {
		s.rehash()
	}
	i, ok := s.slot(&id)
	if ok {
		return
	}
	if s.n%idBlock == 0 {
		s.blocks = append(s.blocks, make([]ChunkID, idBlock))
	}
	*s.at(uint32(s.n)) = id
	s.n++
	if s.table[i] == 0 {
		s.used++
	}
	s.table[i] = uint32(s.n)
	s.live++
}

// remove takes id out of the set. Its place in the blocks is not reused:
// removals are rare (a version that failed).
func (s *idSet) remove(id ChunkID) {
	if s.live == 0 {
		return
	}
	if i, ok := s.slot(&id); ok {
		s.table[i] = idGone
		s.live--
	}
}

// rehash makes the table twice the size the IDs in the set need.
func (s *idSet) rehash() {
	size := 1024
	for size*3 < (s.live+1)*8 {
		size *= 2
	}
	old := s.table
	s.table = make([]uint32, size)
	s.used = 0
	for _, v := range old {
		if v == 0 || v == idGone {
			continue
		}
		i, _ := s.slot(s.at(v - 1))
		s.table[i] = v
		s.used++
	}
}
