package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Blob types, as packs and indexes record them.
const (
	// blobData is a piece of an entry's content: a chunk of an ordinary
	// file or one page of a SQLite database.
	blobData = 0
	// blobTree is a node of an entry's page tree.
	blobTree = 1
	// blobBase is how walkVersion reports a tree node read only as the
	// base of a delta leaf; it is stored as a blobTree.
	blobBase = 2
)

// Pack layout limits.
const (
	// frameSize is how much plain data one zstd frame of a pack holds at
	// most; a larger blob gets a frame of its own. Small blobs compressed
	// together compress far better than each alone.
	frameSize = 256 << 10
	// packSize is the compressed size at which a pack is closed and stored.
	packSize = 16 << 20
	// headerRecord is the size of one blob record in a pack header or an
	// index: type (1), id (32), frame offset, frame length, offset within
	// the frame, length (4 each, little-endian).
	headerRecord = 1 + 32 + 4*4
)

// packPrefix is where packs live in the backend.
const packPrefix = "packs/"

// packName is the backend name of a pack: packs/<first two hex>/<hex>.
func packName(id ChunkID) string { return shardedName(packPrefix, id) }

// parsePackName returns the ID of a backend name under packs/, or false.
func parsePackName(name string) (ChunkID, bool) { return parseShardedName(packPrefix, name) }

// blobRecord locates one blob inside a pack.
type blobRecord struct {
	Type     uint8
	ID       ChunkID
	FrameOff uint32 // offset of the blob's zstd frame in the pack
	FrameLen uint32 // compressed length of that frame
	Off      uint32 // offset of the blob in the frame's plain content
	Len      uint32 // plain length of the blob
}

func (b *blobRecord) append(buf []byte) []byte {
	buf = append(buf, b.Type)
	buf = append(buf, b.ID[:]...)
	buf = binary.LittleEndian.AppendUint32(buf, b.FrameOff)
	buf = binary.LittleEndian.AppendUint32(buf, b.FrameLen)
	buf = binary.LittleEndian.AppendUint32(buf, b.Off)
	return binary.LittleEndian.AppendUint32(buf, b.Len)
}

func parseRecord(p []byte) blobRecord {
	var b blobRecord
	b.Type = p[0]
	copy(b.ID[:], p[1:33])
	b.FrameOff = binary.LittleEndian.Uint32(p[33:])
	b.FrameLen = binary.LittleEndian.Uint32(p[37:])
	b.Off = binary.LittleEndian.Uint32(p[41:])
	b.Len = binary.LittleEndian.Uint32(p[45:])
	return b
}

// packer collects blobs into zstd frames and frames into packs, and stores
// each pack when it is full. It records what it stored so that the caller
// can write an index before any manifest that uses the blobs.
//
// Compression of a frame is the only CPU-heavy step and happens in
// flushFrame; it depends on nothing but the frame's plain bytes, so a later
// version can hand frames to a bounded pool of workers.
type packer struct {
	repo *Repository
	// open holds the open frame of each blob type: tree nodes go in frames
	// of their own, so a walk over every version's trees (check, forget,
	// copy) decompresses no page data.
	open   [2]openFrame
	pack   []byte       // the open pack's frames, compressed
	recs   []blobRecord // records of the open pack
	shares []frameShare // compressed bytes of the open pack, per contributor
	// done holds the records of stored packs not yet in an index object.
	done []indexPack
	// onStore is told how many stored bytes each contributor caused.
	onStore func(owner any, n int64)
	// err is the first failure to store a pack. It sticks: blobs that were
	// in that pack count as present for the rest of the run, so no later
	// version may be saved on top of them.
	err error
	// written and packs count the bytes and packs stored; with keepIDs,
	// stored lists their IDs.
	written int64
	packs   int
	keepIDs bool
	stored  []ChunkID
	// doneRecs counts the records in done; indexed the bytes of index
	// objects written since the last finish.
	doneRecs int
	indexed  int64
}

// openFrame is a frame being filled.
type openFrame struct {
	plain   []byte       // plain content
	pending []blobRecord // records (FrameOff/FrameLen unset)
	added   []any        // per record: the version that added it
	shared  []bool       // per record: another version uses it too
	owners  []frameShare // who contributed the bytes
}

// frameShare attributes bytes to the version that caused them.
type frameShare struct {
	owner any
	n     int64
}

// indexPack is one pack's records, ready for an index object.
type indexPack struct {
	ID   ChunkID
	Recs []blobRecord
}

