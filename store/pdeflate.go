package store

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
)

// deflateSegment is how much plain content one worker compresses at once.
const deflateSegment = 1 << 20

// parallelDeflater is a DEFLATE compressor that cuts its input into
// segments and compresses them on every core. Each segment is compressed
// on its own and ends with a sync flush, so the segments, written in order
// and followed by an empty final block, form one valid DEFLATE stream (each
// segment loses only the back-references into the one before). At most
// 2×workers segments are in flight.
type parallelDeflater struct {
	out   io.Writer
	level int
	work  chan *segment
	order chan *segment
	free  chan *segment
	buf   *segment // filling
	wg    sync.WaitGroup
	done  chan struct{} // the writer goroutine has finished
	err   error         // the first write error, set by the writer goroutine
	// failed is set once err is: Write then stops taking input.
	failed atomic.Bool
	// closed is set by Close or abort; aborted tells the goroutines that
	// nothing more is to be compressed or written.
	closed  bool
	aborted atomic.Bool
}

type segment struct {
	plain []byte
	z     bytes.Buffer
	ready chan struct{}
}

// newParallelDeflater returns a compressor writing to out at level (a
// valid flate level); close it to finish the stream. Its goroutines start
// with the second segment: a small entry is compressed on the caller's.
func newParallelDeflater(out io.Writer, level int) *parallelDeflater {
	return &parallelDeflater{out: out, level: level}
}

// start starts the workers and the goroutine that writes their output in
// order.
func (d *parallelDeflater) start() {
	n := readAheadWorkers()
	d.work, d.order = make(chan *segment), make(chan *segment, n)
	d.free, d.done = make(chan *segment, 2*n+2), make(chan struct{})
	for range n {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			fw, _ := flate.NewWriter(nil, d.level)
			for s := range d.work {
				if !d.aborted.Load() {
					compressSegment(fw, s)
				}
				close(s.ready)
			}
		}()
	}
	go func() {
		defer close(d.done)
		for s := range d.order {
			<-s.ready
			if d.err == nil && !d.aborted.Load() {
				if _, d.err = d.out.Write(s.z.Bytes()); d.err != nil {
					d.failed.Store(true)
				}
			}
			select {
			case d.free <- s:
			default:
			}
		}
	}()
}

// compressSegment compresses s.plain into s.z, ending with a sync flush.
func compressSegment(fw *flate.Writer, s *segment) {
	s.z.Reset()
	fw.Reset(&s.z)
	fw.Write(s.plain) // writes to a bytes.Buffer cannot fail
	fw.Flush()
}

// Write compresses p. Once a write to out has failed, it returns that
// error instead of compressing the rest of the entry for nothing.
func (d *parallelDeflater) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if d.failed.Load() {
			return n - len(p), d.err
		}
		if d.buf == nil {
			select {
			case d.buf = <-d.free:
				d.buf.plain = d.buf.plain[:0]
			default:
				d.buf = &segment{plain: make([]byte, 0, deflateSegment)}
			}
		}
		k := min(len(p), deflateSegment-len(d.buf.plain))
		d.buf.plain = append(d.buf.plain, p[:k]...)
		p = p[k:]
		if len(d.buf.plain) == deflateSegment {
			d.submit()
		}
	}
	return n, nil
}

// submit hands the filling segment to the workers.
func (d *parallelDeflater) submit() {
	if d.work == nil {
		d.start()
	}
	s := d.buf
	d.buf = nil
	s.ready = make(chan struct{})
	d.order <- s // blocks while the workers are 2×workers segments ahead
	d.work <- s
}

// Close compresses what is left, waits for every segment to be written and
// ends the stream with an empty final block. It returns the first error
// writing to out.
func (d *parallelDeflater) Close() error {
	d.closed = true
	last := d.buf
	if d.work != nil {
		if last != nil && len(last.plain) > 0 {
			d.submit()
		}
		close(d.work)
		close(d.order)
		d.wg.Wait()
		<-d.done
	} else if last != nil && len(last.plain) > 0 {
		fw, _ := flate.NewWriter(nil, d.level)
		compressSegment(fw, last)
		_, d.err = d.out.Write(last.z.Bytes())
	}
	if d.err != nil {
		return d.err
	}
	// An empty, final block with fixed Huffman codes: BFINAL=1, BTYPE=01,
	// then the end-of-block code (seven zero bits).
	_, err := d.out.Write([]byte{0x03, 0x00})
	return err
}

// abort gives the stream up: the segments in flight are dropped, and once
// it returns no goroutine of d runs or writes to out, which the caller may
// close or hand back (a connection aborted on an error). It does nothing
// after Close.
func (d *parallelDeflater) abort() {
	if d.closed {
		return
	}
	d.closed = true
	if d.work == nil {
		return
	}
	d.aborted.Store(true)
	close(d.work)
	close(d.order)
	d.wg.Wait()
	<-d.done
}
