package store

import "runtime"

// hashQueue hashes the blobs of an entry on every core while the caller
// cuts the next ones, and hands them back in the order they were cut, so
// that packs come out the same whatever the number of cores.
//
// The caller cuts blobs into the open batch (tail and push); a batch
// that holds hashBatchSize bytes is hashed on a goroutine of its own.
// Batches keep per-blob overhead small for database pages of a few KiB,
// and a content-defined chunk (half a MiB or more) fills one by itself.
// Batches in flight are bounded in number and in bytes (a chunk can be
// 8 MiB): once over either bound, the caller takes the oldest batch back,
// waiting for its hashes if need be, and hands its blobs on (emit) before
// it cuts more. A queue is not safe for concurrent use.
type hashQueue struct {
	// emit receives each blob of the entry in order: its bytes, and its
	// ID unless it is inline (a WAL frame header, stored in the page
	// tree). data is valid only during the call.
	emit func(data []byte, id ChunkID, inline bool) error

	open     *hashBatch   // being filled; nil until the first blob
	inflight []*hashBatch // being hashed, oldest first
	bytes    int          // capacity of the batches in flight
	free     []*hashBatch // for reuse
	freeCap  int          // capacity of the free batches' buffers

	maxBatches int // batches in flight at most
	maxBytes   int // their buffers' capacity at most, unless one batch alone is larger
}

// hashBatchSize is how many bytes a batch collects before it is hashed.
const hashBatchSize = 256 << 10

// hashInFlightBytes bounds the buffer bytes of the batches being hashed
// (one larger batch, a chunk of up to ChunkMaxSize, may exceed it alone).
const hashInFlightBytes = 8 << 20

// hashBatch is a run of consecutive blobs, hashed together.
type hashBatch struct {
	data  []byte
	items []hashItem
	ids   []ChunkID     // per item, once done is closed
	done  chan struct{} // closed when hashed
}

// hashItem is one blob of a batch: data[off:off+n].
type hashItem struct {
	off, n int
	inline bool
}

func newHashQueue() *hashQueue {
	return &hashQueue{maxBatches: max(2, 2*runtime.GOMAXPROCS(0)), maxBytes: hashInFlightBytes}
}

// tail returns n bytes at the end of the open batch for the caller to fill
// and then push (a shorter prefix of them is fine), or nil when the open
// batch has no room for them (see reserve). With n zero it returns the
// empty tail with whatever capacity is left, for a caller that appends
// (see pushChunk).
func (q *hashQueue) tail(n int) []byte {
	b := q.openBatch()
	if len(b.data)+n > cap(b.data) {
		if len(b.data) > 0 {
			return nil // the caller dispatches first; see reserve
		}
		b.data = make([]byte, 0, max(n, hashBatchSize))
	}
	return b.data[len(b.data) : len(b.data)+n]
}

// reserve makes room for n more bytes in the open batch, handing on full
// batches first, and returns them as tail does.
func (q *hashQueue) reserve(n int) ([]byte, error) {
	if buf := q.tail(n); buf != nil {
		return buf, nil
	}
	if err := q.dispatch(); err != nil {
		return nil, err
	}
	return q.tail(n), nil
}

// push adds data as the next blob: in place when it is what tail returned
// (or a prefix of it), else copied in. Empty data is ignored. A batch that
// reaches hashBatchSize is handed to a hashing goroutine.
func (q *hashQueue) push(data []byte, inline bool) error { return q.add(data, inline, false) }

// pushChunk adds data, bytes appended to tail(0), as the next blob. Data
// that outgrew the tail is kept as it is, not copied, when it starts a
// batch: the queue then owns it.
func (q *hashQueue) pushChunk(data []byte) error { return q.add(data, false, true) }

