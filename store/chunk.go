package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ChunkID is the SHA-256 of a chunk's plain content.
type ChunkID [sha256.Size]byte

// ErrDamaged marks data whose content does not match its name or record.
var ErrDamaged = errors.New("damaged")

// HashChunk returns the ID of data.
func HashChunk(data []byte) ChunkID { return sha256.Sum256(data) }

// String returns the ID in lower-case hex.
func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the ID as hex.
func (id ChunkID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *ChunkID) UnmarshalText(b []byte) error {
	p, err := ParseChunkID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseChunkID parses a hex chunk ID.
func ParseChunkID(s string) (ChunkID, error) {
	var id ChunkID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("chunk id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("chunk id %q: %w", s, err)
	}
	return id, nil
}

// chunkPrefix is where chunks live in the backend.
const chunkPrefix = "chunks/"

// chunkName is the backend name of a chunk: chunks/<first two hex>/<hex>.
func chunkName(id ChunkID) string { return shardedName(chunkPrefix, id) }

// parseChunkName returns the ID of a backend name under chunks/, or false.
func parseChunkName(name string) (ChunkID, bool) { return parseShardedName(chunkPrefix, name) }

// shardedName is the backend name of an object named by its ID under
// prefix: <prefix><first two hex>/<hex>, so no directory grows too large.
func shardedName(prefix string, id ChunkID) string {
	h := id.String()
	return prefix + h[:2] + "/" + h
}

// parseShardedName returns the ID of a name shardedName made under prefix,
// or false.
func parseShardedName(prefix, name string) (ChunkID, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return ChunkID{}, false
	}
	i := strings.LastIndexByte(rest, '/')
	id, err := ParseChunkID(rest[i+1:])
	if err != nil || i != 2 || rest[:i] != rest[i+1:i+3] {
		return ChunkID{}, false
	}
	return id, true
}

// PutChunk compresses data and stores it under its ID. It returns the number
// of bytes written to the backend.
func (r *Repository) PutChunk(ctx context.Context, id ChunkID, data []byte) (int64, error) {
	r.zmu.Lock()
	defer r.zmu.Unlock()
	z := r.enc.EncodeAll(data, r.zbuf[:0])
	r.zbuf = z
	if err := r.backend.Put(ctx, chunkName(id), bytes.NewReader(z), int64(len(z))); err != nil {
		return 0, fmt.Errorf("store chunk %s: %w", id, err)
	}
	return int64(len(z)), nil
}

// ReadChunk reads, decompresses and verifies a chunk, appending its content to
// buf. A chunk whose content does not hash to its ID gives an error wrapping
// ErrDamaged; a missing chunk one wrapping fs.ErrNotExist.
func (r *Repository) ReadChunk(ctx context.Context, id ChunkID, buf []byte) ([]byte, error) {
	rc, err := r.backend.Get(ctx, chunkName(id))
	if err != nil {
		return buf, fmt.Errorf("read chunk %s: %w", id, err)
	}
	defer rc.Close()
	var z bytes.Buffer
	if _, err := io.Copy(&z, io.LimitReader(rc, int64(r.config.ChunkMaxSize)*2+1<<20)); err != nil {
		return buf, fmt.Errorf("read chunk %s: %w", id, err)
	}
	start := len(buf)
	out, err := r.dec.DecodeAll(z.Bytes(), buf)
	if err != nil {
		return buf, fmt.Errorf("read chunk %s: cannot decompress: %w (%w)", id, err, ErrDamaged)
	}
	if HashChunk(out[start:]) != id {
		return buf, fmt.Errorf("read chunk %s: content does not match its hash (%w)", id, ErrDamaged)
	}
	return out, nil
}

// Chunks lists every blob in the repository: the blobs the index names in
// packs, with their plain size, and the chunks a format-1 repository stored
// one per object, with their stored size.
func (r *Repository) Chunks(ctx context.Context) (map[ChunkID]int64, error) {
	m, err := r.looseChunks(ctx)
	if err != nil {
		return nil, err
	}
	x, _, err := r.loadIndex(ctx, everyPlace)
	if err != nil {
		return nil, err
	}
	for _, e := range x.entries {
		m[e.id] = int64(e.len)
	}
	return m, nil
}

// looseChunks lists the chunks stored one per object (format 1) with their
// stored size.
func (r *Repository) looseChunks(ctx context.Context) (map[ChunkID]int64, error) {
	m := make(map[ChunkID]int64)
	err := r.backend.List(ctx, chunkPrefix, func(name string, size int64) error {
		if id, ok := parseChunkName(name); ok {
			m[id] = size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list chunks in %s: %w", r.Location(), err)
	}
	return m, nil
}

// DeleteChunk removes a chunk.
func (r *Repository) DeleteChunk(ctx context.Context, id ChunkID) error {
	if err := r.backend.Delete(ctx, chunkName(id)); err != nil {
		return fmt.Errorf("delete chunk %s: %w", id, err)
	}
	return nil
}
