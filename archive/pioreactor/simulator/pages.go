package simulator

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// PageDiff compares two versions of one SQLite database file page by page,
// as [DiffPages] measures it.
type PageDiff struct {
	// PageSize is the database's page size in bytes.
	PageSize int
	// OldPages and NewPages are the files' lengths in pages.
	OldPages, NewPages int64
	// Changed counts pages present in both files whose bytes differ; Added
	// counts the new file's pages past the old file's end.
	Changed, Added int64
}

// Fraction is the share of the new file's pages that changed or were
// added.
func (d PageDiff) Fraction() float64 {
	if d.NewPages == 0 {
		return 0
	}
	return float64(d.Changed+d.Added) / float64(d.NewPages)
}

// DiffPages compares the SQLite database files oldPath and newPath in
// page-size blocks (SQLite never moves a page: page N is always at offset
// (N-1)·page_size) and writes the new content of every changed or added
// page, in file order, to changed unless it is nil. The page size is read
// from the new file's header; both files must be SQLite databases with the
// same page size. Memory stays at two pages whatever the file sizes.
func DiffPages(oldPath, newPath string, changed io.Writer) (PageDiff, error) {
	var d PageDiff
	nf, err := os.Open(newPath)
	if err != nil {
		return d, fmt.Errorf("diff pages: %w", err)
	}
	defer nf.Close()
	of, err := os.Open(oldPath)
	if err != nil {
		return d, fmt.Errorf("diff pages: %w", err)
	}
	defer of.Close()
	if d.PageSize, err = pageSize(nf, newPath); err != nil {
		return d, err
	}
	oldSize, err := pageSize(of, oldPath)
	if err != nil {
		return d, err
	}
	if oldSize != d.PageSize {
		return d, fmt.Errorf("diff pages: %s has %d-byte pages, %s %d-byte pages; compare two versions of one database", oldPath, oldSize, newPath, d.PageSize)
	}
	nr, or := bufio.NewReaderSize(nf, 1<<20), bufio.NewReaderSize(of, 1<<20)
	np, op := make([]byte, d.PageSize), make([]byte, d.PageSize)
	oldDone := false
	for {
		n, err := io.ReadFull(nr, np)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return d, fmt.Errorf("diff pages: read %s at page %d (%d of %d bytes): %w", newPath, d.NewPages+1, n, d.PageSize, err)
		}
		d.NewPages++
		differs := true
		if !oldDone {
			m, err := io.ReadFull(or, op)
			switch {
			case errors.Is(err, io.EOF):
				oldDone = true
			case err != nil:
				return d, fmt.Errorf("diff pages: read %s at page %d (%d of %d bytes): %w", oldPath, d.OldPages+1, m, d.PageSize, err)
			default:
				d.OldPages++
				differs = !bytes.Equal(np, op)
				if differs {
					d.Changed++
				}
			}
		}
		if oldDone {
			d.Added++
		}
		if differs && changed != nil {
			if _, err := changed.Write(np); err != nil {
				return d, fmt.Errorf("diff pages: write changed page %d: %w", d.NewPages, err)
			}
		}
	}
	if !oldDone {
		for {
			if _, err := io.ReadFull(or, op); err != nil {
				break
			}
			d.OldPages++
		}
	}
	return d, nil
}

// pageSize reads the page size from a SQLite database header (bytes 16-17,
// big-endian; 1 means 65536) and rewinds f.
func pageSize(f *os.File, path string) (int, error) {
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("diff pages: %s is not a SQLite database (header: %w)", path, err)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return 0, fmt.Errorf("diff pages: %s is not a SQLite database (no \"SQLite format 3\" header)", path)
	}
	size := int(binary.BigEndian.Uint16(h[16:18]))
	if size == 1 {
		size = 65536
	}
	if size < 512 || size&(size-1) != 0 {
		return 0, fmt.Errorf("diff pages: %s has page size %d in its header, not a power of two from 512 to 65536", path, size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("diff pages: %w", err)
	}
	return size, nil
}
