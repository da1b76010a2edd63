package store

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"
	"unsafe"
)

// BlobPlace returns the backend name of the pack holding blob id and the
// offset and length of the frame holding it, for tests that damage packs.
func BlobPlace(ctx context.Context, r *Repository, id ChunkID) (pack string, frameOff, frameLen int64, err error) {
	x, err := r.reloadIndex(ctx)
	if err != nil {
		return "", 0, 0, err
	}
	i := x.find(id)
	if i < 0 {
		return "", 0, 0, errNotIndexed
	}
	rec := x.record(i)
	return packName(x.packs[x.packOf(i)]), int64(rec.FrameOff), int64(rec.FrameLen), nil
}

// LeafDepths returns the delta depth of every leaf of a page tree, in
// order, for tests of delta leaves.
func LeafDepths(ctx context.Context, r *Repository, root ChunkID) ([]int, error) {
	br := r.newBlobReader()
	var depths []int
	var walk func(id ChunkID) error
	walk = func(id ChunkID) error {
		node, err := br.read(ctx, id, nil)
		if err != nil {
			return err
		}
		var kids []ChunkID
		level, err := parseNode(node, func(it treeItem) error {
			if it.kind == itemChild {
				kids = append(kids, it.id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if level == 0 {
			_, d, err := newLeafResolver(br).resolve(ctx, node, nil)
			depths = append(depths, d)
			return err
		}
		for _, k := range kids {
			if err := walk(k); err != nil {
				return err
			}
		}
		return nil
	}
	return depths, walk(root)
}

// Idle reports whether none of w's store goroutines runs, no blob is
// being hashed and no frame is being compressed: what a Writer must come back to once no version is
// pending, whatever happened.
func (w *Writer) Idle() bool {
	if w.hq.busy() {
		return false
	}
	for _, pk := range w.packers {
		if pk.sink != nil || len(pk.tokens) > 0 {
			return false
		}
	}
	return true
}

// FramesCompressed returns how many frames w compressed, in all its
// stores together.
func (w *Writer) FramesCompressed() int {
	n := 0
	for _, pk := range w.packers {
		n += pk.compressed
	}
	return n
}

// IndexShape is what an index loaded for one kind of reading holds, for
// tests of what is kept.
type IndexShape struct {
	// Places counts the blobs whose place is kept; PlacesCap is the
	// capacity of their slice.
	Places, PlacesCap int
	// Frames and Packs count the frames and packs those places share.
	Frames, Packs int
	// IDs counts the blobs known by ID only.
	IDs int
	x   *index
	// places is set instead of x for the compact places a reading keeps.
	places *blobPlaces
}

// Placed reports whether the index knows where id is (for compact
// places: where a blob whose ID starts like id's is).
func (s IndexShape) Placed(id ChunkID) bool {
	if s.places != nil {
		_, ok := s.places.locate(id, 0)
		return ok
	}
	return s.x.find(id) >= 0
}

// Has reports whether the index knows id is stored.
func (s IndexShape) Has(id ChunkID) bool { return s.x.has(id) }

func shapeOf(x *index) IndexShape {
	return IndexShape{Places: len(x.entries), PlacesCap: cap(x.entries), Frames: len(x.frames), Packs: len(x.packs), IDs: len(x.ids), x: x}
}

// LoadIndexShape loads r's index as check and forget do ("whole") or as a
// writer does ("writer").
func LoadIndexShape(ctx context.Context, r *Repository, reading string) (IndexShape, error) {
	f := everyPlace
	if reading == "writer" {
		f = writerIndex
	}
	x, _, err := r.loadIndex(ctx, f)
	if err != nil {
		return IndexShape{}, err
	}
	return shapeOf(x), nil
}

// NeededIndexShape loads the part of r's index that reading v's files
// needs, as a restore or an export of v does.
func NeededIndexShape(ctx context.Context, r *Repository, v *Version) (IndexShape, error) {
	x, err := r.neededIndex(files(v)).index(ctx)
	if err != nil {
		return IndexShape{}, err
	}
	p := x.(*blobPlaces)
	return IndexShape{Places: len(p.places), PlacesCap: cap(p.places), Frames: len(p.frames), Packs: len(p.packs), places: p}, nil
}

// UsedBlobs returns the distinct blobs v uses: chunks, pages and tree nodes.
func UsedBlobs(ctx context.Context, r *Repository, v *Version) (map[ChunkID]bool, error) {
	used := make(map[ChunkID]bool)
	err := walkVersion(ctx, r.newBlobReader(), v, func(id ChunkID, _ uint8) bool {
		used[id] = true
		return true
	})
	return used, err
}

// StaleVersionReader loads the places v's files need now and returns a
// function that reads their contents later with those places, as a
// restore that started before a forget does.
func StaleVersionReader(ctx context.Context, r *Repository, v *Version) (func() (map[string][]byte, error), error) {
	src := r.neededIndex(files(v))
	if _, err := src.index(ctx); err != nil {
		return nil, err
	}
	return func() (map[string][]byte, error) {
		out := make(map[string][]byte)
		for _, e := range files(v) {
			b, err := io.ReadAll(r.openEntry(ctx, e, r.newBlobReaderOn(src)))
			if err != nil {
				return nil, err
			}
			out[e.Name] = b
		}
		return out, nil
	}, nil
}

func files(v *Version) []*Entry {
	var out []*Entry
	for i := range v.Entries {
		if !v.Entries[i].IsDir() {
			out = append(out, &v.Entries[i])
		}
	}
	return out
}

// ReadWithPrefixCollision loads the places v's files need, as a restore
// does, then makes blob a's place a candidate for blob b too, tried before
// b's own, as if their IDs began with the same 8 bytes; with dropOwn, b's
// own place is left out. It returns the contents of v's files read with
// these places through a read-ahead, as a restore reads them, and the
// error of reading blob b alone.
func ReadWithPrefixCollision(ctx context.Context, r *Repository, v *Version, a, b ChunkID, dropOwn bool) (map[string][]byte, error, error) {
	src := r.neededIndex(files(v))
	var planted error
	src.adjust = func(p *blobPlaces) {
		find := func(id ChunkID) int {
			pre := idPrefix(&id)
			return slices.IndexFunc(p.places, func(q blobPlace) bool { return q.prefix() == pre })
		}
		ia, ib := find(a), find(b)
		if ia < 0 || ib < 0 {
			planted = errNotIndexed
			return
		}
		wrong := p.places[ia]
		wrong.hi, wrong.lo = p.places[ib].hi, p.places[ib].lo
		if dropOwn {
			p.places[ib] = wrong
		} else {
			p.places = slices.Insert(p.places, ib, wrong)
		}
	}
	var want []uint64
	for _, e := range files(v) {
		for i := range e.Chunks {
			want = append(want, idPrefix(&e.Chunks[i]))
		}
	}
	sortPrefixes(&want)
	if _, err := src.window(ctx, want); err != nil || planted != nil {
		return nil, nil, errors.Join(err, planted)
	}
	_, readErr := r.newBlobReaderOn(src).read(ctx, b, nil)
	out, err := readAllAhead(ctx, r, v, src, aheadWindow)
	return out, readErr, err
}

// ReadInWindows reads the contents of v's files through a read-ahead
// that looks up window blobs at a time, as a restore does (with windows
// of a million pages). It returns the contents, how many windows were
// read, and the most places one window held.
func ReadInWindows(ctx context.Context, r *Repository, v *Version, window int) (map[string][]byte, int, int, error) {
	src := r.neededIndex(files(v))
	windows, most := 0, 0
	src.adjust = func(p *blobPlaces) {
		windows++
		most = max(most, len(p.places))
	}
	out, err := readAllAhead(ctx, r, v, src, window)
	return out, windows, most, err
}

func readAllAhead(ctx context.Context, r *Repository, v *Version, src *neededIndex, window int) (map[string][]byte, error) {
	out := make(map[string][]byte)
	ra := r.readAheadOn(ctx, files(v), src, window)
	defer ra.close()
	for _, e := range files(v) {
		data, err := io.ReadAll(ra.next(e))
		if err != nil {
			return out, err
		}
		out[e.Name] = data
	}
	return out, nil
}

// WholeIndexLoaded reports whether r holds its whole index, read for
// OpenEntry or a writer.
func WholeIndexLoaded(r *Repository) bool {
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	return r.idx != nil
}

// SealSlowly makes each of w's stores, after sealing a frame it compresses
// itself, wait until its own goroutine has appended that frame and let it
// go, as a fast goroutine may before the frame is in the memo the stores
// share. report is told if, at the next frame sealed, a frame the memo
// still offers has its buffer in a pool for reuse.
func (w *Writer) SealSlowly(report func(string)) {
	for _, pk := range w.packers {
		pk.sealed = func(zf *zframe) {
			if w.memoPooled() {
				report("a frame the stores share has its buffer in a pool for reuse")
			}
			held := zf.refs.Load()
			<-zf.done
			for deadline := time.Now().Add(10 * time.Second); zf.refs.Load() == held; {
				if time.Now().After(deadline) {
					report("the store's goroutine did not let the frame go in 10 s")
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
}

// memoPooled reports whether a frame in w's memo has its compressed buffer
// in one of the packers' pools.
func (w *Writer) memoPooled() bool {
	if w.memo == nil {
		return false
	}
	offered := make(map[*byte]bool)
	for _, l := range w.memo.last {
		for _, zf := range l {
			if zf == nil {
				continue
			}
			select {
			case <-zf.done:
				if cap(zf.z) > 0 {
					offered[unsafe.SliceData(zf.z)] = true
				}
			default:
			}
		}
	}
	found := false
	for _, pk := range w.packers {
		var kept [][]byte
	drain:
		for {
			select {
			case b := <-pk.zbufs:
				kept = append(kept, b)
			default:
				break drain
			}
		}
		for _, b := range kept {
			if cap(b) > 0 && offered[unsafe.SliceData(b)] {
				found = true
			}
			putBuf(pk.zbufs, b)
		}
	}
	return found
}

// Mangle makes the store at index i of w flip a byte in the middle of
// what it is about to store, as a fault in memory would: every frame's
// plain content before it is compressed (what "plain"), every compressed
// frame once in the open pack ("frame"), or every pack header ("header").
func (w *Writer) Mangle(i int, what string) {
	w.packers[i].mangle = func(kind string, b []byte) {
		if kind == what && len(b) > 0 {
			b[len(b)/2] ^= 0xff
		}
	}
}
