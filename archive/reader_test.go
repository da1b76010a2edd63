package archive

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("2026-08-04T16:54:52.123Z,worker1,od_reading,0.0512\n"), 5000)
	tests := []struct {
		name  string
		files []file
	}{
		{"empty archive", nil},
		{"deflate with data descriptor", []file{{name: "config.ini", data: text, method: Deflate}}},
		{"deflate with known sizes", []file{{name: "config.ini", data: text, method: Deflate, raw: true}}},
		{"stored with known sizes", []file{{name: "a.bin", data: random[:5000], method: Store, raw: true}}},
		{"empty files", []file{
			{name: "e1", method: Deflate},
			{name: "e2", method: Deflate, raw: true},
			{name: "e3", method: Store, raw: true},
		}},
		{"incompressible 1 MiB", []file{{name: "r.bin", data: random, method: Deflate}}},
		{"directories and modes", []file{
			{name: "plugins/", mode: fs.ModeDir | 0o755},
			{name: "storage/", mode: fs.ModeDir | 0o700},
			{name: "storage/run.sh", data: []byte("#!/bin/sh\n"), mode: 0o755, method: Deflate},
			{name: "storage/secret", data: []byte("x"), mode: 0o600, method: Deflate, raw: true},
			{name: "storage/setuid", data: []byte("y"), mode: 0o755 | fs.ModeSetuid, method: Deflate},
			{name: "ui/caf\u00e9.txt", data: []byte("utf-8"), mode: 0o640, method: Store, raw: true},
		}},
		{"mixed", []file{
			{name: "a", data: text[:100], method: Deflate},
			{name: "b", data: random[:100], method: Store, raw: true},
			{name: "c", data: text, method: Deflate, raw: true},
			{name: "d/", mode: fs.ModeDir | 0o775},
			{name: "d/e", data: text[:7], method: Deflate},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, hdrs, err := readArchive(makeZip(t, tt.files...), Limits{})
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(got) != len(tt.files) || len(hdrs) != len(tt.files) {
				t.Fatalf("read %d entries and %d central headers, want %d", len(got), len(hdrs), len(tt.files))
			}
			for i, f := range tt.files {
				g, h := got[i], hdrs[i]
				wantMode := f.mode
				if wantMode == 0 {
					wantMode = 0o644
				}
				switch {
				case g.hdr.Name != f.name || h.Name != f.name:
					t.Errorf("entry %d: names %q, %q, want %q", i, g.hdr.Name, h.Name, f.name)
				case !bytes.Equal(g.data, f.data):
					t.Errorf("%s: content differs (%d bytes, want %d)", f.name, len(g.data), len(f.data))
				case g.hdr.Size != uint64(len(f.data)) || g.hdr.CRC32 != crc32.ChecksumIEEE(f.data):
					t.Errorf("%s: header after reading has size %d crc %08x", f.name, g.hdr.Size, g.hdr.CRC32)
				case h.Mode != wantMode:
					t.Errorf("%s: mode %v, want %v", f.name, h.Mode, wantMode)
				case !h.Modified.Equal(modTime) || !g.hdr.Modified.Equal(modTime):
					t.Errorf("%s: modified %v / %v, want %v", f.name, g.hdr.Modified, h.Modified, modTime)
				case g.hdr.Mode != 0:
					t.Errorf("%s: Next reported mode %v, want 0", f.name, g.hdr.Mode)
				case h.IsDir() != strings.HasSuffix(f.name, "/"):
					t.Errorf("%s: IsDir %v", f.name, h.IsDir())
				}
			}
			if err := CheckEntries(hdrs, Limits{}); err != nil {
				t.Errorf("CheckEntries: %v", err)
			}
		})
	}
}

