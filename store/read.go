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

// entryReader streams an entry's content blob by blob, verifying each blob
// and, at the end, the size and CRC-32 the manifest records.
type entryReader struct {
	ctx   context.Context
	blobs *blobReader
	e     *Entry
	next  int         // next chunk, for chunked entries
	tree  *treeCursor // for entries stored page by page
	buf   []byte
	off   int
	crc   hash.Hash32
	n     int64
}

// OpenEntry returns a reader of an entry's content. Damage is reported as a
// read error wrapping ErrDamaged or fs.ErrNotExist, naming the entry.
//
// The entry's blobs are found in the repository's whole index, read on
// first use and kept for every later OpenEntry. To read the entries of one
// version without holding the whole index, use ForVersion; to read one
// entry alone, OpenEntryAlone.
func (r *Repository) OpenEntry(ctx context.Context, e *Entry) io.Reader {
	return r.openEntry(ctx, e, r.newBlobReader())
}

// OpenEntryAlone is OpenEntry for reading a single entry, such as a
// version's metadata before a restore: it reads the index keeping only the
// places of this entry's blobs (once more for each tree of pages), so its
// memory does not grow with the repository's history, but each call reads
// every index object.
func (r *Repository) OpenEntryAlone(ctx context.Context, e *Entry) io.Reader {
	return r.openEntry(ctx, e, r.newBlobReaderOn(r.neededIndex([]*Entry{e})))
}

// VersionReader reads the entries of one version, finding their blobs
// in the places that version needs only: loaded on the first read, once
// for all its entries, and about 20 bytes a blob of the version, however
// long the repository's history. Like OpenEntry, each reader verifies
// every blob and the entry's size and CRC-32.
type VersionReader struct {
	r   *Repository
	src *neededIndex
}

// ForVersion returns a VersionReader of v's entries: the way to read a
// version's files one by one, as a restore of a folder does.
func (r *Repository) ForVersion(v *Version) *VersionReader {
	var files []*Entry
	for i := range v.Entries {
		if !v.Entries[i].IsDir() {
			files = append(files, &v.Entries[i])
		}
	}
	return &VersionReader{r: r, src: r.neededIndex(files)}
}

// OpenEntry returns a reader of the content of e, which must be an entry
// of the version (a blob the version does not use costs a read of the
// whole index).
func (vr *VersionReader) OpenEntry(ctx context.Context, e *Entry) io.Reader {
	return vr.r.openEntry(ctx, e, vr.r.newBlobReaderOn(vr.src))
}

func (r *Repository) openEntry(ctx context.Context, e *Entry, br *blobReader) io.Reader {
	er := &entryReader{ctx: ctx, blobs: br, e: e, crc: crc32.NewIEEE()}
	if e.Tree != nil {
		er.tree = &treeCursor{blobs: er.blobs, root: *e.Tree}
	}
	return er
}

func (er *entryReader) Read(p []byte) (int, error) {
	for er.off == len(er.buf) {
		if err := er.ctx.Err(); err != nil {
			return 0, err
		}
		var err error
		if er.tree != nil {
			er.buf, err = er.tree.next(er.ctx, er.buf[:0])
		} else if er.next < len(er.e.Chunks) {
			er.buf, err = er.blobs.read(er.ctx, er.e.Chunks[er.next], er.buf[:0])
			er.next++
		} else {
			err = io.EOF
		}
		if err == io.EOF {
			if er.n != er.e.Size || er.crc.Sum32() != er.e.CRC32 {
				return 0, fmt.Errorf("entry %q: content does not match its recorded size and CRC-32 (%w)", er.e.Name, ErrDamaged)
			}
			return 0, io.EOF
		}
		if err != nil {
			return 0, fmt.Errorf("entry %q: %w", er.e.Name, err)
		}
		er.off = 0
		er.crc.Write(er.buf)
		er.n += int64(len(er.buf))
	}
	n := copy(p, er.buf[er.off:])
	er.off += n
	return n, nil
}

// treeCursor walks a page tree depth first, yielding its content piece by
// piece. It holds one decoded node per level, in buffers reused from node
// to node.
type treeCursor struct {
	blobs   *blobReader
	root    ChunkID
	started bool
	stack   []cursorNode
	leaves  *leafResolver
}

type cursorNode struct {
	node  []byte
	items []treeItem
	pos   int
}

// next appends the next piece of content to buf, or returns io.EOF.
func (c *treeCursor) next(ctx context.Context, buf []byte) ([]byte, error) {
	it, err := c.nextItem(ctx)
	if err != nil {
		return buf, err
	}
	if it.kind == itemInline {
		return append(buf, it.inline...), nil
	}
	return c.blobs.read(ctx, it.id, buf)
}

// nextItem returns the next leaf item: a data blob reference or inline
// bytes. It returns io.EOF at the end of the tree. Inline bytes are valid
// until the next call.
func (c *treeCursor) nextItem(ctx context.Context) (treeItem, error) {
	if !c.started {
		c.started = true
		if err := c.push(ctx, c.root); err != nil {
			return treeItem{}, err
		}
	}
	for len(c.stack) > 0 {
		top := &c.stack[len(c.stack)-1]
		if top.pos == len(top.items) {
			c.stack = c.stack[:len(c.stack)-1]
			continue
		}
		it := top.items[top.pos]
		top.pos++
		if it.kind != itemChild {
			return it, nil
		}
		if len(c.stack) >= 16 {
			return treeItem{}, fmt.Errorf("page tree deeper than 16 levels (%w)", ErrDamaged)
		}
		if err := c.push(ctx, it.id); err != nil {
			return treeItem{}, err
		}
	}
	return treeItem{}, io.EOF
}

func (c *treeCursor) push(ctx context.Context, id ChunkID) error {
	if c.leaves == nil {
		c.leaves = newLeafResolver(c.blobs)
	}
	// Reuse the buffers of the node last held at this level.
	var n cursorNode
	if len(c.stack) < cap(c.stack) {
		n = c.stack[:len(c.stack)+1][len(c.stack)]
	}
	node, err := c.blobs.read(ctx, id, n.node[:0])
	if err != nil {
		return err
	}
	n.node = node
	n.items, err = readNode(ctx, node, n.items[:0], c.leaves)
	n.pos = 0
	if err != nil {
		return fmt.Errorf("tree node %s: %w", id, err)
	}
	c.stack = append(c.stack, n)
	return nil
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
	var d *parallelDeflater // the open entry's compressor
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		d = newParallelDeflater(out, flate.BestSpeed)
		return d, nil
	})
	// An archive given up midway leaves its open entry's compressor
	// running, with segments in flight that it would still write to w.
	defer func() {
		if d != nil {
			d.abort()
		}
	}()
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
