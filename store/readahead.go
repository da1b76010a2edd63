package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"sync"
)

// readAheadWorkers is how many chunks a readAhead reads, decompresses and
// verifies at once: every core, and at least two so that reading from a
// slow store overlaps with the consumer even on one core.
func readAheadWorkers() int { return max(2, runtime.GOMAXPROCS(0)) }

// readAhead streams the contents of a list of entries in order while
// workers read, decompress and verify the pieces that come next: one chunk
// of an ordinary file, or a run of up to aheadRun bytes of consecutive
// pages of a database. A walker goroutine walks the page trees ahead of
// the workers, looks each page up in the index once, and tells the
// workers' shared frame cache which frames the pieces will read, so that
// each frame is decompressed once while it is needed (see frameCache). At
// most 2×workers+1 pieces, and the places of aheadWindow blobs, are held
// at any time, whatever the entries' sizes.
type readAhead struct {
	ctx    context.Context
	cancel context.CancelFunc
	order  chan *fetch // fetches in the consumer's order, bounded
	free   chan *fetch // fetches the consumer is done with, for reuse
	wg     sync.WaitGroup
	err    error // the first error the consumer saw
}

// aheadRun is how much content of a page tree one fetch covers.
const aheadRun = 1 << 20

// aheadWindow is how many blobs a read-ahead looks up in one read of the
// index: 1 GiB of 4 KiB pages, whose places take about 5 MiB. A larger
// database costs one more read of the index per window.
const aheadWindow = 1 << 18

// Bounds of the walker's own cache of tree frames: reading a delta leaf
// reads its chain of bases (at most 17 leaves, one night each), so the
// walker uses a frame of each of those nights for many leaves in a row.
const (
	walkerFrames = 32
	walkerBytes  = 8 << 20
)

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int) int { return (n + m - 1) / m * m }

// fetch is one piece of an entry being read by a worker.
type fetch struct {
	e     *Entry
	items []piece // blobs and inline bytes, in order
	last  bool    // the entry's last piece
	size  int     // the content's length as the index records it
	buf   []byte
	err   error
	done  chan struct{}
}

// piece is one item of a fetch: inline bytes, or a blob with where the
// index places it (planned: announced to the workers' frame cache).
type piece struct {
	id      ChunkID
	inline  []byte
	isBlob  bool
	planned bool
	loc     blobLoc
}

// newReadAhead starts reading the contents of entries, in order. Read them
// with next, one entry after the other, and call close at the end.
func (r *Repository) newReadAhead(ctx context.Context, entries []*Entry) *readAhead {
	// The workers share the places of the blobs these entries use.
	return r.readAheadOn(ctx, entries, r.neededIndex(entries), aheadWindow)
}

