package store

import (
	"bytes"
	"encoding/binary"
)

// How an entry's content is cut into blobs.
const (
	layoutChunks = iota // content-defined chunks, listed in Entry.Chunks
	layoutDB            // a SQLite database: one blob per page, in a page tree
	layoutWAL           // a SQLite -wal file: headers inline, pages as blobs
)

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// WAL header magics (the low bit selects the checksum byte order) and the
// only WAL format version SQLite writes.
const (
	walMagicLE  = 0x377f0682
	walMagicBE  = 0x377f0683
	walVersion  = 3007000
	walHeader   = 32
	walFrameHdr = 24
)

// detectLayout decides from the first bytes of a file (at least 100 when
// the file is that long) how to store it, and with which page size. A file
// that only looks like SQLite (a bad page size) is chunked like any other;
// one that is truncated or corrupt past its header is still cut into pages,
// and its short tail becomes a blob of its own, so it is rebuilt byte for
// byte whatever it holds.
func detectLayout(head []byte) (layout, pageSize int) {
	if len(head) >= 100 && bytes.HasPrefix(head, []byte(sqliteMagic)) {
		ps := int(binary.BigEndian.Uint16(head[16:18]))
		if ps == 1 {
			ps = 65536
		}
		if validPageSize(ps) {
			return layoutDB, ps
		}
		return layoutChunks, 0
	}
	if len(head) >= walHeader {
		magic := binary.BigEndian.Uint32(head)
		ps := int(binary.BigEndian.Uint32(head[8:12]))
		if (magic == walMagicLE || magic == walMagicBE) && binary.BigEndian.Uint32(head[4:8]) == walVersion && validPageSize(ps) {
			return layoutWAL, ps
		}
	}
	return layoutChunks, 0
}

// validPageSize reports whether n is a page size SQLite allows: a power of
// two from 512 to 65536.
func validPageSize(n int) bool {
	return n >= 512 && n <= 65536 && n&(n-1) == 0
}
