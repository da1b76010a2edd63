package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// maxEnd64Size bounds the ZIP64 end of central directory record, whose
// extensible data is otherwise unbounded.
const maxEnd64Size = 64 << 10

// centralEntry is one central directory header.
type centralEntry struct {
	hdr    Header
	offset uint64 // of the local header
	flags  uint16
}

// Finish, after [Reader.Next] returned io.EOF, reads the central directory and
// the end records to the end of the input. It returns the entries the central
// directory lists, in order, with Mode filled in from the external attributes,
// after checking that they agree with the local entries read (count, names,
// offsets, methods, CRC-32s and sizes). Disagreement, trailing data and
// multi-disk archives are [ErrFormat].
func (z *Reader) Finish() ([]Header, error) {
	if z.err != nil {
		return nil, z.err
	}
	switch z.state {
	case stateEntries:
		return nil, errors.New("archive: Finish called before Next returned io.EOF: read all entries first")
	case stateDone:
		return nil, errors.New("archive: Finish called twice")
	}
	z.state = stateDone
	hdrs, err := z.finish()
	if err != nil {
		return nil, z.fail(err)
	}
	return hdrs, nil
}

func (z *Reader) finish() ([]Header, error) {
	cdStart := z.pos()
	var cd []centralEntry
	for {
		sig, err := z.peekSignature()
		if err != nil {
			return nil, err
		}
		if sig != sigCentral {
			break
		}
		if len(cd) == len(z.local) {
			return nil, z.mismatch(fmt.Sprintf(
				"the central directory lists more entries than the %d in the archive", len(z.local)))
		}
		c, err := z.readCentral(len(cd) + 1)
		if err != nil {
			return nil, err
		}
		cd = append(cd, c)
	}
	cdEnd := z.pos()
	if err := z.skipDigitalSignature(); err != nil {
		return nil, err
	}
	if err := z.readEnd(cdStart, cdEnd, uint64(len(cd))); err != nil {
		return nil, err
	}
	if err := z.compare(cd); err != nil {
		return nil, err
	}
	hdrs := make([]Header, len(cd))
	for i := range cd {
		hdrs[i] = cd[i].hdr
	}
	return hdrs, nil
}

// mismatch returns the error for a central directory that disagrees with the
// local entries.
func (z *Reader) mismatch(what string) error {
	return &archiveError{kind: ErrFormat,
		msg: "central directory does not match the archive's entries: " + what}
}

// readCentral reads the central directory header of the i-th entry.
func (z *Reader) readCentral(i int) (centralEntry, error) {
	var c centralEntry
	where := func() string { return fmt.Sprintf("in the central directory header of entry %d", i) }
	var b [centralLen]byte
	if _, err := io.ReadFull(z.br, b[:]); err != nil {
		return c, z.truncated(where(), err)
	}
	nameLen, extraLen, commentLen := int(le16(b[28:])), int(le16(b[30:])), int(le16(b[32:]))
	varPart := make([]byte, nameLen+extraLen+commentLen)
	if _, err := io.ReadFull(z.br, varPart); err != nil {
		return c, z.truncated(where(), err)
	}
	h := &c.hdr
	*h = Header{
		Name:           string(varPart[:nameLen]),
		Method:         le16(b[10:]),
		Modified:       dosTime(le16(b[14:]), le16(b[12:])),
		CRC32:          le32(b[16:]),
		CompressedSize: uint64(le32(b[20:])),
		Size:           uint64(le32(b[24:])),
	}
	c.offset, c.flags = uint64(le32(b[42:])), le16(b[8:])
	var zip64 bool
	if err := parseExtra(varPart[nameLen:nameLen+extraLen], h, &c.offset, &zip64); err != nil {
		return c, &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"bad extra field in the central directory header of entry %q", h.Name), cause: err}
	}
	if disk := le16(b[34:]); disk != 0 {
		return c, multiDisk()
	}
	h.Mode = fileMode(le16(b[4:])>>8, le32(b[38:]), h.IsDir())
	return c, nil
}

func multiDisk() error {
	return &archiveError{kind: ErrFormat,
		msg: "multi-disk (split) archives are not supported: join the parts into one file"}
}

// skipDigitalSignature skips the optional digital signature record.
func (z *Reader) skipDigitalSignature() error {
	if b, _ := z.br.Peek(6); len(b) < 6 || le32(b) != sigDigitalSig {
		return nil
	}
	b, _ := z.br.Peek(6)
	if _, err := z.br.Discard(6 + int(le16(b[4:]))); err != nil {
		return z.truncated("in the digital signature record", err)
	}
	return nil
}

