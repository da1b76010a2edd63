package store

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestParallelDeflater(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	line := []byte("time,od,temp\n2026-01-01T00:00:00,0.512,30.1\n")
	text := func(n int) []byte { return bytes.Repeat(line, n/len(line)+1)[:n] }
	tests := []struct {
		name  string
		data  []byte
		write int // bytes per Write call
	}{
		{"empty", nil, 1},
		{"one byte", []byte{7}, 1},
		{"under one segment", text(deflateSegment - 1), 4096},
		{"one segment", random(deflateSegment), deflateSegment},
		{"one segment and a byte", text(deflateSegment + 1), 100_000},
		{"many segments, odd writes", append(text(5*deflateSegment), random(deflateSegment/2+7)...), 77_777},
		{"many segments, one write", text(9*deflateSegment + 3), 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var z bytes.Buffer
			d := newParallelDeflater(&z, 1)
			for p := tt.data; len(p) > 0; {
				n := min(tt.write, len(p))
				if _, err := d.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			// The standard library's inflater is an independent reader.
			got, err := io.ReadAll(flate.NewReader(bytes.NewReader(z.Bytes())))
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("inflated %d bytes, %v; want the %d bytes written", len(got), err, len(tt.data))
			}
			if bytes.HasPrefix(tt.data, line) && z.Len() > len(tt.data)/10 {
				t.Errorf("text compressed to %d bytes from %d", z.Len(), len(tt.data))
			}
			pythonInflate(t, z.Bytes(), tt.data)
		})
	}
}

// pythonInflate checks the stream with zlib, as Python's zipfile reads it.
func pythonInflate(t *testing.T, z, want []byte) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required for the zlib cross-check; install it with `apt-get install python3`")
		}
		t.Log("python3 not found: zlib cross-check not run")
		return
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "z"), filepath.Join(dir, "plain")
	if err := os.WriteFile(in, z, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `import sys, zlib
d = zlib.decompressobj(-15)
data = d.decompress(open(sys.argv[1], "rb").read()) + d.flush()
assert d.eof, "stream has no final block"
assert not d.unused_data, "bytes after the final block"
open(sys.argv[2], "wb").write(data)`
	if msg, err := exec.Command(py, "-c", script, in, out).CombinedOutput(); err != nil {
		t.Fatalf("python zlib: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("python inflated %d bytes, %v; want %d", len(got), err, len(want))
	}
}

type failWriter struct{ after int }

var errDiskFull = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errDiskFull
	}
	return len(p), nil
}

func TestParallelDeflaterWriteError(t *testing.T) {
	for _, n := range []int{100, 4 * deflateSegment} {
		d := newParallelDeflater(&failWriter{after: 10}, 1)
		// Write may see the failure already, or leave it to Close.
		if _, err := d.Write(bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, n/7)); err != nil && !errors.Is(err, errDiskFull) {
			t.Fatal(err)
		}
		if err := d.Close(); !errors.Is(err, errDiskFull) {
			t.Errorf("%d bytes: Close = %v, want %v", n, err, errDiskFull)
		}
	}
}

// Once out has failed, Write says so within a few segments rather than
// compressing the rest of the entry: the writer goroutine takes a segment
// from the queue only after writing the one before, so the caller cannot
// get more than the queue's length past the failure.
func TestParallelDeflaterWriteStopsAfterAFailure(t *testing.T) {
	d := newParallelDeflater(&failWriter{}, 1)
	segment := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, deflateSegment/8)
	limit := 3*readAheadWorkers() + 10
	var err error
	for i := 0; i < limit && err == nil; i++ {
		_, err = d.Write(segment)
	}
	if !errors.Is(err, errDiskFull) {
		t.Errorf("after %d segments Write = %v, want %v", limit, err, errDiskFull)
	}
	if err := d.Close(); !errors.Is(err, errDiskFull) {
		t.Errorf("Close = %v, want %v", err, errDiskFull)
	}
}
