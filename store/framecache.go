package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

// frameCache keeps decompressed frames of one repository for the readers
// that share it, so that a frame is read and decompressed once however many
// pieces need it, and whichever reader needs it. A database restored after
// many nights reads its pages from the frames of every night in turn: the
// frames of night k hold its changed pages in page order, so each of them
// serves a stretch of the file, interleaved with the others.
//
// Readers that know ahead which frames they will need say so with plan; a
// frame no planned read needs is idle, and only a few idle frames are kept.
// So a frame is decompressed once as long as the frames in use at one point
// of the content fit in the bounds, while frames read once (the first
// night's) do not fill the cache. A frame a reader is copying from is never
// evicted or reused.
type frameCache struct {
	repo       *Repository
	maxFrames  int // bounds on the frames kept
	maxBytes   int
	idleFrames int // idle frames kept at most; 0 keeps idle frames to the bounds

	mu     sync.Mutex
	frames map[frameKey]*frame
	plans  map[frameKey]int // planned reads not done yet, per frame
	bytes  int              // capacity of the frames' plain buffers
	tick   uint64
	spares [][]byte // plain buffers of evicted frames, for reuse
}

// frame is one decompressed frame in a frameCache.
type frame struct {
	key   frameKey
	plain []byte
	err   error
	ready chan struct{} // closed once plain or err is set
	refs  int           // readers using plain
	used  uint64
	// loaded is set, under the cache's lock, once plain holds the frame.
	loaded bool
}

func newFrameCache(r *Repository, maxFrames, maxBytes, idleFrames int) *frameCache {
	return &frameCache{repo: r, maxFrames: maxFrames, maxBytes: maxBytes, idleFrames: idleFrames,
		frames: make(map[frameKey]*frame), plans: make(map[frameKey]int)}
}

// plan records that n more reads of frame key will come (or, with n
// negative, that planned reads will not).
func (c *frameCache) plan(key frameKey, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plans[key]+n <= 0 {
		delete(c.plans, key)
		return
	}
	c.plans[key] += n
}

// get returns the frame at key, of length compressed bytes, reading and
// decompressing it unless it is cached or another reader is doing so. raw is
// the caller's scratch buffer for the compressed bytes. Release the frame
// with put.
func (c *frameCache) get(ctx context.Context, key frameKey, length uint32, raw *[]byte) (*frame, error) {
	c.mu.Lock()
	c.tick++
	if f, ok := c.frames[key]; ok {
		f.refs++
		f.used = c.tick
		c.mu.Unlock()
		select {
		case <-f.ready:
		case <-ctx.Done():
			c.put(f, false)
			return nil, ctx.Err()
		}
		if f.err != nil {
			c.put(f, false)
			return nil, f.err
		}
		return f, nil
	}
	f := &frame{key: key, ready: make(chan struct{}), refs: 1, used: c.tick}
	c.frames[key] = f
	c.evictLocked()
	var reuse []byte
	if n := len(c.spares); n > 0 {
		reuse, c.spares = c.spares[n-1], c.spares[:n-1]
	}
	c.mu.Unlock()

	plain, err := c.load(ctx, key, length, raw, reuse)
	c.mu.Lock()
	f.plain, f.err = plain, err
	if err != nil {
		delete(c.frames, key) // the next reader tries again
	} else {
		f.loaded = true
		c.bytes += cap(plain)
	}
	c.mu.Unlock()
	close(f.ready)
	if f.err != nil {
		c.put(f, false)
		return nil, f.err
	}
	return f, nil
}

// put releases a frame got from get; planned says the read was one
// announced with plan.
func (c *frameCache) put(f *frame, planned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f.refs--
	if planned {
		if c.plans[f.key] <= 1 {
			delete(c.plans, f.key)
		} else {
			c.plans[f.key]--
		}
	}
	if f.refs == 0 && f.loaded && cap(f.plain) > 2*frameSize && c.frames[f.key] == f {
		// A large chunk's frame serves that one chunk: let it go.
		c.removeLocked(f)
	}
}

// evictLocked removes frames no reader uses until the cache is within its
// bounds and holds at most idleFrames idle frames, least recently used
// first, idle frames before frames planned reads still need.
func (c *frameCache) evictLocked() {
	for {
		idle, over := 0, len(c.frames) > c.maxFrames || c.bytes > c.maxBytes
		var oldIdle, oldBusy *frame
		for _, f := range c.frames {
			if f.refs > 0 || !f.loaded {
				continue // in use, or being loaded
			}
			if c.plans[f.key] == 0 {
				idle++
				if oldIdle == nil || f.used < oldIdle.used {
					oldIdle = f
				}
			} else if oldBusy == nil || f.used < oldBusy.used {
				oldBusy = f
			}
		}
		switch {
		case oldIdle != nil && (over || c.idleFrames > 0 && idle > c.idleFrames):
			c.removeLocked(oldIdle)
		case over && oldBusy != nil:
			c.removeLocked(oldBusy)
		default:
			return
		}
	}
}

func (c *frameCache) removeLocked(f *frame) {
	delete(c.frames, f.key)
	c.bytes -= cap(f.plain)
	if len(c.spares) < cacheSpares && cap(f.plain) <= 2*frameSize {
		c.spares = append(c.spares, f.plain[:0])
	}
}

// load reads and decompresses one frame.
func (c *frameCache) load(ctx context.Context, key frameKey, length uint32, raw *[]byte, reuse []byte) ([]byte, error) {
	r := c.repo
	rc, err := r.backend.GetRange(ctx, packName(key.pack), int64(key.off), int64(length))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil {
			return nil, err
		}
		// A range past the end of the pack is damage (a truncated or
		// replaced pack), not a failure of the storage.
		if size, serr := r.backend.Stat(ctx, packName(key.pack)); serr == nil && size < int64(key.off)+int64(length) {
			return nil, fmt.Errorf("pack %s holds %d bytes, but the index places a frame at %d+%d (%w)", key.pack, size, key.off, length, ErrDamaged)
		}
		return nil, err
	}
	defer rc.Close()
	if cap(*raw) < int(length) {
		*raw = make([]byte, length)
	}
	z := (*raw)[:length]
	if _, err := io.ReadFull(ContextReader(ctx, rc), z); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("pack %s ends inside a frame (%w)", key.pack, ErrDamaged)
		}
		return nil, err
	}
	if reuse == nil {
		// Room for any frame of 4 KiB pages or of tree nodes (they end
		// past frameSize by less than a page or a node), so that the
		// buffer serves whichever such frame comes next once it is let go.
		reuse = make([]byte, 0, frameSize+16<<10)
	}
	plain, err := r.decodeAll(z, reuse)
	if err != nil {
		return nil, fmt.Errorf("frame at %d of pack %s cannot be decompressed: %v (%w)", key.off, key.pack, err, ErrDamaged)
	}
	return plain, nil
}

// clear forgets every frame no reader uses, e.g. after the index was read
// again.
func (c *frameCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.frames {
		if f.refs == 0 && f.loaded {
			c.removeLocked(f)
		}
	}
}