func newPacker(r *Repository, onStore func(owner any, n int64)) *packer {
	return &packer{repo: r, onStore: onStore}
}

// add appends a blob to the open frame. The caller has checked that the
// repository lacks it. owner is credited with the bytes it costs.
func (pk *packer) add(ctx context.Context, typ uint8, id ChunkID, data []byte, owner any) error {
	if pk.err != nil {
		return pk.err
	}
	f := &pk.open[typ]
	if len(f.plain) > 0 && len(f.plain)+len(data) > frameSize {
		if err := pk.flushFrame(ctx, f); err != nil {
			return err
		}
	}
	f.pending = append(f.pending, blobRecord{Type: typ, ID: id, Off: uint32(len(f.plain)), Len: uint32(len(data))})
	f.added = append(f.added, owner)
	f.shared = append(f.shared, false)
	f.plain = append(f.plain, data...)
	f.owners = addShare(f.owners, owner, int64(len(data)))
	if len(f.plain) >= frameSize {
		return pk.flushFrame(ctx, f)
	}
	return nil
}

func addShare(s []frameShare, owner any, n int64) []frameShare {
	for i := range s {
		if s[i].owner == owner {
			s[i].n += n
			return s
		}
	}
	return append(s, frameShare{owner, n})
}

// use notes that owner uses a blob the repository already has; if the blob
// is still in an open frame added by another version, it must survive that
// version's abort.
func (pk *packer) use(id ChunkID, owner any) {
	for t := range pk.open {
		f := &pk.open[t]
		for i := range f.pending {
			if f.pending[i].ID == id && f.added[i] != owner {
				f.shared[i] = true
			}
		}
	}
}

// drop removes from the open frames the blobs owner added that no other
// version uses, and returns their IDs. Blobs already compressed stay.
func (pk *packer) drop(owner any) []ChunkID {
	var gone []ChunkID
	for t := range pk.open {
		f := &pk.open[t]
		var plain []byte
		var pending []blobRecord
		var added []any
		var shared []bool
		for i, rec := range f.pending {
			if f.added[i] == owner && !f.shared[i] {
				gone = append(gone, rec.ID)
				continue
			}
			data := f.plain[rec.Off : rec.Off+rec.Len]
			rec.Off = uint32(len(plain))
			plain = append(plain, data...)
			pending, added, shared = append(pending, rec), append(added, f.added[i]), append(shared, f.shared[i])
		}
		if len(gone) == 0 {
			continue
		}
		var owners []frameShare
		for i, rec := range pending {
			owners = addShare(owners, added[i], int64(rec.Len))
		}
		f.plain, f.pending, f.added, f.shared, f.owners = plain, pending, added, shared, owners
	}
	return gone
}

// flushFrame compresses the open frame into the open pack, and stores the
// pack once it is full.
func (pk *packer) flushFrame(ctx context.Context, f *openFrame) error {
	if len(f.plain) == 0 {
		return nil
	}
	r := pk.repo
	r.zmu.Lock()
	z := r.enc.EncodeAll(f.plain, r.zbuf[:0])
	r.zbuf = z
	off := len(pk.pack)
	pk.pack = append(pk.pack, z...)
	r.zmu.Unlock()
	for _, rec := range f.pending {
		rec.FrameOff, rec.FrameLen = uint32(off), uint32(len(z))
		pk.recs = append(pk.recs, rec)
	}
	// Each contributor pays for the compressed frame in proportion to the
	// plain bytes it put in.
	var total int64
	for _, s := range f.owners {
		total += s.n
	}
	for _, s := range f.owners {
		pk.shares = addShare(pk.shares, s.owner, int64(len(z))*s.n/total)
	}
	f.plain, f.pending, f.owners = f.plain[:0], f.pending[:0], f.owners[:0]
	f.added, f.shared = f.added[:0], f.shared[:0]
	if len(pk.pack) >= packSize {
		return pk.flushPack(ctx)
	}
	return nil
}

