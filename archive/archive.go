// Package archive reads ZIP archives as a stream and validates their entries.
//
// Pioreactor exports a unit's ~/.pioreactor directory as a ZIP archive over
// HTTP. On a leader the archive holds the SQLite database and can be several
// GB, while the backup daemon may run on a Raspberry Pi. A [Reader] therefore
// reads the archive front to back from an [io.Reader], in memory that does not
// grow with the size of an entry, and never spools it to disk. It verifies every
// entry's CRC-32 and size, enforces [Limits] on the bytes it actually
// decompresses, and finally checks the central directory against the entries it
// has read. [CheckEntries] then decides whether the entry list is safe to
// extract.
package archive

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// Default limits, used for the zero fields of a [Limits].
const (
	DefaultMaxEntries   = 100000
	DefaultMaxEntrySize = 64 << 30
	DefaultMaxTotalSize = 256 << 30
)

// Limits bounds what a [Reader] and [CheckEntries] accept. A zero field means
// its default: [DefaultMaxEntries], [DefaultMaxEntrySize] or
// [DefaultMaxTotalSize].
type Limits struct {
	// MaxEntries is the largest number of entries an archive may hold.
	MaxEntries int
	// MaxEntrySize is the largest uncompressed size of one entry, in bytes.
	MaxEntrySize int64
	// MaxTotalSize is the largest uncompressed size of all entries together.
	MaxTotalSize int64
}

// withDefaults returns lim with zero (or negative) fields set to the defaults.
func (lim Limits) withDefaults() Limits {
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = DefaultMaxEntries
	}
	if lim.MaxEntrySize <= 0 {
		lim.MaxEntrySize = DefaultMaxEntrySize
	}
	if lim.MaxTotalSize <= 0 {
		lim.MaxTotalSize = DefaultMaxTotalSize
	}
	return lim
}

// Compression methods a [Reader] can read.
const (
	Store   uint16 = 0 // no compression
	Deflate uint16 = 8 // DEFLATE (RFC 1951)
)

// Header describes one archive entry.
type Header struct {
	// Name is the entry's path inside the archive, with "/" separators.
	// Directory names end in "/".
	Name string
	// Method is the compression method, [Store] or [Deflate].
	Method uint16
	// Modified is the modification time. The MS-DOS time fields carry no
	// time zone and are reported as UTC, like archive/zip does; an extended
	// timestamp field (0x5455), when present, gives the exact instant.
	Modified time.Time
	// CRC32 is the CRC-32 (IEEE) of the uncompressed content.
	CRC32 uint32
	// Size is the uncompressed size in bytes.
	Size uint64
	// CompressedSize is the size of the stored (compressed) data in bytes.
	CompressedSize uint64
	// Mode holds the permission and type bits. Only the central directory
	// records them, so it is 0 in the headers [Reader.Next] returns and set in
	// the headers [Reader.Finish] returns.
	Mode fs.FileMode
}

// IsDir reports whether the entry is a directory, that is whether its name
// ends in "/".
func (h *Header) IsDir() bool {
	return strings.HasSuffix(h.Name, "/")
}

// Sentinel errors. Errors returned by this package wrap one of them, so that
// callers can tell the kinds apart with [errors.Is]; the message of the
// returned error names the entry and what is wrong.
var (
	// ErrFormat means the input is not a ZIP archive, is truncated, or is
	// internally inconsistent.
	ErrFormat = errors.New("invalid ZIP archive")
	// ErrChecksum means an entry's content does not match its CRC-32.
	ErrChecksum = errors.New("ZIP checksum mismatch")
	// ErrLimit means the archive exceeds one of the [Limits].
	ErrLimit = errors.New("ZIP archive exceeds a limit")
	// ErrUnsafe means an entry could not be extracted safely: its name
	// escapes the destination, or it is a symlink, device or duplicate.
	ErrUnsafe = errors.New("unsafe ZIP entry")
)

// archiveError is an error of one of the sentinel kinds with a specific
// message and an optional cause. Its message is the specific one only; the
// kind is visible through errors.Is.
type archiveError struct {
	kind  error
	msg   string
	cause error
}

func (e *archiveError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *archiveError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// EntryError reports why one entry of an archive is unacceptable.
type EntryError struct {
	// Entry is the entry's name as stored in the archive.
	Entry string
	// Reason says what is wrong with the entry.
	Reason string
	// Err is the sentinel kind: [ErrUnsafe] or [ErrLimit].
	Err error
}

// Error returns a message such as `entry "a/../b": path traversal ("..")`.
func (e *EntryError) Error() string {
	return "entry " + strconv.Quote(e.Entry) + ": " + e.Reason
}

// Unwrap returns the sentinel kind, so that errors.Is(err, ErrUnsafe) works.
func (e *EntryError) Unwrap() error {
	return e.Err
}
