package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/piosnap/piosnap/store"
)

// body is an upload's data in a form that can be re-read for every
// attempt (size bytes of r from off), with its base64 MD5 for the
// Content-MD5 header.
type body struct {
	r         io.ReaderAt
	off, size int64
	md5       string
	cleanup   func()
}

// attempt returns a reader of the whole body for one attempt; end it once
// the attempt is over.
func (b *body) attempt() *attemptBody {
	return &attemptBody{r: io.NewSectionReader(b.r, b.off, b.size)}
}

// errAttemptOver is what an attempt's body gives once the attempt is over.
var errAttemptOver = errors.New("read of an upload's body after its attempt was over")

// attemptBody is one attempt's reader of a body. net/http may go on
// reading a request's body after the round trip has returned (see
// http.RoundTripper), and minio-go does not let the caller wait for the
// transport to close it. So each attempt reads through its own reader,
// and end makes any later read fail without touching the data: a late
// read can then neither move the next attempt's position nor read the
// caller's buffer once Put has returned (a store's goroutine writes the
// next pack into it).
type attemptBody struct {
	mu   sync.Mutex
	r    *io.SectionReader
	over bool
}

func (a *attemptBody) Read(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.over {
		return 0, errAttemptOver
	}
	return a.r.Read(p)
}

// end waits for a read in progress and makes every later one fail.
func (a *attemptBody) end() {
	a.mu.Lock()
	a.over = true
	a.mu.Unlock()
}

func (b *body) close() {
	if b.cleanup != nil {
		b.cleanup()
	}
}

// readAtSeeker is what prepare can upload without copying.
type readAtSeeker interface {
	io.ReaderAt
	io.Seeker
}

// prepare checks that r holds exactly size bytes and makes it
// re-readable: in place when r can seek and read at offsets, otherwise
// copied into memory (up to the memory limit) or into an unlinked
// temporary file.
func (b *Backend) prepare(ctx context.Context, r io.Reader, size int64) (*body, error) {
	if ra, ok := r.(readAtSeeker); ok {
		if bd, ok, err := inPlace(ctx, ra, size); ok || err != nil {
			return bd, err
		}
	}
	if size <= b.memLimit {
		return inMemory(ctx, r, size)
	}
	return b.spool(ctx, r, size)
}

// inPlace uses r's bytes from its current offset. It reports ok=false
// when r cannot seek (a pipe, say), so the caller copies it instead. On
// success r is left positioned after the object.
func inPlace(ctx context.Context, r readAtSeeker, size int64) (*body, bool, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false, nil
	}
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, false, nil
	}
	if _, err := r.Seek(start+min(size, end-start), io.SeekStart); err != nil {
		return nil, false, nil
	}
	if err := checkCount(end-start, size); err != nil {
		return nil, true, err
	}
	h := md5.New()
	if _, err := io.Copy(h, store.ContextReader(ctx, io.NewSectionReader(r, start, size))); err != nil {
		return nil, true, fmt.Errorf("read: %w", err)
	}
	return &body{r: r, off: start, size: size, md5: base64.StdEncoding.EncodeToString(h.Sum(nil))}, true, nil
}

func inMemory(ctx context.Context, r io.Reader, size int64) (*body, error) {
	buf := make([]byte, size)
	n, err := io.ReadFull(store.ContextReader(ctx, r), buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read: %w", err)
	}
	if err := checkCount(int64(n), size); err != nil {
		return nil, err
	}
	if err := checkEnd(ctx, r, size); err != nil {
		return nil, err
	}
	sum := md5.Sum(buf)
	return &body{r: bytes.NewReader(buf), size: size, md5: base64.StdEncoding.EncodeToString(sum[:])}, nil
}

func (b *Backend) spool(ctx context.Context, r io.Reader, size int64) (*body, error) {
	f, err := os.CreateTemp(b.spoolDir, "piosnap-s3-upload-*")
	if err != nil {
		return nil, fmt.Errorf("spool upload (set the spool directory to a writable place): %w", err)
	}
	// Unlink at once: the open file is all we need and nothing leaks if
	// the process dies.
	_ = os.Remove(f.Name())
	bd := &body{cleanup: func() { _ = f.Close() }}
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(store.ContextReader(ctx, r), size))
	if err == nil {
		err = checkCount(n, size)
	}
	if err == nil {
		err = checkEnd(ctx, r, size)
	}
	if err != nil {
		bd.close()
		return nil, fmt.Errorf("spool upload: %w", err)
	}
	bd.r, bd.size = f, size
	bd.md5 = base64.StdEncoding.EncodeToString(h.Sum(nil))
	return bd, nil
}

// checkCount fails unless the reader had exactly size bytes.
func checkCount(have, size int64) error {
	switch {
	case have < size:
		return fmt.Errorf("reader has %d bytes, fewer than the size %d passed to Put; pass the exact size", have, size)
	case have > size:
		return fmt.Errorf("reader has more than the size %d passed to Put; pass the exact size", size)
	}
	return nil
}

// checkEnd fails if r has bytes left after size were read.
func checkEnd(ctx context.Context, r io.Reader, size int64) error {
	var one [1]byte
	n, err := io.ReadFull(store.ContextReader(ctx, r), one[:])
	if n > 0 {
		return checkCount(size+1, size)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}