// readAheadOn is newReadAhead finding blobs in src, window blobs at a time.
func (r *Repository) readAheadOn(ctx context.Context, entries []*Entry, src *neededIndex, window int) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	n := readAheadWorkers()
	ra := &readAhead{ctx: ctx, cancel: cancel, order: make(chan *fetch, n), free: make(chan *fetch, 2*n+1)}
	work := make(chan *fetch)
	// The workers share one frame cache.
	cache := newFrameCache(r, aheadFrames, cacheBytes, aheadIdleFrames)
	for range n {
		ra.wg.Add(1)
		go func() {
			defer ra.wg.Done()
			br := r.newReaderOf(src, cache)
			for f := range work {
				// One allocation of the piece's size, not a doubling per
				// page (bounded, should the index be wrong), rounded up so
				// that a reused buffer mostly fits the next run of pages.
				f.buf = slices.Grow(f.buf[:0], min(roundUp(f.size, 64<<10), 64<<20))
				for i, p := range f.items {
					if f.err != nil {
						// Release the frames the rest would have read.
						for _, p := range f.items[i:] {
							if p.planned {
								cache.plan(p.loc.frame, -1)
							}
						}
						break
					}
					switch {
					case !p.isBlob:
						f.buf = append(f.buf, p.inline...)
					case p.planned:
						var out []byte
						out, f.err = br.readAt(ctx, p.id, p.loc, true, f.buf)
						if errors.Is(f.err, fs.ErrNotExist) || errors.Is(f.err, ErrDamaged) {
							// Repacked by a forget since the index was
							// read, or the place held another blob whose
							// ID starts the same: read looks again.
							out, f.err = br.read(ctx, p.id, f.buf)
						}
						f.buf = out
					default:
						f.buf, f.err = br.read(ctx, p.id, f.buf)
					}
				}
				close(f.done)
			}
		}()
	}
	ra.wg.Add(1)
	go func() {
		defer ra.wg.Done()
		defer close(work)
		defer close(ra.order)
		// newFetch returns a fetch of e, with the buffers of one the
		// consumer is done with if there is one.
		newFetch := func(e *Entry) *fetch {
			select {
			case f := <-ra.free:
				*f = fetch{e: e, items: f.items[:0], buf: f.buf[:0]}
				return f
			default:
				return &fetch{e: e}
			}
		}
		send := func(f *fetch) bool {
			f.done = make(chan struct{})
			select {
			case work <- f:
			case <-ctx.Done():
				return false
			}
			select {
			case ra.order <- f:
			case <-ctx.Done():
				return false
			}
			return true
		}
		fail := func(f *fetch, err error) {
			f.err, f.last = err, true
			f.done = make(chan struct{})
			close(f.done)
			select {
			case ra.order <- f:
			case <-ctx.Done():
			}
		}
		// The content is handed out in windows of window blobs: a
		// first walk of the window lists the prefixes of their IDs, their
		// places are read from the index, then a second walk hands out
		// the pieces. So a read-ahead holds the places of one window, not
		// of the whole version.
		nodes := r.newReaderOf(&loadedPlaces{r: r, keep: treesOnly}, newFrameCache(r, walkerFrames, walkerBytes, 0))
		ahead, behind := newContentWalk(entries, nodes), newContentWalk(entries, nodes)
		var x blobIndex = &blobPlaces{}
		// blob looks a blob up once and plans its read.
		blob := func(id ChunkID) (piece, int) {
			loc, ok := x.locate(id, 0)
			if !ok {
				// A worker may have read the index again since (this
				// process stored blobs after reading it, or a forget
				// repacked them).
				if nx, err := src.index(ctx); err == nil && nx != x {
					x = nx
					loc, ok = x.locate(id, 0)
				}
			}
			if !ok {
				return piece{id: id, isBlob: true}, 4096 // a format-1 chunk, or missing: reading it tells
			}
			cache.plan(loc.frame, 1)
			return piece{id: id, isBlob: true, planned: true, loc: loc}, int(loc.len)
		}
		var f *fetch // the fetch being filled
		var last frameKey
		// hand hands out one step of the content; false stops the walk.
		hand := func(st contentStep) bool {
			if st.end {
				if f == nil {
					f = newFetch(st.e)
				}
				f.last = true
				ok := send(f)
				f = nil
				return ok
			}
			// Inline bytes (WAL frame headers) are the walk's until its
			// next step: the piece keeps a copy.
			p, n := piece{inline: bytes.Clone(st.it.inline)}, len(st.it.inline)
			if st.it.kind != itemInline {
				p, n = blob(st.it.id)
			}
			// A chunk is a fetch of its own. Runs of pages are cut only
			// where a frame ends, so that one worker reads the frames of
			// the newest night in order.
			if f != nil && (st.e.Tree == nil || f.size >= aheadRun && (!p.planned || p.loc.frame != last)) {
				if !send(f) {
					return false
				}
				f = nil
			}
			if f == nil {
				f = newFetch(st.e)
			}
			f.items = append(f.items, p)
			f.size += n
			last = p.loc.frame
			return true
		}
		var want []uint64
		for {
			// List the window: up to window blobs, and the steps around
			// them.
			want = want[:0]
			steps, aheadErr := 0, error(nil)
			for len(want) < window {
				st, err := ahead.next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					// Hand out the steps before it, then fail the entry.
					aheadErr = err
					break
				}
				steps++
				if !st.end && st.it.kind != itemInline {
					want = append(want, idPrefix(&st.it.id))
				}
			}
			if steps == 0 && aheadErr == nil {
				return
			}
			sortPrefixes(&want)
			x = &blobPlaces{} // let the previous window go first
			nx, err := src.window(ctx, want)
			if err != nil {
				fail(&fetch{e: behind.entry()}, err)
				return
			}
			x = nx
			for range steps {
				st, err := behind.next(ctx)
				if err == nil && !hand(st) {
					return
				}
				if err != nil {
					aheadErr = err // a tree node the first walk read
					break
				}
			}
			if aheadErr != nil {
				if f == nil {
					f = &fetch{e: behind.entry()}
				}
				fail(f, aheadErr)
				return
			}
		}
	}()
	return ra
}

// next returns a reader of e's content; e must be the next entry of the
// list given to newReadAhead. Like OpenEntry, the reader verifies every
// chunk and, at the end, the entry's size and CRC-32, and reports damage
// as an error wrapping ErrDamaged or fs.ErrNotExist that names the entry.
func (ra *readAhead) next(e *Entry) io.Reader {
	return &aheadReader{ra: ra, e: e}
}

