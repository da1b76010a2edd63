package ingest

import (
	"io"
	"sync"
)

// Sizes of the pipe between inflating an entry and storing it.
const (
	pipeBlock = 256 << 10 // bytes per block
	pipeDepth = 4         // blocks read ahead of the consumer
)

// pipes hands out pipes that share one set of buffers. The zero value is
// ready to use; it serves one pipe at a time.
type pipes struct {
	free chan []byte
}

// pipe reads an entry's content on its own goroutine, up to pipeDepth
// blocks ahead of the consumer, so that inflating and checking the archive
// runs on one core while chunking, hashing and compressing run on another.
// At most pipeDepth+2 blocks exist at a time.
type pipe struct {
	blocks chan pipeBlk
	free   chan []byte
	stop   chan struct{}
	done   sync.WaitGroup

	cur []byte
	off int
	err error
}

type pipeBlk struct {
	data []byte
	err  error
}

// open starts reading r. The consumer reads the pipe, then calls close
// before r may be used again.
func (ps *pipes) open(r io.Reader) *pipe {
	if ps.free == nil {
		ps.free = make(chan []byte, pipeDepth+2)
	}
	p := &pipe{blocks: make(chan pipeBlk, pipeDepth), free: ps.free, stop: make(chan struct{})}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		for {
			var buf []byte
			select {
			case buf = <-p.free:
			default:
				buf = make([]byte, pipeBlock)
			}
			n, err := io.ReadFull(r, buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			select {
			case p.blocks <- pipeBlk{buf[:n], err}:
			case <-p.stop:
				p.recycle(buf)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *pipe) recycle(buf []byte) {
	select {
	case p.free <- buf[:cap(buf)]:
	default:
	}
}

func (p *pipe) Read(b []byte) (int, error) {
	for p.off == len(p.cur) {
		if p.err != nil {
			return 0, p.err
		}
		if p.cur != nil {
			p.recycle(p.cur)
			p.cur = nil
		}
		blk := <-p.blocks
		p.cur, p.off, p.err = blk.data, 0, blk.err
	}
	n := copy(b, p.cur[p.off:])
	p.off += n
	return n, nil
}

// close stops the reading goroutine and waits for it, so that the source
// reader is free again. Whatever the consumer did not read stays unread in
// the source, except for the blocks already taken from it.
func (p *pipe) close() {
	close(p.stop)
	p.done.Wait()
	if p.cur != nil {
		p.recycle(p.cur)
	}
	for {
		select {
		case blk := <-p.blocks:
			p.recycle(blk.data)
		default:
			return
		}
	}
}
