package simulator

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPyZipZip64 covers the ZIP64 paths: a member announced as larger than
// 2 GiB gets the ZIP64 local header Python writes, and more than 65535
// members need the ZIP64 end records. Go's reader and, when present,
// CPython's zipfile must both read the result.
func TestPyZipZip64(t *testing.T) {
	tests := []struct {
		name    string
		members int
		hint    int64
	}{
		{"large member hint", 1, 3 << 30},
		{"many members", 70000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mf memFile
			z := newPyZip(&mf)
			now := time.Now()
			for i := range tt.members {
				e := pyEntry{name: fmt.Sprintf("d%05d/", i), method: methodStored, extAttr: 0o40775<<16 | dosDirFlag, mtime: now}
				if tt.hint > 0 {
					e = pyEntry{name: "big.bin", method: methodDeflated, extAttr: 0o100644 << 16, mtime: now, size: tt.hint}
				}
				if err := z.add(e, strings.NewReader("content")); err != nil {
					t.Fatal(err)
				}
			}
			if err := z.close(); err != nil {
				t.Fatal(err)
			}
			files := readZip(t, mf.buf)
			if len(files) != tt.members {
				t.Fatalf("Go reads %d members, want %d", len(files), tt.members)
			}
			if tt.hint > 0 {
				if got := string(member(t, files[0])); got != "content" || files[0].ReaderVersion != zip64Version {
					t.Errorf("content %q, version %d; want ZIP64 version %d", got, files[0].ReaderVersion, zip64Version)
				}
			}
			py, err := exec.LookPath("python3")
			if err != nil {
				return // the zipfile cross-check test reports a missing python3
			}
			p := filepath.Join(t.TempDir(), "x.zip")
			os.WriteFile(p, mf.buf, 0o644)
			out, err := exec.Command(py, "-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(len(z.infolist()), z.testzip())", p).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != fmt.Sprintf("%d None", tt.members) {
				t.Errorf("python zipfile: %v %s", err, out)
			}
		})
	}
}

func TestPyZipGrowthDetected(t *testing.T) {
	// A member sized small that turns out larger than 2 GiB cannot be
	// written without ZIP64; Python raises, so must we. Simulated with a
	// reader that reports more data than the hint allowed.
	var mf memFile
	z := newPyZip(&mf)
	e := pyEntry{name: "db", method: methodDeflated, extAttr: 0o100644 << 16, mtime: time.Now(), size: 10}
	err := z.add(e, &zeroReader{n: zip64Limit + 1})
	if err == nil || !strings.Contains(err.Error(), "changed while it was being archived") {
		t.Errorf("err = %v", err)
	}
}

type zeroReader struct{ n int64 }

func (r *zeroReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n)
	clear(p[:k])
	r.n -= k
	return int(k), nil
}

func TestMemFileSeek(t *testing.T) {
	var m memFile
	m.Write([]byte("hello world"))
	m.Seek(0, 0)
	m.Write([]byte("J"))
	m.Seek(-5, 2)
	m.Write([]byte("W"))
	if !bytes.Equal(m.buf, []byte("Jello World")) {
		t.Errorf("buf %q", m.buf)
	}
	if _, err := m.Seek(-100, 1); err == nil {
		t.Error("negative seek succeeded")
	}
	if _, err := m.Seek(0, 9); err == nil {
		t.Error("bad whence succeeded")
	}
}
