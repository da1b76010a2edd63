package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Frame cache bounds of one reading of a repository. A database restored
// after many nights reads its pages from frames of many packs in turn, each
// frame in ascending page order: about one frame per night at any point of
// the file, plus the first night's frames in order. Readers that work
// together (a readAhead's workers) share one cache.
const (
	cacheFrames = 96
	cacheBytes  = 24 << 20
	// cacheIdleFrames is how many frames no planned read needs a shared
	// cache keeps (see frameCache).
	cacheIdleFrames = 16
)

// blobReader reads blobs of one repository through a cache of
// decompressed frames, so that neighbouring pages cost one read.
type blobReader struct {
	repo  *Repository
	cache *frameCache
	raw   []byte // scratch for compressed frames
}

// newBlobReader returns a reader with a cache of its own.
func (r *Repository) newBlobReader() *blobReader {
	return &blobReader{repo: r, cache: newFrameCache(r, cacheFrames, cacheBytes, 0)}
}

// newReaderOf returns a reader sharing cache c with other readers, each on
// its own goroutine.
func (r *Repository) newReaderOf(c *frameCache) *blobReader {
	return &blobReader{repo: r, cache: c}
}

// read appends the verified content of blob id to buf. A blob in no index
// is looked for among the format-1 chunks. A missing blob gives an error
// wrapping fs.ErrNotExist, a damaged one ErrDamaged.
func (b *blobReader) read(ctx context.Context, id ChunkID, buf []byte) ([]byte, error) {
	x, err := b.repo.currentIndex(ctx)
	if err != nil {
		return buf, err
	}
	for attempt := 0; ; attempt++ {
		out, err := b.readIndexed(ctx, x, id, buf)
		if errors.Is(err, errNotIndexed) {
			out, err = b.repo.ReadChunk(ctx, id, buf)
			if errors.Is(err, fs.ErrNotExist) {
				err = fmt.Errorf("blob %s is in no pack and no chunk: %w", id, fs.ErrNotExist)
			}
		}
		if err == nil || attempt > 0 || !errors.Is(err, fs.ErrNotExist) {
			return out, err
		}
		// A forget may have repacked the blob since the index was read:
		// read the index again and retry once.
		if x, err = b.repo.reloadIndex(ctx); err != nil {
			return buf, err
		}
		b.cache.clear()
	}
}

// frameKey names a frame: its pack and offset.
type frameKey struct {
	pack ChunkID
	off  uint32
}

// blobLoc is where the index places a blob: its frame, the frame's
// compressed length, and the blob's offset and length in the frame's plain
// content.
type blobLoc struct {
	frame    frameKey
	frameLen uint32
	off, len uint32
}

// locate returns where index x places blob id, or false.
func (x *index) locate(id ChunkID) (blobLoc, bool) {
	i := x.find(id)
	if i < 0 {
		return blobLoc{}, false
	}
	e := &x.entries[i]
	return blobLoc{frame: frameKey{x.packs[e.pack], e.frameOff}, frameLen: e.frameLen, off: e.off, len: e.len}, true
}

// readIndexed reads a blob the index x knows; errNotIndexed if it does not.
func (b *blobReader) readIndexed(ctx context.Context, x *index, id ChunkID, buf []byte) ([]byte, error) {
	loc, ok := x.locate(id)
	if !ok {
		return buf, errNotIndexed
	}
	return b.readAt(ctx, id, loc, false, buf)
}

// readAt appends the verified content of blob id, which lies at loc, to
// buf; planned says the read was announced to the cache (frameCache.plan).
func (b *blobReader) readAt(ctx context.Context, id ChunkID, loc blobLoc, planned bool, buf []byte) ([]byte, error) {
	f, err := b.cache.get(ctx, loc.frame, loc.frameLen, &b.raw)
	if err != nil {
		if planned {
			b.cache.plan(loc.frame, -1)
		}
		return buf, fmt.Errorf("read blob %s: %w", id, err)
	}
	defer b.cache.put(f, planned)
	if uint64(loc.off)+uint64(loc.len) > uint64(len(f.plain)) {
		return buf, fmt.Errorf("read blob %s: index places it past the end of its frame in pack %s (%w)", id, loc.frame.pack, ErrDamaged)
	}
	data := f.plain[loc.off : loc.off+loc.len]
	if HashChunk(data) != id {
		return buf, fmt.Errorf("read blob %s: content in pack %s does not match its hash (%w)", id, loc.frame.pack, ErrDamaged)
	}
	return append(buf, data...), nil
}
