package store

import (
	"archive/zip"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"time"
)

// ZIP record layouts (APPNOTE.TXT 4.3), as far as StoredZip writes them.
const (
	zipLocalSig      = 0x04034b50
	zipCentralSig    = 0x02014b50
	zipEnd64Sig      = 0x06064b50
	zipEnd64LocSig   = 0x07064b50
	zipEndSig        = 0x06054b50
	zipLocalLen      = 30
	zipCentralLen    = 46
	zipEnd64Len      = 56
	zipEnd64LocLen   = 20
	zipEndLen        = 22
	zipVersion20     = 20
	zipVersion45     = 45 // needed to read ZIP64 fields
	zipCreatorUnix   = 3
	zipFlagUTF8      = 0x800
	zipExtTimeID     = 0x5455
	zipExtZip64ID    = 0x0001
	zipMax16         = 1<<16 - 1
	zipMax32         = 1<<32 - 1
	zipMaxNameLength = zipMax16
)

// StoredZip is a version's archive with every entry STORED (not
// compressed), as restore sends it and `export --stored` writes it. Since
// the manifest records every entry's size and CRC-32, the archive's headers
// and exact length are known before any content is read: the archive is
// produced in one pass, its length sent ahead as Content-Length, and every
// chunk is still read back, decompressed and verified as it is written.
//
// Like WriteZip, it keeps the entries' names, order, modes and times, so
// Pioreactor's import (Python's zipfile) reads it like the unit's own export.
// ZIP64 records are used where a size, offset or count needs them.
type StoredZip struct {
	repo    *Repository
	entries []storedEntry
	size    int64
}

type storedEntry struct {
	e       *Entry
	local   []byte // local file header
	central []byte // central directory record
	content []byte // replacement content, if any
}

// StoredZip lays out v's archive with the content of the entries named in
// replace substituted (their names, modes and times kept). Nothing is read
// until WriteTo.
func (r *Repository) StoredZip(v *Version, replace map[string][]byte) (*StoredZip, error) {
	z := &StoredZip{repo: r, entries: make([]storedEntry, len(v.Entries))}
	var off uint64
	for i := range v.Entries {
		e := &v.Entries[i]
		se := storedEntry{e: e}
		size, crc := uint64(e.Size), e.CRC32
		if c, ok := replace[e.Name]; ok {
			se.content = c
			size, crc = uint64(len(c)), crc32.ChecksumIEEE(c)
		}
		if e.IsDir() {
			size, crc = 0, 0
		}
		if len(e.Name) > zipMaxNameLength {
			return nil, fmt.Errorf("archive of version %s: entry name %.40q… is %d bytes, more than a ZIP holds (%d)", v.ShortID(), e.Name, len(e.Name), zipMaxNameLength)
		}
		h := zipHeader{name: e.Name, mode: e.Mode, modified: e.Modified, crc: crc, size: size, offset: off}
		se.local = h.local()
		se.central = h.central()
		off += uint64(len(se.local)) + size
		z.entries[i] = se
	}
	var cdSize uint64
	for _, se := range z.entries {
		cdSize += uint64(len(se.central))
	}
	z.size = int64(off + cdSize + uint64(len(zipEnd(uint64(len(z.entries)), cdSize, off))))
	return z, nil
}

// Size returns the exact length of the archive WriteTo writes.
func (z *StoredZip) Size() int64 { return z.size }

// WriteTo writes the archive to w, reading, decompressing and verifying
// the chunks of the entries ahead of w on every core. Damaged or missing
// content stops it with an error that names the entry, before the entry's
// last byte is written.
func (z *StoredZip) WriteTo(ctx context.Context, w io.Writer) error {
	var files []*Entry
	for _, se := range z.entries {
		if se.content == nil && !se.e.IsDir() {
			files = append(files, se.e)
		}
	}
	ra := z.repo.newReadAhead(ctx, files)
	defer ra.close()
	cw := &zipCounter{w: w}
	for _, se := range z.entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := cw.Write(se.local); err != nil {
			return err
		}
		switch {
		case se.e.IsDir():
		case se.content != nil:
			if _, err := cw.Write(se.content); err != nil {
				return err
			}
		default:
			if _, err := io.Copy(cw, ra.next(se.e)); err != nil {
				return err
			}
		}
	}
	start := cw.n
	for _, se := range z.entries {
		if _, err := cw.Write(se.central); err != nil {
			return err
		}
	}
	if _, err := cw.Write(zipEnd(uint64(len(z.entries)), uint64(cw.n-start), uint64(start))); err != nil {
		return err
	}
	if cw.n != z.size {
		return fmt.Errorf("archive is %d bytes, %d were announced (a bug in piosnap)", cw.n, z.size)
	}
	return nil
}

// zipCounter counts the bytes written through it to w.
type zipCounter struct {
	w io.Writer
	n int64
}

func (c *zipCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// zipHeader is what a STORED entry's local and central records hold.
type zipHeader struct {
	name     string
	mode     fs.FileMode
	modified time.Time
	crc      uint32
	size     uint64
	offset   uint64
}

func (h zipHeader) flags() uint16 {
	for i := 0; i < len(h.name); i++ {
		if h.name[i] >= 0x80 {
			return zipFlagUTF8 // Python decodes the name as UTF-8 only with this flag
		}
	}
	return 0
}

// extTime is the "extended timestamp" extra field (Info-ZIP), which keeps
// the modification time exactly and in UTC, as archive/zip writes it.
func (h zipHeader) extTime() []byte {
	if h.modified.IsZero() {
		return nil
	}
	b := binary.LittleEndian.AppendUint16(nil, zipExtTimeID)
	b = binary.LittleEndian.AppendUint16(b, 5)
	b = append(b, 1)
	return binary.LittleEndian.AppendUint32(b, uint32(h.modified.Unix()))
}

func (h zipHeader) dosTime() (date, tm uint16) {
	t := h.modified
	if t.IsZero() || t.Year() < 1980 {
		return 0<<9 | 1<<5 | 1, 0 // 1980-01-01 00:00
	}
	return uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9), uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
}

