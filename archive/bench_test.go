package archive

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/klauspost/compress/flate"
)

// sensorRows fills p with CSV rows like the readings a Pioreactor database
// holds: compressible, but not trivially.
type sensorRows struct {
	rng  *rand.Rand
	row  int
	line []byte
}

func (s *sensorRows) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.line) == 0 {
			s.row++
			b := strconv.AppendInt(nil, int64(s.row), 10)
			m := s.row / 60 % 60
			b = append(b, "|2026-08-04T16:"...)
			b = append(b, byte('0'+m/10), byte('0'+m%10), ':', byte('0'+s.row%60/10), byte('0'+s.row%10))
			b = append(b, "|worker"...)
			b = strconv.AppendInt(b, int64(s.row%4+1), 10)
			b = append(b, "|exp-2026-08|od_reading|"...)
			b = strconv.AppendFloat(b, 0.05+s.rng.Float64()/50, 'f', 6, 64)
			b = append(b, '|')
			b = strconv.AppendFloat(b, 30+s.rng.Float64()*3, 'f', 2, 64)
			s.line = append(b, '\n')
		}
		c := copy(p[n:], s.line)
		s.line = s.line[c:]
		n += c
	}
	return n, nil
}

// benchArchive writes an archive of about size uncompressed bytes: one big
// database-like entry and 100 small files, DEFLATE at the default level as
// Pioreactor's zipfile writes it. It returns the archive and its
// uncompressed size.
func benchArchive(b *testing.B, size int64) ([]byte, int64) {
	b.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	w.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.DefaultCompression)
	})
	src := &sensorRows{rng: rand.New(rand.NewPCG(7, 7))}
	var total int64
	add := func(name string, n int64) {
		fw, err := w.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(fw, src, n); err != nil {
			b.Fatal(err)
		}
		total += n
	}
	for i := range 100 {
		add(fmt.Sprintf("storage/calibrations/od90/c%d.yaml", i), 4<<10)
	}
	add("storage/pioreactor.sqlite", size-total)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), total
}

// BenchmarkRead reads a 256 MiB (uncompressed) archive with this package's
// Reader and with archive/zip.NewReader on the same bytes.
func BenchmarkRead(b *testing.B) {
	data, total := benchArchive(b, 256<<20)
	b.Logf("archive: %d bytes compressed, %d uncompressed", len(data), total)
	b.Run("Reader", func(b *testing.B) {
		b.SetBytes(total)
		b.ReportAllocs()
		buf := make([]byte, 32<<10)
		for b.Loop() {
			z := NewReader(bytes.NewReader(data), Limits{})
			for {
				if _, err := z.Next(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, readerOnly{z}, buf); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := z.Finish(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		b.SetBytes(total)
		b.ReportAllocs()
		buf := make([]byte, 32<<10)
		for b.Loop() {
			zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				b.Fatal(err)
			}
			for _, f := range zr.File {
				rc, err := f.Open()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, readerOnly{rc}, buf); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		}
	})
}

// BenchmarkEntrySize shows that the Reader's memory does not grow with the
// size of an entry: compare B/op across the sub-benchmarks.
func BenchmarkEntrySize(b *testing.B) {
	for _, size := range []int64{1 << 20, 16 << 20, 64 << 20} {
		data := makeZip(b, file{name: "db", data: mustRead(b, &sensorRows{rng: rand.New(rand.NewPCG(1, 1))}, size),
			method: Deflate})
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			buf := make([]byte, 32<<10)
			for b.Loop() {
				z := NewReader(bytes.NewReader(data), Limits{})
				if _, err := z.Next(); err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, readerOnly{z}, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func mustRead(b *testing.B, r io.Reader, n int64) []byte {
	b.Helper()
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		b.Fatal(err)
	}
	return p
}
