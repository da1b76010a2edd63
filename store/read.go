package store

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
)

// entryReader streams an entry's content chunk by chunk, verifying each chunk
// and, at the end, the size and CRC-32 the manifest records.
type entryReader struct {
	ctx  context.Context
	repo *Repository
	e    *Entry
	next int
	buf  []byte
	off  int
	crc  hash.Hash32
	n    int64
}

// OpenEntry returns a reader of an entry's content. Damage is reported as a
// read error wrapping ErrDamaged or fs.ErrNotExist, naming the entry.
func (r *Repository) OpenEntry(ctx context.Context, e *Entry) io.Reader {
	return &entryReader{ctx: ctx, repo: r, e: e, crc: crc32.NewIEEE()}
}

func (er *entryReader) Read(p []byte) (int, error) {
	for er.off == len(er.buf) {
		if er.next == len(er.e.Chunks) {
			if er.n != er.e.Size || er.crc.Sum32() != er.e.CRC32 {
				return 0, fmt.Errorf("entry %q: content does not match its recorded size and CRC-32 (%w)", er.e.Name, ErrDamaged)
			}
			return 0, io.EOF
		}
		if err := er.ctx.Err(); err != nil {
			return 0, err
		}
		var err error
		er.buf, err = er.repo.ReadChunk(er.ctx, er.e.Chunks[er.next], er.buf[:0])
		if err != nil {
			return 0, fmt.Errorf("entry %q: %w", er.e.Name, err)
		}
		er.off = 0
		er.next++
		er.crc.Write(er.buf)
		er.n += int64(len(er.buf))
	}
	n := copy(p, er.buf[er.off:])
	er.off += n
	return n, nil
}

// WriteZip writes the version as a ZIP archive that Pioreactor's import
// accepts: the same entry names in the same order, directories STORED,
// files DEFLATE with their recorded mode and modification time, and
// byte-identical content. Chunks are read, decompressed and verified ahead
// of the compressor on the other cores. StoredZip writes the same archive
// uncompressed, with its length known in advance.
func (r *Repository) WriteZip(ctx context.Context, w io.Writer, v *Version) error {
	return r.WriteZipWith(ctx, w, v, nil)
}

// WriteZipWith is WriteZip with the content of the entries named in replace
// substituted (their names, modes and times kept), e.g. the metadata of a
// version restored onto another unit.
func (r *Repository) WriteZipWith(ctx context.Context, w io.Writer, v *Version, replace map[string][]byte) error {
	var files []*Entry
	for i := range v.Entries {
		e := &v.Entries[i]
		if _, ok := replace[e.Name]; !ok && !e.IsDir() {
			files = append(files, e)
		}
	}
	ra := r.newReadAhead(ctx, files)
	defer ra.close()
	return writeZip(ctx, w, v, func(e *Entry) io.Reader {
		if content, ok := replace[e.Name]; ok {
			return bytes.NewReader(content)
		}
		return ra.next(e)
	})
}

func writeZip(ctx context.Context, w io.Writer, v *Version, open func(*Entry) io.Reader) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return newParallelDeflater(out, flate.BestSpeed), nil
	})
	for i := range v.Entries {
		e := &v.Entries[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		h := &zip.FileHeader{Name: e.Name, Modified: e.Modified, Method: zip.Deflate}
		h.SetMode(e.Mode)
		if e.IsDir() {
			h.Method = zip.Store
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("write %q: %w", e.Name, err)
		}
		if e.IsDir() {
			continue
		}
		if _, err := io.Copy(fw, open(e)); err != nil {
			return fmt.Errorf("rebuild version %s of %s: %w", v.ShortID(), v.Host, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finish archive: %w", err)
	}
	return nil
}
