package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// indexPrefix is where index objects live in the backend.
const indexPrefix = "index/"

// indexMagic starts the plain content of every index object.
const indexMagic = "PSNIDX02"

// indexObjectLimit is the size past which an index object is taken for
// damage rather than read.
const indexObjectLimit = 64 << 20

// indexObjectRecords bounds the blob records in one index object, so that no
// index object grows past about 5 MiB.
const indexObjectRecords = 100_000

// indexEntry is one blob's place, as the in-memory index keeps it: 44
// bytes a blob, in a slice sorted by ID. What the blobs of one frame share
// (pack, frame offset and length, type) is kept once, in index.frames.
type indexEntry struct {
	id    ChunkID
	frame uint32 // position in index.frames
	off   uint32 // offset in the frame's plain content
	len   uint32 // plain length
}

// indexFrame is one frame of a pack, shared by the entries of its blobs.
type indexFrame struct {
	pack uint32 // position in frameTable.packs
	off  uint32 // offset in the pack
	len  uint32 // compressed length
	typ  uint8
}

// frameTable holds the frames and packs of the index records kept, each
// once; index and blobPlaces refer to their frames by position.
type frameTable struct {
	frames []indexFrame
	packs  []ChunkID
}

// frameOf returns the position in t.frames of rec's frame in pack, adding
// the frame and the pack if they are new. packNum numbers t.packs; last is
// what frameOf returned for the previous record kept from the same index
// object, or -1: the records of a frame follow each other there.
func (t *frameTable) frameOf(pack ChunkID, rec blobRecord, last int, packNum map[ChunkID]uint32) int {
	n, ok := packNum[pack]
	if !ok {
		n = uint32(len(t.packs))
		packNum[pack] = n
		t.packs = append(t.packs, pack)
	}
	fr := indexFrame{pack: n, off: rec.FrameOff, len: rec.FrameLen, typ: rec.Type}
	if last < 0 || t.frames[last] != fr {
		last = len(t.frames)
		t.frames = append(t.frames, fr)
	}
	return last
}

// truncate drops the frames and packs past the first frames and packs, and
// the numbers packNum gave the packs dropped.
func (t *frameTable) truncate(frames, packs int, packNum map[ChunkID]uint32) {
	for _, p := range t.packs[packs:] {
		delete(packNum, p)
	}
	t.frames, t.packs = t.frames[:frames], t.packs[:packs]
}

// index maps blob IDs to their place in a pack. An index may hold only
// part of the repository's records (see indexFilter): then it knows some
// blobs only by ID (ids), and others not at all.
type index struct {
	entries []indexEntry // sorted by id; a blob stored twice appears twice
	frameTable
	ids     []ChunkID // sorted: blobs known to be stored, place not kept
	objects []string  // names of the index objects read
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
func (x *index) has(id ChunkID) bool {
	if x.find(id) >= 0 {
		return true
	}
	_, ok := slices.BinarySearchFunc(x.ids, id, func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) })
	return ok
}

// packOf returns the position in x.packs of entry i's pack.
func (x *index) packOf(i int) uint32 { return x.frames[x.entries[i].frame].pack }

// record returns entry i as a pack header records it.
func (x *index) record(i int) blobRecord {
	e := &x.entries[i]
	f := &x.frames[e.frame]
	return blobRecord{Type: f.typ, ID: e.id, FrameOff: f.off, FrameLen: f.len, Off: e.off, Len: e.len}
}

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

// indexObject is an index object as listed: its name and stored size.
type indexObject struct {
	name string
	size int64
}