// end holds the values of the end of central directory record(s).
type end struct {
	entries, cdSize, cdOffset uint64
}

// readEnd reads the optional ZIP64 end record and locator and the end of
// central directory record, checks them against the central directory that
// was read (cdStart to cdEnd, n entries), and checks that the input ends.
func (z *Reader) readEnd(cdStart, cdEnd int64, n uint64) error {
	var e64 *end
	sig, err := z.peekSignature()
	if err != nil {
		return err
	}
	if sig == sigEnd64 {
		at := z.pos()
		if e64, err = z.readEnd64(); err != nil {
			return err
		}
		if err := z.readEnd64Locator(at); err != nil {
			return err
		}
	}
	e, err := z.readEnd32(e64)
	if err != nil {
		return err
	}
	switch {
	case e.entries != n:
		return z.mismatch(fmt.Sprintf("the end record counts %d entries, the directory has %d", e.entries, n))
	case e.cdOffset != uint64(cdStart):
		return z.mismatch(fmt.Sprintf("the end record puts the directory at offset %d, it is at %d",
			e.cdOffset, cdStart))
	case e.cdSize != uint64(cdEnd-cdStart):
		return z.mismatch(fmt.Sprintf("the end record gives the directory %d bytes, it has %d",
			e.cdSize, cdEnd-cdStart))
	}
	if b, _ := z.br.Peek(1); len(b) > 0 {
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"unexpected data after the end of the archive at offset %d", z.pos())}
	}
	return nil
}

// readEnd64 reads the ZIP64 end of central directory record.
func (z *Reader) readEnd64() (*end, error) {
	const where = "in the ZIP64 end of central directory record"
	var b [end64FixedLen]byte
	if _, err := io.ReadFull(z.br, b[:]); err != nil {
		return nil, z.truncated(where, err)
	}
	size := le64(b[4:])
	if size < end64FixedLen-12 || size > maxEnd64Size {
		return nil, &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"ZIP64 end of central directory record has an invalid size %d", size)}
	}
	if le32(b[16:]) != 0 || le32(b[20:]) != 0 {
		return nil, multiDisk()
	}
	if _, err := z.br.Discard(int(size) - (end64FixedLen - 12)); err != nil {
		return nil, z.truncated(where, err)
	}
	return &end{entries: le64(b[32:]), cdSize: le64(b[40:]), cdOffset: le64(b[48:])}, nil
}

// readEnd64Locator reads the ZIP64 end locator, which must point at the
// ZIP64 end record read at offset at.
func (z *Reader) readEnd64Locator(at int64) error {
	var b [end64LocLen]byte
	if _, err := io.ReadFull(z.br, b[:]); err != nil {
		return z.truncated("in the ZIP64 end of central directory locator", err)
	}
	switch {
	case le32(b[:]) != sigEnd64Loc:
		return &archiveError{kind: ErrFormat, msg: "ZIP64 end of central directory locator is missing"}
	case le64(b[8:]) != uint64(at):
		return &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"ZIP64 end locator points at offset %d, the record is at %d", le64(b[8:]), at)}
	case le32(b[4:]) != 0 || le32(b[16:]) > 1:
		return multiDisk()
	}
	return nil
}

// readEnd32 reads the end of central directory record and its comment. Its
// fields that hold their maximum defer to the ZIP64 record e64, if any.
func (z *Reader) readEnd32(e64 *end) (end, error) {
	const where = "in the end of central directory record"
	var b [endLen]byte
	if _, err := io.ReadFull(z.br, b[:]); err != nil {
		return end{}, z.truncated(where, err)
	}
	if sig := le32(b[:]); sig != sigEnd {
		return end{}, &archiveError{kind: ErrFormat, msg: fmt.Sprintf(
			"expected the end of central directory record at offset %d, found signature 0x%08x",
			z.pos()-endLen, sig)}
	}
	if le16(b[4:]) != 0 || le16(b[6:]) != 0 {
		return end{}, multiDisk()
	}
	if _, err := z.br.Discard(int(le16(b[20:]))); err != nil {
		return end{}, z.truncated("in the archive comment", err)
	}
	e := end{entries: uint64(le16(b[10:])), cdSize: uint64(le32(b[12:])), cdOffset: uint64(le32(b[16:]))}
	if e64 != nil {
		if e.entries == 0xffff {
			e.entries = e64.entries
		}
		if e.cdSize == max32 {
			e.cdSize = e64.cdSize
		}
		if e.cdOffset == max32 {
			e.cdOffset = e64.cdOffset
		}
	}
	return e, nil
}