// TestSkipUnread checks that Next skips unread content but still verifies it.
func TestSkipUnread(t *testing.T) {
	data := bytes.Repeat([]byte("skip me "), 10000)
	good := makeZip(t,
		file{name: "a", data: data, method: Deflate},
		file{name: "b", data: data, method: Store, raw: true},
		file{name: "c", data: data, method: Deflate, raw: true})
	z := NewReader(bytes.NewReader(good), Limits{})
	var names []string
	for {
		h, err := z.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if _, err := z.Finish(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Errorf("names %v", names)
	}

	// A corrupt byte in the unread stored entry "b" must still be found.
	off := bytes.Index(good, data[:64]) + 1000 // "b" is the only STORED entry
	bad := patch(good, off, 'S')
	z = NewReader(bytes.NewReader(bad), Limits{})
	var err error
	for err == nil {
		_, err = z.Next()
	}
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("skipping a corrupt entry: %v, want ErrChecksum naming \"b\"", err)
	}
}

func TestReaderErrors(t *testing.T) {
	text := bytes.Repeat([]byte("od_reading,0.05\n"), 1000)
	stored := makeZip(t, file{name: "s.bin", data: text, method: Store, raw: true})
	described := makeZip(t, file{name: "d.txt", data: text, method: Deflate})
	rawDeflate := makeZip(t, file{name: "r.txt", data: text, method: Deflate, raw: true})
	two := makeZip(t, file{name: "one", data: text, method: Store, raw: true},
		file{name: "two", data: text, method: Store, raw: true})

	tests := []struct {
		name  string
		input []byte
		lim   Limits
		kind  error
		msg   string
	}{
		{"empty input", nil, Limits{}, ErrFormat, "not a ZIP archive: the input is empty"},
		{"HTML error page",
			[]byte("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head></html>"), Limits{},
			ErrFormat, `not a ZIP archive (input starts with "<!DOCTYPE html>\n<html><head><title>502 B…"): the server sent an error page instead of an archive`},
		{"JSON error reply", []byte(`{"error":"No data received from worker","status":502}`), Limits{},
			ErrFormat, "the server sent a JSON reply instead of an archive"},
		{"binary garbage", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, Limits{},
			ErrFormat, `not a ZIP archive (input starts with "\x1f\x8b\b\x00\x00\x00\x00\x00")`},
		{"short input", []byte("PK"), Limits{}, ErrFormat, "archive truncated"},
		{"CRC error in stored data",
			patch(stored, bytes.Index(stored, text)+10, 'X'), Limits{},
			ErrChecksum, `entry "s.bin" is corrupt: its content has CRC-32`},
		{"CRC error in data descriptor",
			patch(described, descriptorAt(described)+4, 0, 0, 0, 0), Limits{},
			ErrChecksum, `entry "d.txt" is corrupt`},
		{"data descriptor with wrong sizes",
			patch(described, descriptorAt(described)+8, 1), Limits{},
			ErrFormat, `entry "d.txt": no data descriptor matching`},
		{"corrupt DEFLATE data", patch(rawDeflate, localLen+len("r.txt")+9+5, 0xff, 0xff, 0xff, 0xff), Limits{},
			ErrFormat, `corrupt DEFLATE data in entry "r.txt"`},
		{"STORED with data descriptor",
			makeZip(t, file{name: "s", data: text, method: Store}), Limits{},
			ErrFormat, `entry "s" is STORED with a data descriptor (flag bit 3)`},
		{"unsupported method",
			makeZip(t, file{name: "b.bz2", data: text, method: 12, raw: true}), Limits{},
			ErrFormat, `entry "b.bz2" uses compression method 12`},
		{"encrypted",
			makeZip(t, file{name: "e", data: text, method: Store, raw: true, flags: 1}), Limits{},
			ErrFormat, `entry "e" is encrypted`},
		{"entry count limit", two, Limits{MaxEntries: 1},
			ErrLimit, "archive has more than 1 entries (limit MaxEntries)"},
		{"declared entry size over limit", stored, Limits{MaxEntrySize: 100},
			ErrLimit, `entry "s.bin" declares 16000 bytes, more than 100 (limit MaxEntrySize)`},
		{"total size limit", two, Limits{MaxTotalSize: 20000},
			ErrLimit, `archive content is larger than 20000 bytes in total at entry "two" (limit MaxTotalSize)`},
		{"entry larger than declared",
			patch(rawDeflate, 22, 0x10, 0, 0, 0), Limits{},
			ErrFormat, `entry "r.txt" decompresses to more than the 16 bytes its header declares`},
		{"compressed size smaller than the data",
			patch(rawDeflate, 18, 0x10, 0, 0, 0), Limits{},
			ErrFormat, `entry "r.txt": the DEFLATE data ends after`},
		{"central directory name differs",
			patchCentral(t, two, 1, func(c []byte) { c[centralLen+1] = 'X' }), Limits{},
			ErrFormat, `central directory does not match the archive's entries: entry 2 ("two") is listed with name "tXo"`},
		{"central directory CRC differs",
			patchCentral(t, two, 0, func(c []byte) { c[16] ^= 1 }), Limits{},
			ErrFormat, `entry 1 ("one") is listed with CRC-32`},
		{"central directory size differs",
			patchCentral(t, two, 0, func(c []byte) { c[24] ^= 1 }), Limits{},
			ErrFormat, `entry 1 ("one") is listed with sizes`},
		{"central directory offset differs",
			patchCentral(t, two, 1, func(c []byte) { c[42] ^= 1 }), Limits{},
			ErrFormat, `entry 2 ("two") is listed with offset`},
		{"central directory flags differ",
			patchCentral(t, two, 1, func(c []byte) { c[8] |= 0x09 }), Limits{},
			ErrFormat, `entry 2 ("two") is listed with flags 0x0009 (the entry has 0x0000)`},
		{"end record count differs",
			patch(two, len(two)-endLen+8, 1, 0, 1, 0), Limits{},
			ErrFormat, "the end record counts 1 entries, the directory has 2"},
		{"end record offset differs",
			patch(two, len(two)-endLen+16, 0, 0), Limits{},
			ErrFormat, "the end record puts the directory at offset"},
		{"central directory lists fewer entries",
			dropCentral(t, two), Limits{},
			ErrFormat, "it lists 1 entries, the archive has 2"},
		{"trailing data", append(bytes.Clone(two), "junk"...), Limits{},
			ErrFormat, "unexpected data after the end of the archive"},
		{"multi-disk", patch(two, len(two)-endLen+4, 1), Limits{},
			ErrFormat, "multi-disk (split) archives are not supported"},
		{"directory entry with content",
			renameAll(stored, "s.bin", "sdir/"), Limits{},
			ErrFormat, `directory entry "sdir/" has 16000 bytes of content`},
		{"garbage between entries",
			patch(two, localLen+len("one")+9+len(text), 'x'), Limits{},
			ErrFormat, `unexpected record signature 0x04034b78 at offset 16042 after entry "one"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readArchive(tt.input, tt.lim)
			if err == nil {
				t.Fatal("read succeeded, want an error")
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.msg)
			}
		})
	}
}

// renameAll returns data with every occurrence of the name from replaced by
// to, which must have the same length.
func renameAll(data []byte, from, to string) []byte {
	return bytes.ReplaceAll(data, []byte(from), []byte(to))
}

// descriptorAt returns the offset of the last data descriptor signature.
func descriptorAt(data []byte) int {
	return bytes.LastIndex(data, []byte("PK\x07\x08"))
}

// patchCentral returns a copy of data with the i-th central directory header
// changed by f.
func patchCentral(tb testing.TB, data []byte, i int, f func([]byte)) []byte {
	tb.Helper()
	out := bytes.Clone(data)
	_, off := endRecord(tb, out)
	for ; i > 0; i-- {
		off += centralLen + int(le16(out[off+28:])) + int(le16(out[off+30:])) + int(le16(out[off+32:]))
	}
	f(out[off:])
	return out
}

// dropCentral returns data with its last central directory header removed
// and the end record adjusted to match.
func dropCentral(tb testing.TB, data []byte) []byte {
	tb.Helper()
	end, cd := endRecord(tb, data)
	last := cd
	for off := cd; off < end; {
		last = off
		off += centralLen + int(le16(data[off+28:])) + int(le16(data[off+30:])) + int(le16(data[off+32:]))
	}
	out := append(bytes.Clone(data[:last]), data[end:]...)
	e := len(out) - endLen
	n := le16(out[e+10:]) - 1
	out[e+8], out[e+9], out[e+10], out[e+11] = byte(n), byte(n>>8), byte(n), byte(n>>8)
	size := uint32(last - cd)
	copy(out[e+12:], []byte{byte(size), byte(size >> 8), byte(size >> 16), byte(size >> 24)})
	return out
}

// TestZipBomb reads high-ratio DEFLATE entries whose headers do not give
// their size (data descriptors), so only the enforced limits stop them.
func TestZipBomb(t *testing.T) {
	zeros := make([]byte, 64<<20)
	bomb := makeZip(t, file{name: "bomb", data: zeros, method: Deflate})
	t.Logf("bomb: %d bytes expanding to %d", len(bomb), len(zeros))
	many := makeZip(t,
		file{name: "z1", data: zeros[:4<<20], method: Deflate},
		file{name: "z2", data: zeros[:4<<20], method: Deflate},
		file{name: "z3", data: zeros[:4<<20], method: Deflate})
	tests := []struct {
		name  string
		input []byte
		lim   Limits
		msg   string
		max   int
	}{
		{"entry size", bomb, Limits{MaxEntrySize: 8 << 20},
			`entry "bomb" is larger than 8388608 bytes (limit MaxEntrySize)`, 8 << 20},
		{"total size", many, Limits{MaxTotalSize: 10 << 20},
			`archive content is larger than 10485760 bytes in total at entry "z3" (limit MaxTotalSize)`, 10 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := NewReader(bytes.NewReader(tt.input), tt.lim)
			var total int
			var err error
			for err == nil {
				if _, err = z.Next(); err != nil {
					break
				}
				var n int64
				n, err = io.Copy(io.Discard, readerOnly{z})
				total += int(n)
			}
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want ErrLimit containing %q", err, tt.msg)
			}
			if total > tt.max {
				t.Errorf("handed out %d bytes, more than the limit %d", total, tt.max)
			}
			if _, err2 := z.Next(); err2 != err {
				t.Errorf("Next after the error returned %v, want the same error", err2)
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	text := bytes.Repeat([]byte("temperature,33.1\n"), 40)
	data := makeZip(t,
		file{name: "dir/", mode: fs.ModeDir | 0o755},
		file{name: "dir/a", data: text, method: Deflate},
		file{name: "dir/b", data: text[:300], method: Store, raw: true},
		file{name: "dir/c", data: text, method: Deflate, raw: true})
	if _, _, err := readArchive(data, Limits{}); err != nil {
		t.Fatalf("whole archive: %v", err)
	}
	for cut := range len(data) {
		_, _, err := readArchive(data[:cut], Limits{})
		if err == nil {
			t.Errorf("cut at %d of %d: read succeeded", cut, len(data))
			continue
		}
		if !errors.Is(err, ErrFormat) {
			t.Errorf("cut at %d: %v is not ErrFormat", cut, err)
		}
		if cut > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: %v is not io.ErrUnexpectedEOF", cut, err)
		}
	}
	// A cut inside an entry's data names the entry.
	cut := bytes.Index(data, text[:300]) + 100
	if _, _, err := readArchive(data[:cut], Limits{}); err == nil ||
		err.Error() != `archive truncated in entry "dir/b": unexpected EOF` {
		t.Errorf("cut inside dir/b: %v", err)
	}
}

func TestReaderUsage(t *testing.T) {
	data := makeZip(t, file{name: "a", data: []byte("x"), method: Deflate})
	z := NewReader(bytes.NewReader(data), Limits{})
	if n, err := z.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read before Next: %d, %v; want 0, io.EOF", n, err)
	}
	if _, err := z.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := z.Finish(); err == nil || !strings.Contains(err.Error(), "before Next returned io.EOF") {
		t.Errorf("Finish before the end: %v", err)
	}
	if _, err := z.Next(); err != io.EOF {
		t.Fatalf("Next: %v, want io.EOF", err)
	}
	if _, err := z.Next(); err != io.EOF {
		t.Errorf("second Next at the end: %v, want io.EOF", err)
	}
	if _, err := z.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := z.Finish(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Finish: %v", err)
	}
}