// indexObjects lists the index objects.
func (r *Repository) indexObjects(ctx context.Context) ([]indexObject, error) {
	var objs []indexObject
	err := r.backend.List(ctx, indexPrefix, func(name string, size int64) error {
		rest := strings.TrimPrefix(name, indexPrefix)
		if _, err := ParseChunkID(rest); err == nil {
			objs = append(objs, indexObject{name, size})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list index in %s: %w", r.Location(), err)
	}
	slices.SortFunc(objs, func(a, b indexObject) int { return strings.Compare(a.name, b.name) })
	return objs, nil
}

// keepMode is what a load keeps of one index record.
type keepMode uint8

const (
	keepNothing keepMode = iota
	keepID               // only that the blob is stored (index.ids)
	keepPlace            // where it is (index.entries)
)

// indexFilter chooses what loadIndex keeps of each record. The zero value
// keeps every record's place.
type indexFilter struct {
	// keep decides per record; nil keeps every place.
	keep func(typ uint8, id ChunkID) keepMode
	// places and ids are the expected numbers of records kept of each
	// kind, so that each slice is allocated once; countRecords counts
	// them from the index objects' headers first. Fewer than needed only
	// costs growing the slice.
	places, ids int
}

// countRecords asks loadIndex to size a slice for every record the index
// objects hold, read from their zstd frame headers before the objects.
const countRecords = -1

// everyPlace keeps every record's place, each slice allocated once.
var everyPlace = indexFilter{places: countRecords}

// loadIndex reads every index object, keeping what f asks for. An index
// object that is damaged is reported in damaged (name -> reason) and left
// out; an error reading the backend is returned.
//
// Memory: the records kept, and one index object at a time (compressed and
// plain, in buffers reused from object to object). The slices of records
// are sized before the first record is read, so loading does not need
// twice the final size while a slice grows.
func (r *Repository) loadIndex(ctx context.Context, f indexFilter) (*index, map[string]string, error) {
	objs, err := r.indexObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	if f.places == countRecords || f.ids == countRecords {
		n, err := r.countRecords(ctx, objs)
		if err != nil {
			return nil, nil, err
		}
		if f.places == countRecords {
			f.places = n
		}
		if f.ids == countRecords {
			f.ids = n
		}
	}
	x := &index{entries: make([]indexEntry, 0, f.places)}
	if f.ids > 0 {
		x.ids = make([]ChunkID, 0, f.ids)
	}
	packNum := make(map[ChunkID]uint32)
	read, damaged, err := r.readIndexObjects(ctx, objs, func(plain []byte) error {
		return x.add(plain, f.keep, packNum)
	})
	x.objects = read
	if err != nil {
		return nil, nil, err
	}
	x.sortEntries()
	slices.SortFunc(x.ids, func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) })
	x.ids = slices.Compact(x.ids)
	if len(x.ids) == 0 {
		x.ids = nil
	}
	return x, damaged, nil
}

// sortEntries sorts x's entries by blob ID, then by pack.
func (x *index) sortEntries() {
	slices.SortFunc(x.entries, func(a, b indexEntry) int {
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return int(x.frames[a.frame].pack) - int(x.frames[b.frame].pack)
	})
}

// addPacks adds the records of packs (read from their headers) to x, as
// an index object naming them would. The positions of x's packs stay.
func (x *index) addPacks(packs []indexPack) {
	packNum := make(map[ChunkID]uint32, len(x.packs))
	for n, p := range x.packs {
		packNum[p] = uint32(n)
	}
	for _, p := range packs {
		last := -1
		for _, rec := range p.Recs {
			last = x.frameOf(p.ID, rec, last, packNum)
			x.entries = append(x.entries, indexEntry{id: rec.ID, frame: uint32(last), off: rec.Off, len: rec.Len})
		}
	}
	x.sortEntries()
}

// readIndexObjects reads the index objects objs one after the other and
// hands the plain content of each to add, which must leave what it built
// as it was when it returns an error. It returns the names of the objects
// added; an object that is damaged (or that add refuses) is reported in
// damaged (name -> reason) and left out; an error reading the backend is
// returned. One object is held at a time, compressed and plain, in buffers
// reused from object to object.
func (r *Repository) readIndexObjects(ctx context.Context, objs []indexObject, add func(plain []byte) error) (read []string, damaged map[string]string, err error) {
	damaged = make(map[string]string)
	var largest int64
	for _, o := range objs {
		largest = max(largest, o.size)
	}
	// One buffer for the largest object, not one grown object by object.
	z := make([]byte, 0, min(largest, indexObjectLimit)+bytes.MinRead)
	var plain []byte
	for _, o := range objs {
		z, err = r.readIndexObject(ctx, o, z)
		if errors.Is(err, fs.ErrNotExist) {
			continue // replaced by a forget running meanwhile
		}
		if err != nil && !errors.Is(err, ErrDamaged) {
			return nil, nil, fmt.Errorf("read %s: %w", o.name, err)
		}
		if err == nil {
			plain, err = r.decodeAll(z, plain[:0])
			if err != nil {
				err = fmt.Errorf("cannot decompress: %v (%w)", err, ErrDamaged)
			}
		}
		if err == nil {
			err = add(plain)
		}
		if err != nil {
			damaged[o.name] = err.Error()
			continue
		}
		read = append(read, o.name)
	}
	return read, damaged, nil
}

