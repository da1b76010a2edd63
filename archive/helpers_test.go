package archive

import (
	"archive/zip"
	"bytes"
	"hash/crc32"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
)

// file is an entry to write into a test archive.
type file struct {
	name   string
	data   []byte
	mode   fs.FileMode
	method uint16
	// raw writes the entry with known sizes and no data descriptor, as
	// Python's zipfile does; otherwise archive/zip uses a data descriptor for
	// files.
	raw bool
	// flags are extra flag bits for raw entries.
	flags uint16
}

// modTime is the modification time of every test entry.
var modTime = time.Date(2026, 8, 4, 16, 54, 52, 0, time.UTC)

// makeZip writes files with the standard library's archive/zip.
func makeZip(tb testing.TB, files ...file) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: f.method, Modified: modTime, Flags: f.flags}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		if f.raw {
			// CreateRaw writes no time fields; add an extended timestamp.
			t := uint32(modTime.Unix())
			h.Extra = []byte{0x55, 0x54, 5, 0, 1, byte(t), byte(t >> 8), byte(t >> 16), byte(t >> 24)}
			h.CRC32 = crc32.ChecksumIEEE(f.data)
			h.UncompressedSize64 = uint64(len(f.data))
			body := f.data
			if f.method == Deflate {
				body = deflate(tb, f.data)
			}
			h.CompressedSize64 = uint64(len(body))
			fw, err := w.CreateRaw(h)
			if err != nil {
				tb.Fatalf("create raw %q: %v", f.name, err)
			}
			if _, err := fw.Write(body); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		fw, err := w.CreateHeader(h)
		if err != nil {
			tb.Fatalf("create %q: %v", f.name, err)
		}
		if _, err := fw.Write(f.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// deflate compresses b.
func deflate(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := fw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// content is one entry as read back.
type content struct {
	hdr  Header
	data []byte
}

// readArchive reads every entry of data and finishes the archive. It returns
// what was read before the first error, and that error.
func readArchive(data []byte, lim Limits) ([]content, []Header, error) {
	z := NewReader(bytes.NewReader(data), lim)
	var got []content
	for {
		h, err := z.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return got, nil, err
		}
		b, err := io.ReadAll(z)
		if err != nil {
			return got, nil, err
		}
		got = append(got, content{hdr: *h, data: b})
	}
	hdrs, err := z.Finish()
	return got, hdrs, err
}

// endRecord returns the offset of the end of central directory record of an
// archive without a comment, and the offset of its central directory.
func endRecord(tb testing.TB, data []byte) (end, cd int) {
	tb.Helper()
	end = len(data) - endLen
	if le32(data[end:]) != sigEnd {
		tb.Fatalf("no end record at offset %d", end)
	}
	return end, int(le32(data[end+16:]))
}

// patch returns a copy of data with b written at offset off.
func patch(data []byte, off int, b ...byte) []byte {
	out := bytes.Clone(data)
	copy(out[off:], b)
	return out
}