// flagsCompared are the flag bits that must agree between the central
// directory and the local headers: encryption, data descriptor, UTF-8 names
// and masked local headers.
const flagsCompared = flagEncrypted | flagDescriptor | flagStrongEnc | 0x0800 | 0x2000

// compare checks the central directory against the local entries.
func (z *Reader) compare(cd []centralEntry) error {
	if len(cd) != len(z.local) {
		return z.mismatch(fmt.Sprintf("it lists %d entries, the archive has %d", len(cd), len(z.local)))
	}
	for i := range cd {
		c, l := &cd[i].hdr, z.local[i].hdr
		var what string
		switch {
		case c.Name != l.Name:
			what = fmt.Sprintf("name %q", c.Name)
		case cd[i].offset != uint64(z.local[i].offset):
			what = fmt.Sprintf("offset %d (the entry is at %d)", cd[i].offset, z.local[i].offset)
		case cd[i].flags&flagsCompared != z.local[i].flags&flagsCompared:
			what = fmt.Sprintf("flags %#04x (the entry has %#04x)", cd[i].flags, z.local[i].flags)
		case c.Method != l.Method:
			what = fmt.Sprintf("method %d (the entry has %d)", c.Method, l.Method)
		case c.CRC32 != l.CRC32:
			what = fmt.Sprintf("CRC-32 %08x (the entry has %08x)", c.CRC32, l.CRC32)
		case c.Size != l.Size || c.CompressedSize != l.CompressedSize:
			what = fmt.Sprintf("sizes %d/%d (the entry has %d/%d)",
				c.Size, c.CompressedSize, l.Size, l.CompressedSize)
		default:
			continue
		}
		return z.mismatch(fmt.Sprintf("entry %d (%q) is listed with %s", i+1, l.Name, what))
	}
	return nil
}

// Creator systems in the high byte of "version made by".
const (
	creatorFAT   = 0
	creatorUnix  = 3
	creatorNTFS  = 10
	creatorVFAT  = 14
	creatorMacOS = 19
)

// Unix file type and permission bits, as in external attributes.
const (
	sIFMT   = 0xf000
	sIFSOCK = 0xc000
	sIFLNK  = 0xa000
	sIFREG  = 0x8000
	sIFBLK  = 0x6000
	sIFDIR  = 0x4000
	sIFCHR  = 0x2000
	sIFIFO  = 0x1000
	sISUID  = 0x800
	sISGID  = 0x400
	sISVTX  = 0x200
)

// MS-DOS attribute bits.
const (
	dosReadOnly = 0x01
	dosDir      = 0x10
)

// fileMode converts a creator system and external attributes to an
// fs.FileMode. Unix creators keep the mode in the high 16 bits; otherwise
// (or when those are zero) the MS-DOS directory and read-only bits decide.
func fileMode(creator uint16, attr uint32, isDir bool) fs.FileMode {
	var m fs.FileMode
	switch unix := attr >> 16; {
	case (creator == creatorUnix || creator == creatorMacOS) && unix != 0:
		m = unixMode(unix)
	case creator == creatorUnix, creator == creatorMacOS, creator == creatorFAT,
		creator == creatorNTFS, creator == creatorVFAT:
		m = 0o666
		if attr&dosDir != 0 {
			m = fs.ModeDir | 0o777
		}
		if attr&dosReadOnly != 0 {
			m &^= 0o222
		}
	}
	if isDir {
		m |= fs.ModeDir
	}
	return m
}

// unixMode converts a Unix st_mode value to an fs.FileMode.
func unixMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	switch mode & sIFMT {
	case sIFSOCK:
		m |= fs.ModeSocket
	case sIFLNK:
		m |= fs.ModeSymlink
	case sIFBLK:
		m |= fs.ModeDevice
	case sIFDIR:
		m |= fs.ModeDir
	case sIFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case sIFIFO:
		m |= fs.ModeNamedPipe
	case sIFREG, 0:
	default:
		m |= fs.ModeIrregular
	}
	if mode&sISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&sISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&sISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