// add parses the plain content of one index object into x, keeping what
// keep asks for. On damage, x is left as it was before.
func (x *index) add(plain []byte, keep func(uint8, ChunkID) keepMode, packNum map[ChunkID]uint32) error {
	entries, frames, packs, ids := len(x.entries), len(x.frames), len(x.packs), len(x.ids)
	last := -1 // the frame of the previous record kept, within this object
	err := parseIndex(plain, func(pack ChunkID, rec blobRecord) {
		mode := keepPlace
		if keep != nil {
			mode = keep(rec.Type, rec.ID)
		}
		switch mode {
		case keepID:
			x.ids = append(x.ids, rec.ID)
			return
		case keepNothing:
			return
		}
		last = x.frameOf(pack, rec, last, packNum)
		x.entries = append(x.entries, indexEntry{id: rec.ID, frame: uint32(last), off: rec.Off, len: rec.Len})
	})
	if err != nil {
		x.truncate(frames, packs, packNum)
		x.entries, x.ids = x.entries[:entries], x.ids[:ids]
	}
	return err
}

// readIndexObject reads an index object into buf (reused) and checks it
// against its name.
func (r *Repository) readIndexObject(ctx context.Context, o indexObject, buf []byte) ([]byte, error) {
	const limit = indexObjectLimit
	if o.size > limit {
		return buf, fmt.Errorf("%s is larger than %d bytes (%w)", o.name, limit, ErrDamaged)
	}
	rc, err := r.backend.Get(ctx, o.name)
	if err != nil {
		return buf, err
	}
	defer rc.Close()
	b := bytes.NewBuffer(buf[:0])
	b.Grow(int(o.size) + bytes.MinRead)
	if _, err := b.ReadFrom(io.LimitReader(ContextReader(ctx, rc), limit+1)); err != nil {
		return b.Bytes(), err
	}
	z := b.Bytes()
	if len(z) > limit {
		return z, fmt.Errorf("%s is larger than %d bytes (%w)", o.name, limit, ErrDamaged)
	}
	sum := sha256.Sum256(z)
	if hex.EncodeToString(sum[:]) != strings.TrimPrefix(o.name, indexPrefix) {
		return z, fmt.Errorf("content does not match its name (%w)", ErrDamaged)
	}
	return z, nil
}

// countRecords returns how many records the index objects hold at most,
// from the plain size each one's zstd frame header states (piosnap always
// writes it). The headers are read a few at a time; an object whose header
// cannot be read counts as none here (loading it then grows a slice).
func (r *Repository) countRecords(ctx context.Context, objs []indexObject) (int, error) {
	var mu sync.Mutex
	total := 0
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, o := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n, err := r.indexObjectRecords(ctx, o)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil && ctx.Err() != nil {
				firstErr = ctx.Err()
			}
			total += n
		}()
	}
	wg.Wait()
	return total, firstErr
}

// indexObjectRecords returns how many records an index object's frame
// header says it holds at most, or 0 and an error.
func (r *Repository) indexObjectRecords(ctx context.Context, o indexObject) (int, error) {
	rc, err := r.backend.GetRange(ctx, o.name, 0, min(o.size, zstd.HeaderMaxSize))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var head [zstd.HeaderMaxSize]byte
	n, err := io.ReadFull(ContextReader(ctx, rc), head[:min(o.size, zstd.HeaderMaxSize)])
	if err != nil {
		return 0, err
	}
	var h zstd.Header
	if err := h.Decode(head[:n]); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, err
	}
	if !h.HasFCS || h.FrameContentSize < uint64(len(indexMagic)) {
		return 0, nil
	}
	// A damaged header must not make the slice huge: no writer puts more
	// than indexObjectRecords records in one object.
	return int(min(h.FrameContentSize-uint64(len(indexMagic)), indexObjectRecords*headerRecord) / headerRecord), nil
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
	r.idx = nil // let the old one go before the new one is read
	x, _, err := r.loadIndex(ctx, everyPlace)
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
