package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// indexPrefix is where index objects live in the backend.
const indexPrefix = "index/"

// indexMagic starts the plain content of every index object.
const indexMagic = "PSNIDX02"

// indexObjectRecords bounds the blob records in one index object, so that no
// index object grows past about 5 MiB.
const indexObjectRecords = 100_000

// indexEntry is one blob's location, as the in-memory index keeps it: a
// fixed-size record in a sorted slice, 56 bytes a blob.
type indexEntry struct {
	id       ChunkID
	pack     uint32 // position in index.packs
	frameOff uint32
	frameLen uint32
	off      uint32
	len      uint32
	typ      uint8
}

// index maps blob IDs to their place in a pack.
type index struct {
	entries []indexEntry // sorted by id; a blob stored twice appears twice
	packs   []ChunkID
	objects []string // names of the index objects read
}

// find returns the position of the first entry for id, or -1.
func (x *index) find(id ChunkID) int {
	i, ok := slices.BinarySearchFunc(x.entries, id, func(e indexEntry, id ChunkID) int {
		return bytes.Compare(e.id[:], id[:])
	})
	if !ok {
		return -1
	}
	return i
}

// has reports whether id is indexed.
func (x *index) has(id ChunkID) bool { return x.find(id) >= 0 }

// indexName is the name of an index object whose content hashes to id.
func indexName(id ChunkID) string { return indexPrefix + id.String() }

// writeIndex stores index objects describing packs. It returns the bytes
// written.
func (r *Repository) writeIndex(ctx context.Context, packs []indexPack) (int64, error) {
	iw := r.newIndexWriter()
	for _, p := range packs {
		for _, rec := range p.Recs {
			if err := iw.add(ctx, p.ID, rec); err != nil {
				return iw.bytes, err
			}
		}
	}
	err := iw.close(ctx)
	return iw.bytes, err
}

// indexWriter streams blob records into index objects of at most
// indexObjectRecords records each.
type indexWriter struct {
	r       *Repository
	plain   []byte
	n       int     // records in plain
	pack    ChunkID // pack of the open group
	countAt int     // offset of the open group's count, -1 if none
	bytes   int64
	names   []string // index objects written
}

func (r *Repository) newIndexWriter() *indexWriter { return &indexWriter{r: r, countAt: -1} }

func (iw *indexWriter) add(ctx context.Context, pack ChunkID, rec blobRecord) error {
	if iw.n == 0 {
		iw.plain = append(iw.plain[:0], indexMagic...)
		iw.countAt = -1
	}
	if iw.countAt < 0 || pack != iw.pack {
		iw.plain = append(iw.plain, pack[:]...)
		iw.countAt = len(iw.plain)
		iw.plain = binary.LittleEndian.AppendUint32(iw.plain, 0)
		iw.pack = pack
	}
	iw.plain = rec.append(iw.plain)
	c := binary.LittleEndian.Uint32(iw.plain[iw.countAt:])
	binary.LittleEndian.PutUint32(iw.plain[iw.countAt:], c+1)
	iw.n++
	if iw.n >= indexObjectRecords {
		return iw.close(ctx)
	}
	return nil
}

// close stores the open index object, if any.
func (iw *indexWriter) close(ctx context.Context) error {
	if iw.n == 0 {
		return nil
	}
	r := iw.r
	r.zmu.Lock()
	z := r.enc.EncodeAll(iw.plain, nil)
	r.zmu.Unlock()
	id := ChunkID(sha256.Sum256(z))
	if err := r.backend.Put(ctx, indexName(id), bytes.NewReader(z), int64(len(z))); err != nil {
		return fmt.Errorf("store index: %w", err)
	}
	iw.bytes += int64(len(z))
	iw.names = append(iw.names, indexName(id))
	iw.n, iw.countAt = 0, -1
	return nil
}

