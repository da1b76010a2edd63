package simulator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/klauspost/compress/flate"
)

// Compression methods used by Python's zipfile.
const (
	methodStored   = 0
	methodDeflated = 8
)

// Limits and versions copied from the ZIP format as CPython's zipfile uses them.
const (
	zip64Limit     = 1<<31 - 1
	zipFileCount   = 1<<16 - 1
	defaultVersion = 20
	zip64Version   = 45
	unixSystem     = 3
	utf8Flag       = 0x800
	dosDirFlag     = 0x10
)

// pyEntry describes one member as Python's zipfile would create it.
type pyEntry struct {
	name    string
	method  uint16
	extAttr uint32
	mtime   time.Time // written as local MS-DOS time, like time.localtime
	size    int64     // expected uncompressed size, used for the ZIP64 decision
}

type pyCentral struct {
	pyEntry
	crc        uint32
	compSize   uint64
	fileSize   uint64
	offset     uint64
	flags      uint16
	dosTime    uint16
	dosDate    uint16
	zip64Local bool
}

// pyZip writes archives laid out like CPython's zipfile does on a seekable
// file: no data descriptors (the local header is rewritten after the data),
// Unix "create system", version 2.0 (4.5 with ZIP64), no extra fields unless
// ZIP64 is needed, directory entries with the MS-DOS directory bit.
type pyZip struct {
	w       io.WriteSeeker
	off     int64
	entries []pyCentral
	fw      *flate.Writer // reused across members
}

func newPyZip(w io.WriteSeeker) *pyZip { return &pyZip{w: w} }

// add writes one member whose content comes from r. Stored members must be
// empty (Python only stores directory entries here).
func (z *pyZip) add(e pyEntry, r io.Reader) error {
	c := pyCentral{pyEntry: e, offset: uint64(z.off)}
	c.dosDate, c.dosTime = dosDateTime(e.mtime)
	if !isASCII(e.name) {
		c.flags |= utf8Flag
	}
	c.zip64Local = float64(e.size)*1.05 > zip64Limit
	if err := z.writeLocal(&c); err != nil {
		return err
	}
	if e.method == methodDeflated && r != nil {
		if err := z.deflate(&c, r); err != nil {
			return fmt.Errorf("compress %s: %w", e.name, err)
		}
	} else if e.method == methodDeflated {
		if err := z.deflate(&c, eofReader{}); err != nil {
			return fmt.Errorf("compress %s: %w", e.name, err)
		}
	}
	if !c.zip64Local && (c.fileSize > zip64Limit || c.compSize > zip64Limit) {
		return fmt.Errorf("zip member %s grew past 2 GiB after it was sized at %d bytes; the file changed while it was being archived", e.name, e.size)
	}
	end := z.off
	if c.compSize > 0 || c.crc != 0 {
		if _, err := z.w.Seek(int64(c.offset), io.SeekStart); err != nil {
			return fmt.Errorf("seek back to local header of %s: %w", e.name, err)
		}
		z.off = int64(c.offset)
		if err := z.writeLocal(&c); err != nil {
			return err
		}
		if _, err := z.w.Seek(end, io.SeekStart); err != nil {
			return fmt.Errorf("seek past %s: %w", e.name, err)
		}
		z.off = end
	}
	z.entries = append(z.entries, c)
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func (z *pyZip) deflate(c *pyCentral, r io.Reader) error {
	cw := &countWriter{w: z.w}
	if z.fw == nil {
		fw, err := flate.NewWriter(cw, 6) // zlib's Z_DEFAULT_COMPRESSION
		if err != nil {
			return err
		}
		z.fw = fw
	} else {
		z.fw.Reset(cw)
	}
	fw := z.fw
	h := crc32.NewIEEE()
	n, err := io.Copy(io.MultiWriter(fw, h), r)
	if err != nil {
		return err
	}
	if err := fw.Close(); err != nil {
		return err
	}
	c.crc = h.Sum32()
	c.fileSize = uint64(n)
	c.compSize = uint64(cw.n)
	z.off += cw.n
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (z *pyZip) writeLocal(c *pyCentral) error {
	version := uint16(defaultVersion)
	comp, file := uint32(c.compSize), uint32(c.fileSize)
	var extra []byte
	if c.zip64Local {
		version = zip64Version
		extra = binary.LittleEndian.AppendUint16(extra, 1)
		extra = binary.LittleEndian.AppendUint16(extra, 16)
		extra = binary.LittleEndian.AppendUint64(extra, c.fileSize)
		extra = binary.LittleEndian.AppendUint64(extra, c.compSize)
		comp, file = 0xffffffff, 0xffffffff
	}
	b := make([]byte, 0, 30+len(c.name)+len(extra))
	b = binary.LittleEndian.AppendUint32(b, 0x04034b50)
	b = append(b, byte(version), 0)
	b = binary.LittleEndian.AppendUint16(b, c.flags)
	b = binary.LittleEndian.AppendUint16(b, c.method)
	b = binary.LittleEndian.AppendUint16(b, c.dosTime)
	b = binary.LittleEndian.AppendUint16(b, c.dosDate)
	b = binary.LittleEndian.AppendUint32(b, c.crc)
	b = binary.LittleEndian.AppendUint32(b, comp)
	b = binary.LittleEndian.AppendUint32(b, file)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(c.name)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(extra)))
	b = append(b, c.name...)
	b = append(b, extra...)
	return z.write(b)
}

