package store

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
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
// pages of a database, so that each worker decompresses mostly frames no
// other worker needs. At most 2×workers+1 pieces are held at any time,
// whatever the entries' sizes.
type readAhead struct {
	ctx    context.Context
	cancel context.CancelFunc
	order  chan *fetch // fetches in the consumer's order, bounded
	free   chan []byte // buffers for reuse
	wg     sync.WaitGroup
	err    error // the first error the consumer saw
}

// aheadRun is how much content of a page tree one fetch covers.
const aheadRun = 1 << 20

// fetch is one piece of an entry being read by a worker.
type fetch struct {
	e     *Entry
	items []treeItem // blob references and inline bytes, in order
	last  bool       // the entry's last piece
	size  int        // the content's length as the index records it
	buf   []byte
	err   error
	done  chan struct{}
}

// newReadAhead starts reading the contents of entries, in order. Read them
// with next, one entry after the other, and call close at the end.
func (r *Repository) newReadAhead(ctx context.Context, entries []*Entry) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	n := readAheadWorkers()
	ra := &readAhead{ctx: ctx, cancel: cancel, order: make(chan *fetch, n), free: make(chan []byte, 2*n+1)}
	work := make(chan *fetch)
	// The workers and the tree walker share one frame-cache budget, and
	// the places of the blobs these entries use.
	readers := n + 1
	src := r.neededIndex(entries)
	for range n {
		ra.wg.Add(1)
		go func() {
			defer ra.wg.Done()
			br := r.newBlobReaderOn(src, readers)
			for f := range work {
				// One allocation of the piece's size, not a doubling per
				// page (bounded, should the index be wrong).
				f.buf = slices.Grow(f.buf[:0], min(f.size, 64<<20))
				for _, it := range f.items {
					if f.err != nil {
						break
					}
					if it.kind == itemInline {
						f.buf = append(f.buf, it.inline...)
						continue
					}
					f.buf, f.err = br.read(ctx, it.id, f.buf)
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
		send := func(f *fetch) bool {
			f.done = make(chan struct{})
			select {
			case f.buf = <-ra.free:
				f.buf = f.buf[:0]
			default:
			}
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
		nodes := r.newBlobReaderOn(src, readers)
		for _, e := range entries {
			if e.Tree == nil {
				for i, id := range e.Chunks {
					n, _ := nodes.place(ctx, id)
					if !send(&fetch{e: e, items: []treeItem{{kind: itemRef, id: id}}, size: n, last: i == len(e.Chunks)-1}) {
						return
					}
				}
				if len(e.Chunks) == 0 && !send(&fetch{e: e, last: true}) {
					return
				}
				continue
			}
			// Walk the tree here (its nodes are in frames of their own)
			// and hand out runs of pages.
			cur := &treeCursor{blobs: nodes, root: *e.Tree}
			f := &fetch{e: e}
			size := 0
			var last frameKey
			for {
				it, err := cur.nextItem(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					f.err = err
					break
				}
				n, where := len(it.inline), frameKey{}
				if it.kind != itemInline {
					n, where = nodes.place(ctx, it.id)
				}
				// Cut a run only where a frame ends, so that one worker
				// decompresses each frame of the newest night.
				if size >= aheadRun && where != last {
					if !send(f) {
						return
					}
					f, size = &fetch{e: e}, 0
				}
				f.items = append(f.items, it)
				size += n
				f.size = size
				last = where
			}
			f.last = true
			if f.err != nil {
				f.done = make(chan struct{})
				close(f.done)
				select {
				case ra.order <- f:
				case <-ctx.Done():
				}
				return
			}
			if !send(f) {
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
			case ar.ra.free <- ar.cur.buf:
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
