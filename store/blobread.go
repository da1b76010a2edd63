package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
)

// Frame cache bounds. A reader on its own keeps up to cacheFrames recently
// used frames. A database restored after many nights reads its pages from
// frames of many packs in turn, each frame in ascending page order: about
// one frame per night at any point of the file, plus the first night's
// frames in order. So a read-ahead's workers share one cache of up to
// aheadFrames frames, of which only aheadIdleFrames that no planned read
// needs (see frameCache).
const (
	cacheFrames     = 32
	cacheBytes      = 24 << 20
	aheadFrames     = 96
	aheadIdleFrames = 8
	// cacheSpares is how many buffers of evicted frames a cache keeps for
	// the frames it reads next.
	cacheSpares = 4
)

// blobReader reads blobs of one repository through a cache of
// decompressed frames, so that neighbouring pages cost one read.
type blobReader struct {
	repo  *Repository
	src   indexSource
	cache *frameCache
	raw   []byte // scratch for compressed frames
	// fallback, if set, reads the blobs that repo lacks or holds damaged
	// from another repository (repair --from walks page trees through
	// nodes only the other store still has).
	fallback *blobReader
}

// newBlobReader returns a blobReader that finds blobs in the repository's
// whole index (read once and kept), with a frame cache of its own.
func (r *Repository) newBlobReader() *blobReader { return r.newBlobReaderOn(repoIndex{r}) }

// newBlobReaderOn is newBlobReader finding blobs in src.
func (r *Repository) newBlobReaderOn(src indexSource) *blobReader {
	return r.newReaderOf(src, newFrameCache(r, cacheFrames, cacheBytes, 0))
}

// newReaderOf returns a reader finding blobs in src and sharing cache c
// with other readers, each on its own goroutine.
func (r *Repository) newReaderOf(src indexSource, c *frameCache) *blobReader {
	return &blobReader{repo: r, src: src, cache: c}
}

// indexSource gives blobReaders the index they find blobs in: the
// repository's whole index, or only the places one reading needs.
type indexSource interface {
	// index returns the index to read with.
	index(ctx context.Context) (blobIndex, error)
	// reload returns the index read again after blob missing was not
	// where stale placed it, or in it at all (a forget may have repacked
	// it since), or stale itself when there is nothing to read again.
	reload(ctx context.Context, stale blobIndex, missing ChunkID) (blobIndex, error)
}

// blobIndex is where a blobReader looks blobs up: an index, or the
// compact places of the blobs one reading needs (blobPlaces).
type blobIndex interface {
	// locate returns the n-th place (from 0) where blob id may lie, or
	// false when there are no more. A place may hold another blob (the
	// copy of a blob stored twice may be damaged; blobPlaces knows blobs
	// by the start of their IDs only): the content's hash tells.
	locate(id ChunkID, n int) (blobLoc, bool)
}

// repoIndex is the repository's whole index, shared by its readers.
type repoIndex struct{ r *Repository }

func (s repoIndex) index(ctx context.Context) (blobIndex, error) {
	x, err := s.r.currentIndex(ctx)
	if err != nil {
		return nil, err
	}
	return x, nil
}

func (s repoIndex) reload(ctx context.Context, stale blobIndex, _ ChunkID) (blobIndex, error) {
	s.r.idxMu.Lock()
	defer s.r.idxMu.Unlock()
	if s.r.idx != nil && blobIndex(s.r.idx) != stale {
		return s.r.idx, nil // read again by another reader meanwhile
	}
	x, err := s.r.reloadIndexLocked(ctx)
	if err != nil {
		return nil, err
	}
	return x, nil
}

// loadedIndex is an index one reading loaded (check and forget: whole),
// read again with the same filter when stale, without touching the
// repository's cached one.
type loadedIndex struct {
	r  *Repository
	f  indexFilter
	mu sync.Mutex
	x  *index
}

func (s *loadedIndex) index(context.Context) (blobIndex, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.x, nil
}

func (s *loadedIndex) reload(ctx context.Context, stale blobIndex, _ ChunkID) (blobIndex, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if blobIndex(s.x) != stale {
		return s.x, nil
	}
	x, _, err := s.r.loadIndex(ctx, s.f)
	if err != nil {
		return nil, err
	}
	s.x = x
	return x, nil
}

// fixedIndex is an index that is not read again.
type fixedIndex struct{ x *index }

func (s fixedIndex) index(context.Context) (blobIndex, error) { return s.x, nil }
func (s fixedIndex) reload(context.Context, blobIndex, ChunkID) (blobIndex, error) {
	return s.x, nil
}

// read appends the verified content of blob id to buf. A blob in no index
// is looked for among the format-1 chunks, then in the fallback. A missing
// blob gives an error wrapping fs.ErrNotExist, a damaged one ErrDamaged.
func (b *blobReader) read(ctx context.Context, id ChunkID, buf []byte) ([]byte, error) {
	out, err := b.readHere(ctx, id, buf)
	if err != nil && b.fallback != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrDamaged)) {
		if out, ferr := b.fallback.read(ctx, id, buf); ferr == nil {
			return out, nil
		}
	}
	return out, err
}

// readHere is read without the fallback.
func (b *blobReader) readHere(ctx context.Context, id ChunkID, buf []byte) ([]byte, error) {
	x, err := b.src.index(ctx)
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
		nx, rerr := b.src.reload(ctx, x, id)
		if rerr != nil {
			return buf, rerr
		}
		if nx == x {
			return out, err
		}
		x = nx
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

// locate returns the n-th place (from 0) where index x places blob id: a
// blob stored twice has two.
func (x *index) locate(id ChunkID, n int) (blobLoc, bool) {
	i := x.find(id)
	if i < 0 || i+n >= len(x.entries) || x.entries[i+n].id != id {
		return blobLoc{}, false
	}
	e := &x.entries[i+n]
	f := &x.frames[e.frame]
	return blobLoc{frame: frameKey{x.packs[f.pack], f.off}, frameLen: f.len, off: e.off, len: e.len}, true
}

// readIndexed reads a blob the index x places; errNotIndexed if it places
// none. The places x gives are tried in turn until one holds content that
// hashes to id (see blobIndex): only when none does is the blob damaged,
// unless it is a format-1 chunk whose ID starts like an indexed blob's.
func (b *blobReader) readIndexed(ctx context.Context, x blobIndex, id ChunkID, buf []byte) ([]byte, error) {
	var damage error
	for n := 0; ; n++ {
		loc, ok := x.locate(id, n)
		if !ok {
			break
		}
		out, err := b.readAt(ctx, id, loc, false, buf)
		if err == nil || !errors.Is(err, ErrDamaged) {
			return out, err
		}
		if damage == nil {
			damage = err
		}
	}
	if damage == nil {
		return buf, errNotIndexed
	}
	if out, err := b.repo.ReadChunk(ctx, id, buf); err == nil {
		return out, nil
	}
	return buf, damage
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
