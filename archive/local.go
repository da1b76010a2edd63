package archive

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/klauspost/compress/flate"
)

// Sizes of the fixed parts of ZIP records.
const (
	localLen      = 30
	centralLen    = 46
	endLen        = 22
	end64LocLen   = 20
	end64FixedLen = 56 // signature, size and the fixed fields of the ZIP64 end record
)

// Extra field tags.
const (
	extraZip64     = 0x0001
	extraTimestamp = 0x5455
)

// Flag bits.
const (
	flagEncrypted  = 0x0001
	flagDescriptor = 0x0008
	flagStrongEnc  = 0x0040
)

const max32 = 0xffffffff

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// readLocalHeader reads the local file header at the current position and
// prepares the entry's data reader.
func (z *Reader) readLocalHeader() (*entry, error) {
	e := &entry{offset: z.pos()}
	where := func() string { return fmt.Sprintf("in the local header of entry %d", len(z.local)+1) }
	var b [localLen]byte
	if _, err := io.ReadFull(z.br, b[:]); err != nil {
		return nil, z.truncated(where(), err)
	}
	nameLen, extraLen := int(le16(b[26:])), int(le16(b[28:]))
	varPart := make([]byte, nameLen+extraLen)
	if _, err := io.ReadFull(z.br, varPart); err != nil {
		return nil, z.truncated(where(), err)
	}
	h := &Header{
		Name:           string(varPart[:nameLen]),
		Method:         le16(b[8:]),
		Modified:       dosTime(le16(b[12:]), le16(b[10:])),
		CRC32:          le32(b[14:]),
		CompressedSize: uint64(le32(b[18:])),
		Size:           uint64(le32(b[22:])),
	}
	e.hdr, e.flags = h, le16(b[6:])
	e.descriptor = e.flags&flagDescriptor != 0
	if err := parseExtra(varPart[nameLen:], h, nil, &e.zip64); err != nil {
		return nil, &archiveError{kind: ErrFormat,
			msg: fmt.Sprintf("bad extra field in the local header of entry %q", h.Name), cause: err}
	}
	if err := z.checkLocal(e); err != nil {
		return nil, err
	}
	e.dataStart = z.pos()
	if e.descriptor {
		// The header's values are placeholders; the descriptor has the real ones.
		h.CRC32, h.Size, h.CompressedSize = 0, 0, 0
	}
	switch h.Method {
	case Store:
		e.data = &storedReader{r: z.br, n: h.Size}
	case Deflate:
		if z.fr == nil {
			z.fr = flate.NewReader(z.br)
		} else if err := z.fr.(flate.Resetter).Reset(z.br, nil); err != nil {
			return nil, fmt.Errorf("reset decompressor for entry %q: %w", h.Name, err)
		}
		e.data = z.fr
	}
	return e, nil
}

// checkLocal rejects local entries this Reader cannot or will not read.
func (z *Reader) checkLocal(e *entry) error {
	h := e.hdr
	switch {
	case e.flags&(flagEncrypted|flagStrongEnc) != 0:
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"entry %q is encrypted: encrypted archives are not supported", h.Name)}
	case h.Method != Store && h.Method != Deflate:
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"entry %q uses compression method %d: only STORED (0) and DEFLATE (8) are supported",
			h.Name, h.Method)}
	case h.Method == Store && e.descriptor:
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"entry %q is STORED with a data descriptor (flag bit 3), so its length is unknown "+
				"until after its data and it cannot be read as a stream: write the archive to a "+
				"seekable file or use DEFLATE", h.Name)}
	case e.descriptor:
		return nil
	case h.Method == Store && h.CompressedSize != h.Size:
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"STORED entry %q declares %d compressed but %d uncompressed bytes",
			h.Name, h.CompressedSize, h.Size)}
	case h.Size > uint64(z.lim.MaxEntrySize):
		return &archiveError{kind: ErrLimit, msg: fmt.Sprintf(
			"entry %q declares %d bytes, more than %d (limit MaxEntrySize)",
			h.Name, h.Size, z.lim.MaxEntrySize)}
	}
	return nil
}

// parseExtra reads the extra fields of a local (offset == nil) or central
// header: ZIP64 sizes (and offset) where the 32-bit fields hold 0xffffffff,
// and the extended timestamp. It sets *zip64 if a ZIP64 field is present.
func parseExtra(b []byte, h *Header, offset *uint64, zip64 *bool) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("%d stray bytes after the last field", len(b))
		}
		tag, size := le16(b), int(le16(b[2:]))
		if len(b) < 4+size {
			return fmt.Errorf("field 0x%04x of %d bytes overruns the extra data", tag, size)
		}
		field := b[4 : 4+size]
		b = b[4+size:]
		switch tag {
		case extraZip64:
			*zip64 = true
			if err := parseZip64(field, h, offset); err != nil {
				return err
			}
		case extraTimestamp:
			// Flags byte, then the modification time if bit 0 is set.
			if len(field) >= 5 && field[0]&1 != 0 {
				h.Modified = time.Unix(int64(int32(le32(field[1:]))), 0).UTC()
			}
		}
	}
	return nil
}

