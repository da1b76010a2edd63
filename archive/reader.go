package archive

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
)

// ZIP record signatures.
const (
	sigLocal       = 0x04034b50
	sigCentral     = 0x02014b50
	sigDescriptor  = 0x08074b50
	sigEnd         = 0x06054b50
	sigEnd64       = 0x06064b50
	sigEnd64Loc    = 0x07064b50
	sigDigitalSig  = 0x05054b50
	sigArchiveData = 0x08064b50
)

// bufSize is the size of the read buffer in front of the input.
const bufSize = 64 << 10

// countingReader counts the bytes read from the input.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// state is where a Reader is in the archive.
type state int

const (
	stateEntries state = iota // reading local entries
	stateCentral              // Next returned io.EOF; Finish may be called
	stateDone                 // Finish has returned
)

// Reader reads a ZIP archive front to back from an io.Reader. Call
// [Reader.Next] to advance to each entry and [Reader.Read] to read its
// content; after Next returns io.EOF, call [Reader.Finish] to read and check
// the central directory. A Reader is not safe for concurrent use. After any
// error other than io.EOF, every later call returns the same error.
type Reader struct {
	src   countingReader
	br    *bufio.Reader
	lim   Limits
	fr    io.ReadCloser // reused DEFLATE decompressor
	state state
	err   error

	cur   *entry  // the entry being read, nil before the first Next
	local []entry // every local entry read, for Finish
	total uint64  // uncompressed bytes read over all entries
}

// entry is what the Reader knows about one local entry.
type entry struct {
	hdr        *Header
	offset     int64 // of the local header
	dataStart  int64 // of the stored data
	flags      uint16
	zip64      bool // the local header has a ZIP64 extra field
	descriptor bool // flag bit 3: CRC and sizes follow the data
	data       io.Reader
	crc        uint32
	n          uint64 // uncompressed bytes produced so far
	done       bool
}

// NewReader returns a Reader that reads an archive from r. Zero fields of lim
// take their defaults. The Reader holds a 64 KiB input buffer and one DEFLATE
// decompressor whatever the entry sizes; beyond that it keeps about 200 bytes
// per entry (for [Reader.Finish]), bounded by lim.MaxEntries. It may read
// ahead of the archive's end by up to one buffer, but [Reader.Finish]
// requires the input to end right after the archive.
func NewReader(r io.Reader, lim Limits) *Reader {
	z := &Reader{lim: lim.withDefaults()}
	z.src.r = r
	z.br = bufio.NewReaderSize(&z.src, bufSize)
	return z
}

// pos returns the offset in the input of the next byte to be read.
func (z *Reader) pos() int64 {
	return z.src.n - int64(z.br.Buffered())
}

// fail records err as the Reader's sticky error and returns it.
func (z *Reader) fail(err error) error {
	z.err = err
	return err
}

// Next advances to the next entry, skipping (but still fully verifying) any
// unread rest of the previous one, and returns its header. It returns io.EOF
// when the central directory starts. For an entry with a data descriptor
// (flag bit 3) the header's CRC32, Size and CompressedSize are 0 until the
// entry has been read to its end; the Reader then fills them in.
func (z *Reader) Next() (*Header, error) {
	if z.err != nil {
		return nil, z.err
	}
	if z.state != stateEntries {
		return nil, io.EOF
	}
	if z.cur != nil && !z.cur.done {
		if _, err := io.Copy(io.Discard, readerOnly{z}); err != nil {
			return nil, err
		}
	}
	sig, err := z.peekSignature()
	if err != nil {
		return nil, z.fail(err)
	}
	switch sig {
	case sigLocal:
	case sigCentral, sigEnd, sigEnd64, sigDigitalSig, sigArchiveData:
		z.state = stateCentral
		return nil, io.EOF
	default:
		return nil, z.fail(z.badSignature(sig))
	}
	if len(z.local) >= z.lim.MaxEntries {
		return nil, z.fail(&archiveError{kind: ErrLimit,
			msg: fmt.Sprintf("archive has more than %d entries (limit MaxEntries)", z.lim.MaxEntries)})
	}
	e, err := z.readLocalHeader()
	if err != nil {
		return nil, z.fail(err)
	}
	z.local = append(z.local, *e)
	z.cur = &z.local[len(z.local)-1]
	return z.cur.hdr, nil
}

// readerOnly hides every method but Read, so io.Copy does not use WriteTo.
type readerOnly struct{ io.Reader }

