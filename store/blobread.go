package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

// Frame cache bounds of one reading of a repository: a database restored
// after many nights reads its pages from frames of many packs in turn, each
// frame in ascending page order, so a few dozen frames cover every stream at
// once. Readers that work together (a readAhead's workers and its tree
// walker) share these bounds, so that memory does not grow with the cores.
const (
	cacheFrames = 32
	cacheBytes  = 24 << 20
	// minCacheFrames is the least a reader sharing the bounds keeps.
	minCacheFrames = 4
)

// blobReader reads blobs of one repository, keeping the most recently used
// decompressed frames so that neighbouring pages cost one read.
type blobReader struct {
	repo      *Repository
	src       indexSource
	maxFrames int // cache bounds
	maxBytes  int
	frames    []cachedFrame
	tick      uint64
	raw       []byte
}

type cachedFrame struct {
	pack  ChunkID
	off   uint32
	plain []byte
	used  uint64
}

// newBlobReader returns a blobReader that finds blobs in the repository's
// whole index (read once and kept).
func (r *Repository) newBlobReader() *blobReader { return r.newSharedBlobReader(1) }

// newSharedBlobReader returns one of n blobReaders that work together: its
// frame cache holds an n-th of the cache bounds, at least minCacheFrames
// frames.
func (r *Repository) newSharedBlobReader(n int) *blobReader {
	return r.newBlobReaderOn(repoIndex{r}, n)
}

// newBlobReaderOn is newSharedBlobReader finding blobs in src.
func (r *Repository) newBlobReaderOn(src indexSource, n int) *blobReader {
	return &blobReader{repo: r, src: src, maxFrames: max(minCacheFrames, cacheFrames/n), maxBytes: cacheBytes / n}
}

// indexSource gives blobReaders the index they find blobs in: the
// repository's whole index, or only the part one reading needs.
type indexSource interface {
	// index returns the index to read with.
	index(ctx context.Context) (*index, error)
	// reload returns the index read again after blob missing was not
	// where stale placed it, or in it at all (a forget may have repacked
	// it since), or stale itself when there is nothing to read again.
	reload(ctx context.Context, stale *index, missing ChunkID) (*index, error)
}

// repoIndex is the repository's whole index, shared by its readers.
type repoIndex struct{ r *Repository }

func (s repoIndex) index(ctx context.Context) (*index, error) { return s.r.currentIndex(ctx) }

func (s repoIndex) reload(ctx context.Context, stale *index, _ ChunkID) (*index, error) {
	s.r.idxMu.Lock()
	defer s.r.idxMu.Unlock()
	if s.r.idx != nil && s.r.idx != stale {
		return s.r.idx, nil // read again by another reader meanwhile
	}
	return s.r.reloadIndexLocked(ctx)
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

func (s *loadedIndex) index(context.Context) (*index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.x, nil
}

func (s *loadedIndex) reload(ctx context.Context, stale *index, _ ChunkID) (*index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.x != stale {
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

func (s fixedIndex) index(context.Context) (*index, error)                   { return s.x, nil }
func (s fixedIndex) reload(context.Context, *index, ChunkID) (*index, error) { return s.x, nil }

// read appends the verified content of blob id to buf. A blob in no index
// is looked for among the format-1 chunks. A missing blob gives an error
// wrapping fs.ErrNotExist, a damaged one ErrDamaged.
func (b *blobReader) read(ctx context.Context, id ChunkID, buf []byte) ([]byte, error) {
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
		b.frames = b.frames[:0]
	}
}

// frameKey names a frame: its pack and offset.
type frameKey struct {
	pack ChunkID
	off  uint32
}

// place returns a blob's plain length and frame as the index records
// them, or 4096 and no frame when the index does not know it (a format-1
// chunk or a missing blob: reading it will tell).
func (b *blobReader) place(ctx context.Context, id ChunkID) (int, frameKey) {
	x, err := b.src.index(ctx)
	if err == nil {
		if i := x.find(id); i >= 0 {
			e := &x.entries[i]
			f := &x.frames[e.frame]
			return int(e.len), frameKey{x.packs[f.pack], f.off}
		}
	}
	return 4096, frameKey{}
}

// readIndexed reads a blob the index x knows; errNotIndexed if it does not.
func (b *blobReader) readIndexed(ctx context.Context, x *index, id ChunkID, buf []byte) ([]byte, error) {
	i := x.find(id)
	if i < 0 {
		return buf, errNotIndexed
	}
	e := &x.entries[i]
	f := &x.frames[e.frame]
	pack := x.packs[f.pack]
	frame, err := b.frame(ctx, pack, f.off, f.len)
	if err != nil {
		return buf, fmt.Errorf("read blob %s: %w", id, err)
	}
	if uint64(e.off)+uint64(e.len) > uint64(len(frame)) {
		return buf, fmt.Errorf("read blob %s: index places it past the end of its frame in pack %s (%w)", id, pack, ErrDamaged)
	}
	data := frame[e.off : e.off+e.len]
	if HashChunk(data) != id {
		return buf, fmt.Errorf("read blob %s: content in pack %s does not match its hash (%w)", id, pack, ErrDamaged)
	}
	return append(buf, data...), nil
}

// frame returns a frame's plain content, from the cache or the backend.
func (b *blobReader) frame(ctx context.Context, pack ChunkID, off, length uint32) ([]byte, error) {
	b.tick++
	for i := range b.frames {
		if f := &b.frames[i]; f.pack == pack && f.off == off {
			f.used = b.tick
			return f.plain, nil
		}
	}
	rc, err := b.repo.backend.GetRange(ctx, packName(pack), int64(off), int64(length))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil {
			return nil, err
		}
		// A range past the end of the pack is damage (a truncated or
		// replaced pack), not a failure of the storage.
		if size, serr := b.repo.backend.Stat(ctx, packName(pack)); serr == nil && size < int64(off)+int64(length) {
			return nil, fmt.Errorf("pack %s holds %d bytes, but the index places a frame at %d+%d (%w)", pack, size, off, length, ErrDamaged)
		}
		return nil, err
	}
	defer rc.Close()
	if cap(b.raw) < int(length) {
		b.raw = make([]byte, length)
	}
	raw := b.raw[:length]
	if _, err := io.ReadFull(ContextReader(ctx, rc), raw); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("pack %s ends inside a frame (%w)", pack, ErrDamaged)
		}
		return nil, err
	}
	// Reuse the least recently used slot once the cache is full.
	var reuse []byte
	total := 0
	for _, f := range b.frames {
		total += cap(f.plain)
	}
	if len(b.frames) >= b.maxFrames || total > b.maxBytes {
		old := 0
		for i := range b.frames {
			if b.frames[i].used < b.frames[old].used {
				old = i
			}
		}
		reuse = b.frames[old].plain[:0]
		b.frames = append(b.frames[:old], b.frames[old+1:]...)
		if cap(reuse) > 2*frameSize {
			reuse = nil // a large chunk's frame: let it go
		}
	}
	plain, err := b.repo.decodeAll(raw, reuse)
	if err != nil {
		return nil, fmt.Errorf("frame at %d of pack %s cannot be decompressed: %v (%w)", off, pack, err, ErrDamaged)
	}
	b.frames = append(b.frames, cachedFrame{pack: pack, off: off, plain: plain, used: b.tick})
	return plain, nil
}
