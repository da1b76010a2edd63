package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"
)

// queueBlob is a blob pushed into a hashQueue by a test.
type queueBlob struct {
	data   []byte
	inline bool
}

// queueBlobs is an entry's worth of blobs of the sizes the writer cuts:
// runs of database pages with WAL frame headers between them, and chunks
// from a few bytes up to 8 MiB.
func queueBlobs() []queueBlob {
	rng := rand.New(rand.NewPCG(5, 11))
	var blobs []queueBlob
	add := func(n int, inline bool) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		blobs = append(blobs, queueBlob{b, inline})
	}
	for range 300 {
		add(24, true)
		add(4096, false)
	}
	for _, n := range []int{1, 700 << 10, 8 << 20, 3 << 20, 512 << 10, 8 << 20, 100} {
		add(n, false)
	}
	for range 100 {
		add(65536, false)
	}
	return blobs
}

// pushAll pushes blobs the ways the writer does (pages read into the tail,
// chunks appended to it, some copied in), checking after each that the
// batches in flight stay within their bounds.
func pushAll(t *testing.T, q *hashQueue, blobs []queueBlob) error {
	t.Helper()
	for i, b := range blobs {
		var err error
		switch {
		case i%3 == 0: // a page read into place
			var buf []byte
			if buf, err = q.reserve(len(b.data)); err == nil {
				copy(buf, b.data)
				err = q.push(buf, b.inline)
			}
		case i%3 == 1 && !b.inline: // a chunk appended to the tail, as the chunker does
			err = q.pushChunk(append(q.tail(0), b.data...))
		default: // bytes from elsewhere
			err = q.push(b.data, b.inline)
		}
		if err != nil {
			return err
		}
		if len(q.inflight) > q.maxBatches {
			t.Fatalf("after blob %d: %d batches in flight, bound %d", i, len(q.inflight), q.maxBatches)
		}
		if len(q.inflight) > 1 && q.bytes > q.maxBytes {
			t.Fatalf("after blob %d: %d bytes in %d batches in flight, bound %d", i, q.bytes, len(q.inflight), q.maxBytes)
		}
		if q.freeCap > q.maxBytes {
			t.Fatalf("after blob %d: %d bytes kept for reuse, bound %d", i, q.freeCap, q.maxBytes)
		}
	}
	return nil
}

// The queue hands every blob on in the order pushed, with its hash, while
// the batches in flight stay within their bounds in number and bytes; it
// can be used again for the next entry.
func TestHashQueueOrderAndBounds(t *testing.T) {
	blobs := queueBlobs()
	q := newHashQueue()
	for round := range 2 {
		var got []queueBlob
		q.emit = func(data []byte, id ChunkID, inline bool) error {
			if !inline && id != sha256.Sum256(data) {
				t.Fatalf("round %d, blob %d: wrong ID", round, len(got))
			}
			got = append(got, queueBlob{bytes.Clone(data), inline})
			return nil
		}
		if err := pushAll(t, q, blobs); err != nil {
			t.Fatal(err)
		}
		if err := q.flush(); err != nil {
			t.Fatal(err)
		}
		if q.busy() {
			t.Fatalf("round %d: a batch is left after flush", round)
		}
		if len(got) != len(blobs) {
			t.Fatalf("round %d: %d blobs handed on, want %d", round, len(got), len(blobs))
		}
		for i := range blobs {
			if got[i].inline != blobs[i].inline || !bytes.Equal(got[i].data, blobs[i].data) {
				t.Fatalf("round %d: blob %d differs (%d bytes, want %d)", round, i, len(got[i].data), len(blobs[i].data))
			}
		}
	}
}

// A failure to store a blob stops the entry: it is returned, nothing is
// handed on after it, and drop waits for every hashing goroutine, leaving
// the queue empty for the next entry.
func TestHashQueueEmitFails(t *testing.T) {
	blobs := queueBlobs()
	q := newHashQueue()
	full := errors.New("no space left on device")
	n := 0
	q.emit = func([]byte, ChunkID, bool) error {
		if n++; n == 200 {
			return full
		}
		if n > 200 {
			t.Fatal("a blob was handed on after the failure")
		}
		return nil
	}
	err := pushAll(t, q, blobs)
	if err == nil {
		err = q.flush()
	}
	if !errors.Is(err, full) {
		t.Fatalf("push and flush = %v, want %v", err, full)
	}
	q.drop()
	if q.busy() || q.bytes != 0 {
		t.Fatalf("after drop: busy %v, %d bytes in flight", q.busy(), q.bytes)
	}
	var got int
	q.emit = func(data []byte, id ChunkID, inline bool) error {
		if !inline && id != sha256.Sum256(data) {
			t.Fatal("wrong ID after a failed entry")
		}
		got++
		return nil
	}
	if err := pushAll(t, q, blobs[:50]); err != nil {
		t.Fatal(err)
	}
	if err := q.flush(); err != nil || got != 50 {
		t.Fatalf("the next entry: %d of 50 blobs handed on, %v", got, err)
	}
}