// peekSignature returns the next four bytes as a little-endian signature.
func (z *Reader) peekSignature() (uint32, error) {
	b, err := z.br.Peek(4)
	if len(b) == 4 {
		return le32(b), nil
	}
	if err == io.EOF && len(b) == 0 && z.pos() == 0 {
		return 0, &archiveError{kind: ErrFormat,
			msg: "not a ZIP archive: the input is empty"}
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return 0, z.truncated("before the central directory", err)
}

// truncated returns the error for input that ends (or fails) too early.
// where says where, e.g. `in entry "x"`. A read error other than EOF is
// returned wrapped, not as a format error.
func (z *Reader) truncated(where string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != io.ErrUnexpectedEOF {
		return fmt.Errorf("read archive %s: %w", where, err)
	}
	return &archiveError{kind: ErrFormat, msg: "archive truncated " + where, cause: err}
}

// badSignature explains a record signature that is not where one is expected.
func (z *Reader) badSignature(sig uint32) error {
	if z.pos() == 0 {
		return notZip(z.br)
	}
	after := "at the start of the archive"
	if z.cur != nil {
		after = fmt.Sprintf("after entry %q", z.cur.hdr.Name)
	}
	return &archiveError{kind: ErrFormat,
		msg: fmt.Sprintf("unexpected record signature 0x%08x at offset %d %s", sig, z.pos(), after)}
}

// Read reads the current entry's uncompressed content. At the end of the
// entry it verifies the CRC-32 and the size, and instead of io.EOF returns an
// error wrapping [ErrChecksum] or [ErrFormat] if they do not match. It enforces
// the size limits on the bytes it produces, whatever the headers claim.
func (z *Reader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	e := z.cur
	if e == nil || e.done || z.state != stateEntries {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Never hand out more than one byte past any limit, so that a bomb is
	// caught before its content is.
	room := z.room(e)
	if uint64(len(p)) > room {
		p = p[:room]
	}
	n, err := e.data.Read(p)
	e.n += uint64(n)
	z.total += uint64(n)
	e.crc = crc32.Update(e.crc, crc32.IEEETable, p[:n])
	if lerr := z.checkLimits(e); lerr != nil {
		return 0, z.fail(lerr)
	}
	switch {
	case err == io.EOF:
		if ferr := z.finishEntry(e); ferr != nil {
			return n, z.fail(ferr)
		}
		return n, io.EOF
	case err != nil:
		return n, z.fail(z.dataError(e, err))
	}
	return n, nil
}

// room returns how many more bytes of e may be produced before a limit or the
// declared size is exceeded by one byte.
func (z *Reader) room(e *entry) uint64 {
	room := uint64(z.lim.MaxEntrySize) - e.n
	if t := uint64(z.lim.MaxTotalSize) - z.total; t < room {
		room = t
	}
	if !e.descriptor && e.hdr.Size-e.n < room {
		room = e.hdr.Size - e.n
	}
	return room + 1
}

// checkLimits reports whether e has produced more than allowed.
func (z *Reader) checkLimits(e *entry) error {
	switch {
	case !e.descriptor && e.n > e.hdr.Size:
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"entry %q decompresses to more than the %d bytes its header declares", e.hdr.Name, e.hdr.Size)}
	case e.n > uint64(z.lim.MaxEntrySize):
		return &archiveError{kind: ErrLimit, msg: fmt.Sprintf(
			"entry %q is larger than %d bytes (limit MaxEntrySize)", e.hdr.Name, z.lim.MaxEntrySize)}
	case z.total > uint64(z.lim.MaxTotalSize):
		return &archiveError{kind: ErrLimit, msg: fmt.Sprintf(
			"archive content is larger than %d bytes in total at entry %q (limit MaxTotalSize)",
			z.lim.MaxTotalSize, e.hdr.Name)}
	}
	return nil
}

// dataError wraps an error met while reading e's data.
func (z *Reader) dataError(e *entry, err error) error {
	var corrupt flate.CorruptInputError
	if errors.As(err, &corrupt) {
		return &archiveError{kind: ErrFormat,
			msg: fmt.Sprintf("corrupt DEFLATE data in entry %q", e.hdr.Name), cause: err}
	}
	return z.truncated(fmt.Sprintf("in entry %q", e.hdr.Name), err)
}

// finishEntry checks e once its data is exhausted: the compressed length, the
// data descriptor if any, the CRC-32 and the size.
func (z *Reader) finishEntry(e *entry) error {
	h := e.hdr
	used := uint64(z.pos() - e.dataStart)
	if e.descriptor {
		if err := z.readDescriptor(e, used); err != nil {
			return err
		}
	} else if used != h.CompressedSize {
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"entry %q: the DEFLATE data ends after %d bytes but the header declares %d compressed bytes",
			h.Name, used, h.CompressedSize)}
	}
	if h.IsDir() && e.n != 0 {
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"directory entry %q has %d bytes of content", h.Name, e.n)}
	}
	if e.n != h.Size {
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"entry %q has %d bytes but its header declares %d", h.Name, e.n, h.Size)}
	}
	if e.crc != h.CRC32 {
		return &archiveError{kind: ErrChecksum, msg: fmt.Sprintf(
			"entry %q is corrupt: its content has CRC-32 %08x but the archive records %08x",
			h.Name, e.crc, h.CRC32)}
	}
	e.done, e.data = true, nil
	return nil
}

// storedReader reads exactly n bytes of STORED data.
type storedReader struct {
	r io.Reader
	n uint64
}

func (s *storedReader) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > s.n {
		p = p[:s.n]
	}
	n, err := s.r.Read(p)
	s.n -= uint64(n)
	if err == io.EOF && s.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF || (err == nil && s.n == 0) {
		return n, nil
	}
	return n, err
}
