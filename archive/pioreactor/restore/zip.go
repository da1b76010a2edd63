package restore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/piosnap/piosnap/archive"
	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/store"
)

// maxMetadataSize bounds the metadata entry read into memory.
const maxMetadataSize = 1 << 20

// CheckVersion checks a version the way the unit's import will (no
// absolute, traversing or symlink entries; metadata naming the unit) and
// more strictly (archive.CheckEntries). When rewrite is set and the metadata
// names another unit, it returns the replacement content of the metadata
// entries, naming target.
func CheckVersion(ctx context.Context, repo *store.Repository, v *store.Version, target string, rewrite bool) (map[string][]byte, error) {
	hdrs := make([]archive.Header, len(v.Entries))
	var meta *store.Entry
	for i := range v.Entries {
		e := &v.Entries[i]
		hdrs[i] = archive.Header{Name: e.Name, Method: archive.Deflate, Modified: e.Modified, CRC32: e.CRC32, Size: uint64(e.Size), Mode: e.Mode}
		if e.IsDir() {
			hdrs[i].Method = archive.Store
		}
		if e.Name == pioreactor.MetadataFile {
			meta = e // the last copy is the one the unit reads
		}
	}
	if err := archive.CheckEntries(hdrs, archive.Limits{}); err != nil {
		return nil, err
	}
	if meta == nil {
		// A pre-25.11 export: the unit accepts it without a name check.
		return nil, nil
	}
	if meta.Size > maxMetadataSize {
		return nil, fmt.Errorf("metadata entry %s is %d bytes, more than %d", meta.Name, meta.Size, maxMetadataSize)
	}
	raw, err := io.ReadAll(repo.OpenEntryAlone(ctx, meta))
	if err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	m, err := pioreactor.ParseMetadata(raw)
	if err != nil {
		return nil, fmt.Errorf("metadata entry %s: %w (the unit would refuse the archive)", meta.Name, err)
	}
	if m.Name == "" || m.Name == target {
		return nil, nil
	}
	if !rewrite {
		return nil, fmt.Errorf("its metadata names unit %q, and %s refuses an archive prepared for another unit: pass --to %s --rewrite-hostname to clone it anyway", m.Name, target, target)
	}
	m.Name = target
	m.IsLeader = m.LeaderHostname == target
	return map[string][]byte{pioreactor.MetadataFile: m.Marshal()}, nil
}

// Source rebuilds a version's archive from the repository, with the
// content of some entries replaced. By default entries are STORED, so the
// archive's exact length is known from the manifest before anything is
// read, and it is produced in one pass as it is sent (see store.StoredZip).
// A DEFLATE archive is about a quarter of the size for a database; its
// length is only known once it is compressed, so it is compressed once into
// an unlinked temporary file, which is then sent.
type Source struct {
	write  func(ctx context.Context, w io.Writer) error
	length int64
	// checked is set when producing the length already read and verified
	// every chunk.
	checked bool
	// close releases the temporary file, if any.
	close func() error
	// primed is a stream started by Prime, handed out by the next Stream.
	primed *stream
}

// stream is an archive being produced into a pipe.
type stream struct {
	body io.ReadCloser
	wait func() error
}

// NewSource lays out the archive of v with the entries named in replace
// replaced; with deflate, it writes the archive to a temporary file in
// $TMPDIR, reading and verifying every chunk. Call Close when done.
func NewSource(ctx context.Context, repo *store.Repository, v *store.Version, replace map[string][]byte, deflate bool) (*Source, error) {
	if !deflate {
		sz, err := repo.StoredZip(v, replace)
		if err != nil {
			return nil, err
		}
		return &Source{write: sz.WriteTo, length: sz.Size(), close: func() error { return nil }}, nil
	}
	f, err := os.CreateTemp("", "piosnap-restore-*.zip")
	if err != nil {
		return nil, fmt.Errorf("temporary file for the compressed archive: %w", err)
	}
	// Unlinked at once: the space is freed when the file is closed, even if
	// piosnap is killed.
	os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 1<<20)
	err = repo.WriteZipWith(ctx, bw, v, replace)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	length := st.Size()
	return &Source{
		write: func(ctx context.Context, w io.Writer) error {
			_, err := io.Copy(w, store.ContextReader(ctx, io.NewSectionReader(f, 0, length)))
			return err
		},
		length: length, checked: true, close: f.Close,
	}, nil
}

// Size returns the archive's exact length.
func (z *Source) Size() int64 { return z.length }

// Check rebuilds the archive without keeping it, which reads and verifies
// every chunk, unless that was done already.
func (z *Source) Check(ctx context.Context) error {
	if z.checked {
		return nil
	}
	return z.write(ctx, io.Discard)
}

// Prime starts producing the archive before it is asked for, so that the
// index is read and the first chunks are read, decompressed and verified
// while the caller does something else (the safety snapshot, the check that
// the unit is ready): the producer stops once its read-ahead is full, in
// the memory a stream uses anyway. The next Stream returns this stream;
// Close ends it if no Stream did.
func (z *Source) Prime(ctx context.Context) {
	if z.primed == nil {
		body, wait := z.produce(ctx)
		z.primed = &stream{body: body, wait: wait}
	}
}

// Stream returns a reader of the archive, produced as it is read in
// constant memory. Close the reader, then call wait for the writer's error.
func (z *Source) Stream(ctx context.Context) (body io.ReadCloser, wait func() error) {
	if p := z.primed; p != nil {
		z.primed = nil
		return p.body, p.wait
	}
	return z.produce(ctx)
}

// produce starts writing the archive into a pipe and returns its reading end.
func (z *Source) produce(ctx context.Context) (body io.ReadCloser, wait func() error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		err := z.write(ctx, bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	return pr, func() error { return <-done }
}

// Close ends a primed stream no Stream took and releases the temporary
// file of a DEFLATE archive.
func (z *Source) Close() error {
	if p := z.primed; p != nil {
		z.primed = nil
		p.body.Close()
		_ = p.wait() // io.ErrClosedPipe: nothing read it
	}
	return z.close()
}