func (h zipHeader) local() []byte {
	zip64 := h.size >= zipMax32
	version := uint16(zipVersion20)
	extra := h.extTime()
	size32 := uint32(h.size)
	if zip64 {
		version = zipVersion45
		size32 = zipMax32
		x := binary.LittleEndian.AppendUint16(nil, zipExtZip64ID)
		x = binary.LittleEndian.AppendUint16(x, 16)
		x = binary.LittleEndian.AppendUint64(x, h.size)
		x = binary.LittleEndian.AppendUint64(x, h.size)
		extra = append(x, extra...)
	}
	date, tm := h.dosTime()
	b := make([]byte, 0, zipLocalLen+len(h.name)+len(extra))
	le := binary.LittleEndian
	b = le.AppendUint32(b, zipLocalSig)
	b = le.AppendUint16(b, version)
	b = le.AppendUint16(b, h.flags())
	b = le.AppendUint16(b, uint16(zip.Store))
	b = le.AppendUint16(b, tm)
	b = le.AppendUint16(b, date)
	b = le.AppendUint32(b, h.crc)
	b = le.AppendUint32(b, size32) // compressed
	b = le.AppendUint32(b, size32) // uncompressed
	b = le.AppendUint16(b, uint16(len(h.name)))
	b = le.AppendUint16(b, uint16(len(extra)))
	b = append(b, h.name...)
	return append(b, extra...)
}

func (h zipHeader) central() []byte {
	le := binary.LittleEndian
	var z64 []byte
	size32, off32 := uint32(h.size), uint32(h.offset)
	if h.size >= zipMax32 {
		size32 = zipMax32
		z64 = le.AppendUint64(z64, h.size) // uncompressed
		z64 = le.AppendUint64(z64, h.size) // compressed
	}
	if h.offset >= zipMax32 {
		off32 = zipMax32
		z64 = le.AppendUint64(z64, h.offset)
	}
	version := uint16(zipVersion20)
	var extra []byte
	if z64 != nil {
		version = zipVersion45
		extra = le.AppendUint16(extra, zipExtZip64ID)
		extra = le.AppendUint16(extra, uint16(len(z64)))
		extra = append(extra, z64...)
	}
	extra = append(extra, h.extTime()...)
	var fh zip.FileHeader
	fh.SetMode(h.mode)
	date, tm := h.dosTime()
	b := make([]byte, 0, zipCentralLen+len(h.name)+len(extra))
	b = le.AppendUint32(b, zipCentralSig)
	b = le.AppendUint16(b, zipCreatorUnix<<8|version)
	b = le.AppendUint16(b, version)
	b = le.AppendUint16(b, h.flags())
	b = le.AppendUint16(b, uint16(zip.Store))
	b = le.AppendUint16(b, tm)
	b = le.AppendUint16(b, date)
	b = le.AppendUint32(b, h.crc)
	b = le.AppendUint32(b, size32) // compressed
	b = le.AppendUint32(b, size32) // uncompressed
	b = le.AppendUint16(b, uint16(len(h.name)))
	b = le.AppendUint16(b, uint16(len(extra)))
	b = le.AppendUint16(b, 0) // comment length
	b = le.AppendUint16(b, 0) // disk number
	b = le.AppendUint16(b, 0) // internal attributes
	b = le.AppendUint32(b, fh.ExternalAttrs)
	b = le.AppendUint32(b, off32)
	b = append(b, h.name...)
	return append(b, extra...)
}

// zipEnd returns the end of central directory record, preceded by the ZIP64
// end record and its locator when the count, size or offset needs them.
func zipEnd(count, cdSize, cdOffset uint64) []byte {
	le := binary.LittleEndian
	var b []byte
	if count >= zipMax16 || cdSize >= zipMax32 || cdOffset >= zipMax32 {
		b = le.AppendUint32(b, zipEnd64Sig)
		b = le.AppendUint64(b, zipEnd64Len-12) // size of the rest of the record
		b = le.AppendUint16(b, zipCreatorUnix<<8|zipVersion45)
		b = le.AppendUint16(b, zipVersion45)
		b = le.AppendUint32(b, 0) // this disk
		b = le.AppendUint32(b, 0) // disk with the central directory
		b = le.AppendUint64(b, count)
		b = le.AppendUint64(b, count)
		b = le.AppendUint64(b, cdSize)
		b = le.AppendUint64(b, cdOffset)
		b = le.AppendUint32(b, zipEnd64LocSig)
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, cdOffset+cdSize) // where the ZIP64 end record starts
		b = le.AppendUint32(b, 1)               // total disks
		count, cdSize, cdOffset = min(count, zipMax16), min(cdSize, zipMax32), min(cdOffset, zipMax32)
	}
	b = le.AppendUint32(b, zipEndSig)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, uint16(count))
	b = le.AppendUint16(b, uint16(count))
	b = le.AppendUint32(b, uint32(cdSize))
	b = le.AppendUint32(b, uint32(cdOffset))
	return le.AppendUint16(b, 0) // comment length
}