// parseZip64 reads the ZIP64 extended information field: each 64-bit value
// is present only when its 32-bit counterpart is 0xffffffff, in the order
// uncompressed size, compressed size, local header offset.
func parseZip64(f []byte, h *Header, offset *uint64) error {
	next := func(dst *uint64, what string) error {
		if *dst != max32 {
			return nil
		}
		if len(f) < 8 {
			return fmt.Errorf("ZIP64 field lacks the %s", what)
		}
		*dst, f = le64(f), f[8:]
		return nil
	}
	if err := next(&h.Size, "uncompressed size"); err != nil {
		return err
	}
	if err := next(&h.CompressedSize, "compressed size"); err != nil {
		return err
	}
	if offset != nil {
		return next(offset, "local header offset")
	}
	return nil
}

// dosTime converts MS-DOS date and time fields to a time in UTC.
func dosTime(date, tm uint16) time.Time {
	return time.Date(
		int(date>>9)+1980, time.Month(date>>5&0xf), int(date&0x1f),
		int(tm>>11), int(tm>>5&0x3f), int(tm&0x1f)*2, 0, time.UTC)
}

// descriptorLayout is one of the four shapes a data descriptor can take.
type descriptorLayout struct {
	signature bool
	wide      bool // 64-bit sizes
}

func (l descriptorLayout) size() int {
	n := 12
	if l.wide {
		n = 20
	}
	if l.signature {
		n += 4
	}
	return n
}

// readDescriptor reads the data descriptor after e's DEFLATE data, of which
// used compressed bytes were consumed. The descriptor may or may not start
// with a signature and may hold 32- or 64-bit sizes; the layout chosen is the
// one whose values match the data just read and that is followed by a record
// signature.
func (z *Reader) readDescriptor(e *entry, used uint64) error {
	h := e.hdr
	b, _ := z.br.Peek(24 + 4)
	layouts := []descriptorLayout{{true, false}, {false, false}, {true, true}, {false, true}}
	if e.zip64 {
		layouts = []descriptorLayout{{true, true}, {false, true}, {true, false}, {false, false}}
	}
	var crcOnly *descriptorLayout
	for i, l := range layouts {
		if len(b) < l.size() {
			continue
		}
		crc, csize, usize, ok := parseDescriptor(b[:l.size()], l)
		if !ok || csize != used || usize != e.n {
			continue
		}
		if len(b) >= l.size()+4 && !isRecordSignature(le32(b[l.size():])) {
			continue
		}
		if crc != e.crc {
			if crcOnly == nil {
				crcOnly = &layouts[i]
			}
			continue
		}
		h.CRC32, h.CompressedSize, h.Size = crc, csize, usize
		_, err := z.br.Discard(l.size())
		return err
	}
	if crcOnly != nil {
		crc, csize, usize, _ := parseDescriptor(b[:crcOnly.size()], *crcOnly)
		h.CRC32, h.CompressedSize, h.Size = crc, csize, usize
		_, err := z.br.Discard(crcOnly.size())
		return err // finishEntry reports the CRC mismatch
	}
	if len(b) < 12+4 {
		return z.truncated(fmt.Sprintf("in the data descriptor of entry %q", h.Name), io.ErrUnexpectedEOF)
	}
	return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
		"entry %q: no data descriptor matching its %d compressed and %d uncompressed bytes follows its data",
		h.Name, used, e.n)}
}

// parseDescriptor decodes a data descriptor of layout l.
// ok is false if l has a signature and b does not start with it.
func parseDescriptor(b []byte, l descriptorLayout) (crc uint32, csize, usize uint64, ok bool) {
	if l.signature {
		if le32(b) != sigDescriptor {
			return 0, 0, 0, false
		}
		b = b[4:]
	}
	crc = le32(b)
	if l.wide {
		return crc, le64(b[4:]), le64(b[12:]), true
	}
	return crc, uint64(le32(b[4:])), uint64(le32(b[8:])), true
}

// isRecordSignature reports whether sig can follow an entry.
func isRecordSignature(sig uint32) bool {
	switch sig {
	case sigLocal, sigCentral, sigEnd, sigEnd64, sigDigitalSig, sigArchiveData:
		return true
	}
	return false
}

// notZip explains input that does not start with a ZIP record, quoting its
// first bytes and guessing what it is.
func notZip(br *bufio.Reader) error {
	b, _ := br.Peek(64)
	start := string(b)
	const show = 40
	quoted := start
	if len(quoted) > show {
		quoted = quoted[:show]
	}
	msg := fmt.Sprintf("not a ZIP archive (input starts with %q", quoted)
	if len(start) > show {
		msg = msg[:len(msg)-1] + `…"`
	}
	msg += ")"
	trimmed := strings.ToLower(strings.TrimSpace(start))
	switch {
	case strings.HasPrefix(trimmed, "<!doctype html"), strings.HasPrefix(trimmed, "<html"),
		strings.HasPrefix(trimmed, "<head"), strings.HasPrefix(trimmed, "<body"),
		strings.HasPrefix(trimmed, "<title"):
		msg += ": the server sent an error page instead of an archive"
	case strings.HasPrefix(trimmed, "{"), strings.HasPrefix(trimmed, "["):
		msg += ": the server sent a JSON reply instead of an archive"
	case strings.HasPrefix(trimmed, "<"):
		msg += ": the server sent a markup document instead of an archive"
	}
	return &archiveError{kind: ErrFormat, msg: msg}
}