func (q *hashQueue) add(data []byte, inline, own bool) error {
	if len(data) == 0 {
		return nil
	}
	b := q.openBatch()
	off := len(b.data)
	switch {
	case off < cap(b.data) && &b.data[:off+1][off] == &data[0] && len(data) <= cap(b.data)-off:
		b.data = b.data[:off+len(data)] // filled in place
	case off == 0 && own:
		b.data = data
	default:
		b.data = append(b.data, data...)
	}
	b.items = append(b.items, hashItem{off: off, n: len(data), inline: inline})
	if len(b.data) >= hashBatchSize {
		return q.dispatch()
	}
	return nil
}

func (q *hashQueue) openBatch() *hashBatch {
	if q.open == nil {
		if n := len(q.free); n > 0 {
			q.open = q.free[n-1]
			q.free = q.free[:n-1]
			q.freeCap -= cap(q.open.data)
		} else {
			q.open = &hashBatch{}
		}
	}
	return q.open
}

// dispatch starts hashing the open batch, then hands on the oldest
// batches until those in flight are within bounds again.
func (q *hashQueue) dispatch() error {
	b := q.open
	if b == nil || len(b.items) == 0 {
		return nil
	}
	q.open = nil
	b.ids = b.ids[:0]
	for range b.items {
		b.ids = append(b.ids, ChunkID{})
	}
	b.done = make(chan struct{})
	q.inflight = append(q.inflight, b)
	q.bytes += cap(b.data)
	go b.hash()
	for len(q.inflight) > 1 && (len(q.inflight) > q.maxBatches || q.bytes > q.maxBytes) {
		if err := q.next(); err != nil {
			return err
		}
	}
	return nil
}

func (b *hashBatch) hash() {
	for i, it := range b.items {
		if !it.inline {
			b.ids[i] = HashChunk(b.data[it.off : it.off+it.n])
		}
	}
	close(b.done)
}

// next waits for the oldest batch in flight and hands its blobs on.
func (q *hashQueue) next() error {
	b := q.inflight[0]
	<-b.done
	q.inflight[0] = nil
	q.inflight = q.inflight[1:]
	q.bytes -= cap(b.data)
	defer q.recycle(b)
	for i, it := range b.items {
		if err := q.emit(b.data[it.off:it.off+it.n], b.ids[i], it.inline); err != nil {
			return err
		}
	}
	return nil
}

// recycle keeps b for reuse, and its buffer while the free buffers stay
// within the in-flight bound.
func (q *hashQueue) recycle(b *hashBatch) {
	b.items, b.done = b.items[:0], nil
	if q.freeCap+cap(b.data) > q.maxBytes {
		b.data = nil
	}
	b.data = b.data[:0]
	q.freeCap += cap(b.data)
	q.free = append(q.free, b)
}

// flush hands on every blob pushed, in order. A single small batch, say a
// short file's, is hashed right here rather than on a goroutine.
func (q *hashQueue) flush() error {
	if b := q.open; b != nil && len(b.items) > 0 && len(q.inflight) == 0 && len(b.data) < hashBatchSize {
		q.open = nil
		b.ids = b.ids[:0]
		for range b.items {
			b.ids = append(b.ids, ChunkID{})
		}
		b.done = make(chan struct{})
		b.hash()
		q.inflight = append(q.inflight, b)
		q.bytes += cap(b.data)
	} else if err := q.dispatch(); err != nil {
		return err
	}
	for len(q.inflight) > 0 {
		if err := q.next(); err != nil {
			return err
		}
	}
	return nil
}

// drop discards whatever was pushed and not handed on, waiting for the
// hashing goroutines, so that none is left running: for an entry that
// failed. emit is not called.
func (q *hashQueue) drop() {
	for _, b := range q.inflight {
		<-b.done
		q.bytes -= cap(b.data)
		q.recycle(b)
	}
	clear(q.inflight)
	q.inflight = q.inflight[:0]
	if b := q.open; b != nil {
		q.open = nil
		q.recycle(b)
	}
}

// busy reports whether a batch is pushed and not handed on.
func (q *hashQueue) busy() bool {
	return len(q.inflight) > 0 || (q.open != nil && len(q.open.items) > 0)
}