// close stops the workers and waits for them.
func (ra *readAhead) close() {
	ra.cancel()
	for f := range ra.order {
		<-f.done
	}
	ra.wg.Wait()
}

type aheadReader struct {
	ra    *readAhead
	e     *Entry
	ended bool // the entry's last piece was consumed
	cur   *fetch
	off   int
	crc   uint32
	n     int64
}

func (ar *aheadReader) Read(p []byte) (int, error) {
	if ar.ra.err != nil {
		return 0, ar.ra.err
	}
	for ar.cur == nil || ar.off == len(ar.cur.buf) {
		if ar.cur != nil {
			last := ar.cur.last
			select {
			case ar.ra.free <- ar.cur:
			default:
			}
			ar.cur = nil
			if last {
				ar.ended = true
			}
		}
		if ar.ended {
			if ar.n != ar.e.Size || ar.crc != ar.e.CRC32 {
				return 0, ar.fail(fmt.Errorf("entry %q: content does not match its recorded size and CRC-32 (%w)", ar.e.Name, ErrDamaged))
			}
			return 0, io.EOF
		}
		if err := ar.ra.ctx.Err(); err != nil {
			return 0, ar.fail(err)
		}
		f, ok := <-ar.ra.order
		if !ok {
			return 0, ar.fail(fmt.Errorf("entry %q: %w", ar.e.Name, context.Canceled))
		}
		<-f.done
		if f.err != nil {
			return 0, ar.fail(fmt.Errorf("entry %q: %w", ar.e.Name, f.err))
		}
		if f.e != ar.e {
			// Entries were read out of the order given to newReadAhead.
			return 0, ar.fail(fmt.Errorf("entry %q: read out of order", ar.e.Name))
		}
		ar.cur, ar.off = f, 0
		ar.crc = crc32.Update(ar.crc, crc32.IEEETable, f.buf)
		ar.n += int64(len(f.buf))
	}
	n := copy(p, ar.cur.buf[ar.off:])
	ar.off += n
	return n, nil
}

// WriteTo hands whole chunks to w, which saves a copy when w is a file or
// a connection.
func (ar *aheadReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	buf := make([]byte, 0)
	for {
		if ar.cur != nil && ar.off < len(ar.cur.buf) {
			n, err := w.Write(ar.cur.buf[ar.off:])
			ar.off += n
			total += int64(n)
			if err != nil {
				return total, ar.fail(err)
			}
			continue
		}
		// Advance to the next chunk, or finish the entry.
		_, err := ar.Read(buf)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (ar *aheadReader) fail(err error) error {
	if ar.ra.err == nil {
		ar.ra.err = err
	}
	return ar.ra.err
}

// contentWalk steps through the content of a list of entries: each blob
// (a chunk or a page) and each piece of inline bytes in order, and the end
// of each entry.
type contentWalk struct {
	entries []*Entry
	nodes   *blobReader // reads tree nodes
	i       int         // the entry walked
	chunk   int         // its next chunk, for a chunked entry
	cur     *treeCursor // for an entry stored page by page
}

// contentStep is one step of a contentWalk: an item of entry e (a blob
// reference or inline bytes, valid until the next step), or its end.
type contentStep struct {
	e   *Entry
	it  treeItem
	end bool
}

func newContentWalk(entries []*Entry, nodes *blobReader) *contentWalk {
	return &contentWalk{entries: entries, nodes: nodes}
}

// entry returns the entry being walked, or the last one after the end.
func (w *contentWalk) entry() *Entry { return w.entries[min(w.i, len(w.entries)-1)] }

// next returns the next step, or io.EOF after the last entry's end. An
// error reading a tree node names no entry; the step returned holds it.
func (w *contentWalk) next(ctx context.Context) (contentStep, error) {
	if w.i == len(w.entries) {
		return contentStep{}, io.EOF
	}
	e := w.entries[w.i]
	if e.Tree == nil && w.chunk < len(e.Chunks) {
		w.chunk++
		return contentStep{e: e, it: treeItem{kind: itemRef, id: e.Chunks[w.chunk-1]}}, nil
	}
	if e.Tree != nil {
		if w.cur == nil {
			w.cur = &treeCursor{blobs: w.nodes, root: *e.Tree}
		}
		it, err := w.cur.nextItem(ctx)
		if err == nil {
			return contentStep{e: e, it: it}, nil
		}
		if err != io.EOF {
			return contentStep{e: e}, err
		}
	}
	w.i, w.chunk, w.cur = w.i+1, 0, nil
	return contentStep{e: e, end: true}, nil
}