func (z *pyZip) write(b []byte) error {
	n, err := z.w.Write(b)
	z.off += int64(n)
	if err != nil {
		return fmt.Errorf("write zip: %w", err)
	}
	return nil
}

// close writes the central directory and the end records.
func (z *pyZip) close() error {
	start := z.off
	for _, c := range z.entries {
		if err := z.write(centralRecord(c)); err != nil {
			return err
		}
	}
	size, count := z.off-start, len(z.entries)
	if count > zipFileCount || start > zip64Limit || size > zip64Limit {
		if err := z.write(zip64End(uint64(count), uint64(size), uint64(start), uint64(z.off))); err != nil {
			return err
		}
	}
	b := binary.LittleEndian.AppendUint32(nil, 0x06054b50)
	b = append(b, 0, 0, 0, 0)
	cnt := uint16(min(count, zipFileCount))
	b = binary.LittleEndian.AppendUint16(b, cnt)
	b = binary.LittleEndian.AppendUint16(b, cnt)
	b = binary.LittleEndian.AppendUint32(b, uint32(min(size, 0xffffffff)))
	b = binary.LittleEndian.AppendUint32(b, uint32(min(start, 0xffffffff)))
	b = binary.LittleEndian.AppendUint16(b, 0)
	return z.write(b)
}

func centralRecord(c pyCentral) []byte {
	var vals []uint64
	file, comp, off := uint32(c.fileSize), uint32(c.compSize), uint32(c.offset)
	if c.fileSize > zip64Limit {
		vals, file = append(vals, c.fileSize), 0xffffffff
	}
	if c.compSize > zip64Limit {
		vals, comp = append(vals, c.compSize), 0xffffffff
	}
	if c.offset > zip64Limit {
		vals, off = append(vals, c.offset), 0xffffffff
	}
	var extra []byte
	version := uint16(defaultVersion)
	if len(vals) > 0 || c.zip64Local {
		version = zip64Version
	}
	if len(vals) > 0 {
		extra = binary.LittleEndian.AppendUint16(extra, 1)
		extra = binary.LittleEndian.AppendUint16(extra, uint16(8*len(vals)))
		for _, v := range vals {
			extra = binary.LittleEndian.AppendUint64(extra, v)
		}
	}
	b := binary.LittleEndian.AppendUint32(nil, 0x02014b50)
	b = append(b, byte(version), unixSystem, byte(version), 0)
	b = binary.LittleEndian.AppendUint16(b, c.flags)
	b = binary.LittleEndian.AppendUint16(b, c.method)
	b = binary.LittleEndian.AppendUint16(b, c.dosTime)
	b = binary.LittleEndian.AppendUint16(b, c.dosDate)
	b = binary.LittleEndian.AppendUint32(b, c.crc)
	b = binary.LittleEndian.AppendUint32(b, comp)
	b = binary.LittleEndian.AppendUint32(b, file)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(c.name)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(extra)))
	b = binary.LittleEndian.AppendUint16(b, 0) // comment
	b = binary.LittleEndian.AppendUint16(b, 0) // disk
	b = binary.LittleEndian.AppendUint16(b, 0) // internal attributes
	b = binary.LittleEndian.AppendUint32(b, c.extAttr)
	b = binary.LittleEndian.AppendUint32(b, off)
	b = append(b, c.name...)
	return append(b, extra...)
}

func zip64End(count, size, start, at uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0x06064b50)
	b = binary.LittleEndian.AppendUint64(b, 44)
	b = append(b, zip64Version, unixSystem, zip64Version, 0)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // disk numbers
	b = binary.LittleEndian.AppendUint64(b, count)
	b = binary.LittleEndian.AppendUint64(b, count)
	b = binary.LittleEndian.AppendUint64(b, size)
	b = binary.LittleEndian.AppendUint64(b, start)
	b = binary.LittleEndian.AppendUint32(b, 0x07064b50)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, at)
	return binary.LittleEndian.AppendUint32(b, 1)
}

// dosDateTime converts t to MS-DOS date and time in the local zone, as
// Python's time.localtime does. Years before 1980 are clamped to 1980.
func dosDateTime(t time.Time) (date, tm uint16) {
	t = t.Local()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.Local)
	}
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	tm = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	return date, tm
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// memFile is an in-memory io.WriteSeeker, standing in for Python's BytesIO.
type memFile struct {
	buf []byte
	pos int64
}

func (m *memFile) Write(p []byte) (int, error) {
	if m.pos == int64(len(m.buf)) {
		m.buf = append(m.buf, p...)
		m.pos += int64(len(p))
		return len(p), nil
	}
	end := m.pos + int64(len(p))
	if end > int64(len(m.buf)) {
		m.buf = append(m.buf, make([]byte, end-int64(len(m.buf)))...)
	}
	copy(m.buf[m.pos:], p)
	m.pos = end
	return len(p), nil
}

func (m *memFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.pos
	case io.SeekEnd:
		offset += int64(len(m.buf))
	default:
		return 0, errors.New("memfile: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("memfile: negative position")
	}
	m.pos = offset
	return offset, nil
}