// flushPack writes the open pack's header and stores it.
func (pk *packer) flushPack(ctx context.Context) error {
	for i := range pk.open {
		if err := pk.flushFrame(ctx, &pk.open[i]); err != nil {
			return err
		}
	}
	if len(pk.recs) == 0 {
		return nil
	}
	r := pk.repo
	hdr := make([]byte, 0, len(pk.recs)*headerRecord)
	for i := range pk.recs {
		hdr = pk.recs[i].append(hdr)
	}
	r.zmu.Lock()
	zh := r.enc.EncodeAll(hdr, nil)
	r.zmu.Unlock()
	pk.pack = append(pk.pack, zh...)
	pk.pack = binary.LittleEndian.AppendUint32(pk.pack, uint32(len(zh)))
	id := ChunkID(sha256.Sum256(pk.pack))
	if err := r.backend.Put(ctx, packName(id), bytes.NewReader(pk.pack), int64(len(pk.pack))); err != nil {
		pk.err = fmt.Errorf("store pack %s: %w", id, err)
		return pk.err
	}
	pk.written += int64(len(pk.pack))
	pk.packs++
	if pk.keepIDs {
		pk.stored = append(pk.stored, id)
	}
	// The header and trailer are shared overhead: charge them to whoever
	// contributed most.
	if len(pk.shares) > 0 {
		big := 0
		for i, s := range pk.shares {
			if s.n > pk.shares[big].n {
				big = i
			}
		}
		pk.shares[big].n += int64(len(zh) + 4)
	}
	if pk.onStore != nil {
		for _, s := range pk.shares {
			pk.onStore(s.owner, s.n)
		}
	}
	pk.done = append(pk.done, indexPack{ID: id, Recs: append([]blobRecord(nil), pk.recs...)})
	pk.doneRecs += len(pk.recs)
	pk.pack, pk.recs, pk.shares = pk.pack[:0], pk.recs[:0], pk.shares[:0]
	if cap(pk.pack) > 2*packSize {
		pk.pack = nil
	}
	if pk.doneRecs >= indexObjectRecords {
		// A large version: index what is stored so far, so that the
		// records held in memory stay bounded. The manifest still comes
		// after every index object.
		n, err := pk.writeDone(ctx)
		pk.indexed += n
		return err
	}
	return nil
}

// writeDone stores index objects for the packs stored and not yet indexed.
func (pk *packer) writeDone(ctx context.Context) (int64, error) {
	if len(pk.done) == 0 {
		return 0, nil
	}
	n, err := pk.repo.writeIndex(ctx, pk.done)
	if err != nil {
		pk.err = err
		return n, err
	}
	pk.done, pk.doneRecs = pk.done[:0], 0
	return n, nil
}

// finish stores the open pack and then an index object for every pack
// stored since the last finish. It returns the bytes of the index objects.
// After finish returns, every blob given to add is stored and indexed.
func (pk *packer) finish(ctx context.Context) (int64, error) {
	if pk.err != nil {
		return 0, pk.err
	}
	if err := pk.flushPack(ctx); err != nil {
		return 0, err
	}
	n, err := pk.writeDone(ctx)
	n += pk.indexed
	pk.indexed = 0
	return n, err
}

// readPackHeader parses the header at the end of a whole pack.
func (r *Repository) readPackHeader(pack []byte) ([]blobRecord, error) {
	if len(pack) < 4 {
		return nil, fmt.Errorf("pack of %d bytes is too short (%w)", len(pack), ErrDamaged)
	}
	n := int(binary.LittleEndian.Uint32(pack[len(pack)-4:]))
	if n > len(pack)-4 {
		return nil, fmt.Errorf("pack header length %d exceeds the pack (%w)", n, ErrDamaged)
	}
	hdr, err := r.decodeAll(pack[len(pack)-4-n:len(pack)-4], nil)
	if err != nil {
		return nil, fmt.Errorf("pack header cannot be decompressed: %v (%w)", err, ErrDamaged)
	}
	if len(hdr)%headerRecord != 0 {
		return nil, fmt.Errorf("pack header has %d bytes, not a whole number of records (%w)", len(hdr), ErrDamaged)
	}
	recs := make([]blobRecord, 0, len(hdr)/headerRecord)
	for i := 0; i < len(hdr); i += headerRecord {
		rec := parseRecord(hdr[i:])
		if int64(rec.FrameOff)+int64(rec.FrameLen) > int64(len(pack)-4-n) {
			return nil, fmt.Errorf("pack header names a frame past the data (%w)", ErrDamaged)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// decodeAll decompresses one or more zstd frames, appending to dst.
func (r *Repository) decodeAll(z, dst []byte) ([]byte, error) {
	return r.dec.DecodeAll(z, dst)
}

// readWhole reads an object completely, up to limit bytes.
func (r *Repository) readWhole(ctx context.Context, name string, limit int64) ([]byte, error) {
	rc, err := r.backend.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(ContextReader(ctx, rc), limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes (%w)", name, limit, ErrDamaged)
	}
	return data, nil
}

var errNotIndexed = errors.New("not in the index")