// parseIndex decodes the plain content of an index object.
func parseIndex(plain []byte, fn func(pack ChunkID, rec blobRecord)) error {
	rest, ok := bytes.CutPrefix(plain, []byte(indexMagic))
	if !ok {
		return fmt.Errorf("index object does not start with %q (%w)", indexMagic, ErrDamaged)
	}
	for len(rest) > 0 {
		if len(rest) < 36 {
			return fmt.Errorf("index object ends inside a pack header (%w)", ErrDamaged)
		}
		var pack ChunkID
		copy(pack[:], rest)
		n := int(binary.LittleEndian.Uint32(rest[32:]))
		rest = rest[36:]
		if n > len(rest)/headerRecord {
			return fmt.Errorf("index object lists %d blobs of pack %s but holds fewer (%w)", n, pack, ErrDamaged)
		}
		for i := 0; i < n; i++ {
			fn(pack, parseRecord(rest[i*headerRecord:]))
		}
		rest = rest[n*headerRecord:]
	}
	return nil
}

// indexNames lists the index objects.
func (r *Repository) indexNames(ctx context.Context) ([]string, error) {
	var names []string
	err := r.backend.List(ctx, indexPrefix, func(name string, _ int64) error {
		rest := strings.TrimPrefix(name, indexPrefix)
		if _, err := ParseChunkID(rest); err == nil {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list index in %s: %w", r.Location(), err)
	}
	slices.Sort(names)
	return names, nil
}

// loadIndex reads every index object. An index object that is damaged is
// reported in damaged (name -> reason) and left out; an error reading the
// backend is returned.
func (r *Repository) loadIndex(ctx context.Context) (*index, map[string]string, error) {
	names, err := r.indexNames(ctx)
	if err != nil {
		return nil, nil, err
	}
	x := &index{}
	packNum := make(map[ChunkID]uint32)
	damaged := make(map[string]string)
	var plain []byte
	for _, name := range names {
		z, err := r.readWhole(ctx, name, 64<<20)
		if errors.Is(err, fs.ErrNotExist) {
			continue // replaced by a forget running meanwhile
		}
		if err != nil && !errors.Is(err, ErrDamaged) {
			return nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
		if err == nil {
			sum := sha256.Sum256(z)
			if hex.EncodeToString(sum[:]) != strings.TrimPrefix(name, indexPrefix) {
				err = fmt.Errorf("content does not match its name (%w)", ErrDamaged)
			}
		}
		if err == nil {
			plain, err = r.decodeAll(z, plain[:0])
			if err != nil {
				err = fmt.Errorf("cannot decompress: %v (%w)", err, ErrDamaged)
			}
		}
		if err == nil {
			start := len(x.entries)
			err = parseIndex(plain, func(pack ChunkID, rec blobRecord) {
				n, ok := packNum[pack]
				if !ok {
					n = uint32(len(x.packs))
					packNum[pack] = n
					x.packs = append(x.packs, pack)
				}
				x.entries = append(x.entries, indexEntry{id: rec.ID, pack: n, frameOff: rec.FrameOff, frameLen: rec.FrameLen, off: rec.Off, len: rec.Len, typ: rec.Type})
			})
			if err != nil {
				x.entries = x.entries[:start]
			}
		}
		if err != nil {
			damaged[name] = err.Error()
			continue
		}
		x.objects = append(x.objects, name)
	}
	slices.SortFunc(x.entries, func(a, b indexEntry) int {
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return int(a.pack) - int(b.pack)
	})
	x.entries = slices.Clip(x.entries)
	return x, damaged, nil
}

// currentIndex returns the repository's cached index, loading it first if
// needed. A damaged index object is an error here; `piosnap check` names it.
func (r *Repository) currentIndex(ctx context.Context) (*index, error) {
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	if r.idx != nil {
		return r.idx, nil
	}
	return r.reloadIndexLocked(ctx)
}

// reloadIndex reads the index again, e.g. after a pack went missing because
// a forget repacked it.
func (r *Repository) reloadIndex(ctx context.Context) (*index, error) {
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	return r.reloadIndexLocked(ctx)
}

func (r *Repository) reloadIndexLocked(ctx context.Context) (*index, error) {
	// A damaged index object is left out: a writer then stores its blobs
	// again, a reader reports them missing, `piosnap check` names the
	// object, and forget refuses to run until it is dealt with.
	x, _, err := r.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	r.idx = x
	return x, nil
}

// dropIndex forgets the cached index, after this process changed it.
func (r *Repository) dropIndex() {
	r.idxMu.Lock()
	r.idx = nil
	r.idxMu.Unlock()
}
