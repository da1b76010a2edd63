package archive

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files and the Python-made archives in testdata")

// pythonArchives are the archives testdata/mkzip.py writes that must read cleanly.
var pythonArchives = []string{"unit", "aggregate", "streamed"}

// listing renders what a Reader makes of an archive, for golden files.
func listing(t *testing.T, data []byte) string {
	t.Helper()
	got, hdrs, err := readArchive(data, Limits{})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var b strings.Builder
	for i, h := range hdrs {
		method := map[uint16]string{Store: "stored", Deflate: "deflate"}[h.Method]
		fmt.Fprintf(&b, "%-42s %-7s %7d %08x %-11v %s\n",
			h.Name, method, h.Size, h.CRC32, h.Mode, h.Modified.Format(time.RFC3339))
		if got[i].hdr.Name != h.Name || uint64(len(got[i].data)) != h.Size {
			t.Errorf("entry %d: read %q with %d bytes, central directory says %q with %d",
				i, got[i].hdr.Name, len(got[i].data), h.Name, h.Size)
		}
	}
	fmt.Fprintf(&b, "CheckEntries: %v\n", CheckEntries(hdrs, Limits{}))
	// The last metadata entry is the fresh one.
	for i := len(got) - 1; i >= 0; i-- {
		if path.Base(got[i].hdr.Name) == MetadataName {
			if !bytes.Contains(got[i].data, []byte(`"name": "leader1"`)) {
				t.Errorf("last %s is %q, want the fresh copy", got[i].hdr.Name, got[i].data)
			}
			break
		}
	}
	return b.String()
}

// TestPythonArchives reads archives written by Python's zipfile the way
// Pioreactor writes them (see testdata/mkzip.py) and compares the listings
// with golden files. The archives are committed; when python3 is installed
// they are also written afresh and must give the same listings. Run with
// -update to rewrite both.
func TestPythonArchives(t *testing.T) {
	fresh := ""
	if py, err := exec.LookPath("python3"); err == nil {
		fresh = t.TempDir()
		cmd := exec.Command(py, filepath.Join("testdata", "mkzip.py"), fresh)
		cmd.Env = append(os.Environ(), "TZ=UTC") // zipfile stores local times
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("testdata/mkzip.py: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" || *update {
		t.Fatal("python3 is required to write the Python-made test archives: install it (apt-get install python3)")
	} else {
		t.Log("python3 not found: reading only the committed archives")
	}
	for _, name := range append(pythonArchives, "streamed_stored") {
		zipPath := filepath.Join("testdata", name+".zip")
		if *update {
			data, err := os.ReadFile(filepath.Join(fresh, name+".zip"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(zipPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	unit, err := os.ReadFile(filepath.Join("testdata", "unit.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("storage/pioreactor.sqlite\x01\x00\x10\x00")) {
		t.Error("unit.zip lacks the ZIP64 local extra field on storage/pioreactor.sqlite")
	}
	for _, name := range pythonArchives {
		t.Run(name, func(t *testing.T) {
			golden := filepath.Join("testdata", name+".golden")
			data, err := os.ReadFile(filepath.Join("testdata", name+".zip"))
			if err != nil {
				t.Fatal(err)
			}
			got := listing(t, data)
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("listing of %s.zip differs from %s:\n%s", name, golden, got)
			}
			if fresh == "" {
				return
			}
			data, err = os.ReadFile(filepath.Join(fresh, name+".zip"))
			if err != nil {
				t.Fatal(err)
			}
			if got := listing(t, data); got != string(want) {
				t.Errorf("listing of a fresh %s.zip differs from %s:\n%s", name, golden, got)
			}
		})
	}
	t.Run("streamed_stored", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join("testdata", "streamed_stored.zip"))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = readArchive(data, Limits{})
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), `entry "a.txt" is STORED with a data descriptor`) {
			t.Errorf("got %v, want ErrFormat for a STORED entry with a data descriptor", err)
		}
	})
}
