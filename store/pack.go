package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"slices"
	"sync/atomic"
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
// The caller's goroutine fills frames (add, use, drop). A full frame is
// sealed: it is compressed on a goroutine of its own, so that frames
// compress on every core (or taken compressed from another store's
// packer that sealed the same frame: see frameMemo), and queued, in the order sealed, for the
// packer's sink, a goroutine that appends the compressed frames to the open
// pack and stores each pack when it is full, then the index objects and
// whatever else the caller queues after them (a manifest). A pack holds the
// same frames in the same order however the goroutines are scheduled.
// Frames in flight are bounded by a budget of frameSize tokens (see
// inFlight), so memory stays flat however fast the caller is; a caller
// that gets that far ahead of the sink waits for it.
type packer struct {
	repo *Repository
	// open holds the open frame of each blob type: tree nodes go in frames
	// of their own, so a walk over every version's trees (check, forget,
	// copy) decompresses no page data.
	open [2]openFrame
	// onStore is told, on the sink's goroutine, how many stored bytes each
	// contributor caused.
	onStore func(owner any, n int64)
	// patience, when above zero, lets a caller that waits for the sink
	// give up on it once the sink's current write has failed that many
	// attempts in a row and giveUp agrees: see waitSink.
	patience int32
	giveUp   func() bool
	// retried is signalled after every failed attempt of a sink's write;
	// several packers may share it.
	retried chan struct{}
	keepIDs bool

	// memo, when set, is shared with the packers of other stores: a
	// frame another of them has sealed with the same content is not
	// compressed again (see frameMemo). compressed counts the frames
	// this packer compressed itself.
	memo       *frameMemo
	compressed int
	// sealed, for tests, is called on the caller's goroutine once a fresh
	// frame is queued for the sink and its compression has begun.
	sealed func(*zframe)
	// mangle, for tests, alters bytes before they are checked, as a fault
	// in memory would: a frame's plain content before it is compressed
	// ("plain", on the compressing goroutine), its compressed bytes once
	// appended to the open pack ("frame") or a pack's compressed header
	// ("header"), both on the sink's goroutine.
	mangle func(what string, b []byte)

	sink   *packSink     // the running sink; nil while none runs
	tokens chan struct{} // in-flight budget: one token per frameSize of plain bytes
	plains chan []byte   // frame buffers for reuse
	zbufs  chan []byte   // compression buffers for reuse

	// The fields below belong to the sink's goroutine while a sink runs;
	// the caller reads them only when none runs (after finish or flush).

	pack   []byte       // the open pack's frames, compressed
	recs   []blobRecord // records of the open pack
	shares []frameShare // compressed bytes of the open pack, per contributor
	// done holds the records of stored packs not yet in an index object.
	done []indexPack
	// err is the first failure to store a pack or an index. It sticks:
	// blobs that were in that pack count as present for the rest of the
	// run, so no later version may be saved on top of them.
	err error
	// written and packs count the bytes and packs stored; with keepIDs,
	// stored lists their IDs.
	written int64
	packs   int
	stored  []ChunkID
	// doneRecs counts the records in done; indexed the bytes of index
	// objects written since the last finish.
	doneRecs int
	indexed  int64
}

// inFlight is how many frames' worth of plain bytes (frameSize each) may
// be sealed and not yet in a pack: twice the cores, so that every core
// compresses while the sink stores a pack and the caller fills the next
// frames (BENCHMARKS.md, "Parallel compression").
func inFlight() int { return 2 * runtime.GOMAXPROCS(0) }

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

// sealedFrame is a full frame on its way to the sink.
type sealedFrame struct {
	recs   []blobRecord
	owners []frameShare
	tokens int     // budget tokens it holds
	z      *zframe // its compressed bytes, perhaps shared with other stores
}

// zframe is a frame's compressed bytes, shared by the stores that seal a
// frame of the same content (see frameMemo).
type zframe struct {
	codec string        // the encoder's settings
	recs  []blobRecord  // the frame's blobs in order: its content
	z     []byte        // compressed, once done is closed
	sum   uint32        // CRC-32C of z, once done is closed
	err   error         // why z failed its check (see checkFrame), once done is closed
	done  chan struct{} // closed when compressed and checked
	refs  atomic.Int32  // sealed frames and memo entries holding it
}

// release drops a hold on zf; the last one gives its buffer to pool for
// reuse.
func (zf *zframe) release(pool chan []byte) {
	if zf.refs.Add(-1) != 0 {
		return
	}
	select {
	case <-zf.done:
		putBuf(pool, zf.z)
	default: // never compressed, or still being: left to the collector
	}
}

// frameMemo lets the packers of one Writer compress a frame once when
// several stores seal the same: stores that are empty, or in step, lack
// the same blobs and so fill the same frames, one store after the other
// as each blob is added to each. A frame's content is named exactly by
// its blobs' IDs in order (and the codec), so a store that seals a frame
// of the same records as one another store has just sealed takes that
// frame's compressed bytes: its packs are byte for byte what it would
// have written alone. Adding one blob seals at most two frames of its
// type (the open frame, then the blob's own when it fills one), so the
// memo holds the latest two of each type, and memory stays flat. It is
// used on the caller's goroutine only.
type frameMemo struct {
	last [2][2]*zframe // per blob type, newest first
}

// find returns a frame just sealed that holds exactly recs under codec,
// with a hold on it for the caller; else nil.
func (m *frameMemo) find(codec string, recs []blobRecord) *zframe {
	if m == nil || len(recs) == 0 {
		return nil
	}
	for _, zf := range m.last[recs[0].Type] {
		if zf != nil && zf.codec == codec && slices.Equal(zf.recs, recs) {
			zf.refs.Add(1)
			return zf
		}
	}
	return nil
}

// put records zf as the frame sealed last of its type, dropping the
// oldest. It takes over a hold the caller took for the memo before zf
// reached a sink: a sink may drop its own hold as soon as it has the frame,
// and the buffer must not go back to a pool while the memo still offers it.
func (m *frameMemo) put(zf *zframe, pool chan []byte) {
	l := &m.last[zf.recs[0].Type]
	if old := l[len(l)-1]; old != nil {
		old.release(pool)
	}
	copy(l[1:], l[:len(l)-1])
	l[0] = zf
}

// clear drops every frame the memo holds.
func (m *frameMemo) clear(pool chan []byte) {
	for t := range m.last {
		for i, zf := range m.last[t] {
			if zf != nil {
				zf.release(pool)
				m.last[t][i] = nil
			}
		}
	}
}

// sinkOp is one step for the sink: a frame to append, or a call to make
// once everything queued before it is stored.
type sinkOp struct {
	frame *sealedFrame
	// call runs on the sink's goroutine after the open pack is stored and,
	// with index, the index objects written; n is the bytes of those index
	// objects (with those written earlier for a large version), err the
	// sink's failure. ctx is the sink's.
	call  func(ctx context.Context, n int64, err error)
	index bool
}

// packSink is a running sink.
type packSink struct {
	ops    chan sinkOp
	ctx    context.Context
	cancel context.CancelCauseFunc
	exited chan struct{} // closed when the goroutine has returned
	failed chan struct{} // closed once err is set
	err    error
	// attempts counts the failed attempts in a row of the sink's current
	// write; lastErr is the latest failure.
	attempts atomic.Int32
	lastErr  atomic.Pointer[error]
}

func newPacker(r *Repository, onStore func(owner any, n int64)) *packer {
	n := inFlight()
	return &packer{repo: r, onStore: onStore,
		tokens: make(chan struct{}, n), plains: make(chan []byte, n+2), zbufs: make(chan []byte, n)}
}

// start runs the sink unless it runs already; ctx bounds its writes.
func (pk *packer) start(ctx context.Context) *packSink {
	if pk.sink != nil {
		return pk.sink
	}
	if pk.retried == nil {
		pk.retried = make(chan struct{}, 1)
	}
	sctx, cancel := context.WithCancelCause(ctx)
	s := &packSink{ops: make(chan sinkOp, cap(pk.tokens)), cancel: cancel, exited: make(chan struct{}), failed: make(chan struct{})}
	s.ctx = WithRetryNotify(sctx, func(err error) {
		s.lastErr.Store(&err)
		s.attempts.Add(1)
		select {
		case pk.retried <- struct{}{}:
		default:
		}
	})
	if pk.err != nil {
		s.fail(pk.err)
	}
	pk.sink = s
	go pk.runSink(s)
	return s
}

// stop ends the sink once it has worked through what is queued, and waits
// for it; its failure, if any, sticks in pk.err. A sink that becomes
// troubled meanwhile (see troubled) is abandoned instead, and stop returns
// why.
func (pk *packer) stop() error {
	s := pk.sink
	if s == nil {
		return nil
	}
	close(s.ops)
	var gaveUp error
wait:
	for {
		if gaveUp = pk.troubled(); gaveUp != nil {
			s.cancel(gaveUp)
			<-s.exited
			break
		}
		select {
		case <-s.exited:
			break wait
		case <-pk.retried:
		}
	}
	s.cancel(nil)
	if s.err != nil {
		pk.err = s.err
	}
	if gaveUp != nil {
		pk.err = gaveUp
	}
	pk.sink = nil
	return gaveUp
}

// abandon cancels the sink's writes with cause; the sink then fails and
// works through its queue without storing anything.
func (pk *packer) abandon(cause error) {
	if pk.sink != nil {
		pk.sink.cancel(cause)
	}
}

// close ends a packer its caller gives up on after an error: a sink still
// running is cancelled and waited for, so that none outlives the call
// that used the packer (holding its buffers, or storing a pack once the
// caller has let the lock go). What was not stored is dropped. After
// finish or flush it does nothing.
func (pk *packer) close() {
	pk.abandon(context.Canceled)
	pk.stop()
}

func (s *packSink) fail(err error) {
	if s.err == nil {
		s.err = err
		close(s.failed)
	}
}

// failure returns the sink's failure, or pk.err while no sink runs.
func (pk *packer) failure() error {
	if s := pk.sink; s != nil {
		select {
		case <-s.failed:
			return s.err
		default:
			return nil
		}
	}
	return pk.err
}

// troubled reports whether the caller should stop waiting for the sink:
// its current write has failed patience attempts in a row and giveUp
// agrees. The error says why.
func (pk *packer) troubled() error {
	s := pk.sink
	if pk.patience <= 0 || s == nil {
		return nil
	}
	n := s.attempts.Load()
	if n < pk.patience || pk.giveUp == nil || !pk.giveUp() {
		return nil
	}
	last := "unknown"
	if e := s.lastErr.Load(); e != nil {
		last = (*e).Error()
	}
	return fmt.Errorf("%w: gave up on it so that the others could go on after %d attempts in a row of one write failed (last: %s)", ErrAbandoned, n, last)
}

// waitSink calls try until it reports success, returning early when ctx
// is done, the sink fails, or the sink is troubled (see troubled). try
// waits for its own channel and for the three given; it returns false
// when one of those woke it.
func (pk *packer) waitSink(ctx context.Context, try func(done, failed, retried <-chan struct{}) bool) error {
	s := pk.sink
	for {
		if err := pk.failure(); err != nil {
			return err
		}
		if err := pk.troubled(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if try(ctx.Done(), s.failed, pk.retried) {
			return nil
		}
	}
}

// send queues op for the sink, waiting while the queue is full.
func (pk *packer) send(ctx context.Context, op sinkOp) error {
	s := pk.start(ctx)
	return pk.waitSink(ctx, func(done, failed, retried <-chan struct{}) bool {
		select {
		case s.ops <- op:
			return true
		case <-done:
		case <-failed:
		case <-retried:
		}
		return false
	})
}

// take takes n budget tokens, waiting while the frames in flight hold
// them.
func (pk *packer) take(ctx context.Context, n int) error {
	pk.start(ctx)
	for got := 0; got < n; got++ {
		err := pk.waitSink(ctx, func(done, failed, retried <-chan struct{}) bool {
			select {
			case pk.tokens <- struct{}{}:
				return true
			case <-done:
			case <-failed:
			case <-retried:
			}
			return false
		})
		if err != nil {
			for range got {
				<-pk.tokens
			}
			return err
		}
	}
	return nil
}

// add appends a blob to the open frame. The caller has checked that the
// repository lacks it. owner is credited with the bytes it costs.
func (pk *packer) add(ctx context.Context, typ uint8, id ChunkID, data []byte, owner any) error {
	if err := pk.failure(); err != nil {
		return err
	}
	f := &pk.open[typ]
	if len(f.plain) > 0 && len(f.plain)+len(data) > frameSize {
		if err := pk.seal(ctx, f); err != nil {
			return err
		}
	}
	if f.plain == nil {
		f.plain = pk.plainBuf()
	}
	f.pending = append(f.pending, blobRecord{Type: typ, ID: id, Off: uint32(len(f.plain)), Len: uint32(len(data))})
	f.added = append(f.added, owner)
	f.shared = append(f.shared, false)
	f.plain = append(f.plain, data...)
	f.owners = addShare(f.owners, owner, int64(len(data)))
	if len(f.plain) >= frameSize {
		return pk.seal(ctx, f)
	}
	return nil
}

func (pk *packer) plainBuf() []byte {
	select {
	case b := <-pk.plains:
		return b[:0]
	default:
		return make([]byte, 0, frameSize)
	}
}

// putBuf keeps b for reuse unless it is much larger than a frame (a
// large chunk's) or enough are kept.
func putBuf(pool chan []byte, b []byte) {
	if cap(b) > 2*frameSize {
		return
	}
	select {
	case pool <- b[:0]:
	default:
	}
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
// version uses, and returns their IDs. Blobs already sealed stay.
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

// seal hands the open frame to a goroutine that compresses it, unless
// another store's packer has just sealed the same frame (see frameMemo),
// and queues it for the sink. On failure the frame stays open.
func (pk *packer) seal(ctx context.Context, f *openFrame) error {
	if len(f.plain) == 0 {
		return nil
	}
	n := min((len(f.plain)+frameSize-1)/frameSize, cap(pk.tokens))
	if err := pk.take(ctx, n); err != nil {
		return err
	}
	zf := pk.memo.find(pk.repo.codec, f.pending)
	fresh := zf == nil
	if fresh {
		zf = &zframe{done: make(chan struct{})}
		// One hold for the sealed frame, and one for the memo taken now:
		// once sent, the sink may release its hold before memo.put runs.
		zf.refs.Store(1)
		if pk.memo != nil {
			zf.refs.Add(1)
		}
	}
	sf := &sealedFrame{recs: slices.Clone(f.pending), owners: slices.Clone(f.owners), tokens: n, z: zf}
	if err := pk.send(ctx, sinkOp{frame: sf}); err != nil {
		for range n {
			<-pk.tokens
		}
		if !fresh {
			zf.release(pk.zbufs) // a fresh frame reached no one
		}
		return err
	}
	if fresh {
		var z []byte
		select {
		case z = <-pk.zbufs:
		default:
		}
		plain, recs := f.plain, sf.recs
		go func() {
			if pk.mangle != nil {
				pk.mangle("plain", plain)
			}
			zf.z = pk.repo.enc.EncodeAll(plain, z[:0])
			scratch := pk.plainBuf()
			scratch, zf.err = pk.repo.checkFrame(zf.z, recs, scratch)
			zf.sum = crc32c(zf.z)
			putBuf(pk.plains, plain)
			putBuf(pk.plains, scratch)
			close(zf.done)
		}()
		pk.compressed++
		if pk.sealed != nil {
			pk.sealed(zf)
		}
		if pk.memo != nil {
			zf.codec, zf.recs = pk.repo.codec, sf.recs
			pk.memo.put(zf, pk.zbufs)
		}
	} else {
		putBuf(pk.plains, f.plain)
	}
	f.plain, f.pending, f.owners = nil, f.pending[:0], f.owners[:0]
	f.added, f.shared = f.added[:0], f.shared[:0]
	return nil
}

// runSink is the sink's goroutine.
func (pk *packer) runSink(s *packSink) {
	defer close(s.exited)
	for op := range s.ops {
		if f := op.frame; f != nil {
			<-f.z.done
			if s.err == nil {
				if err := pk.appendFrame(s, f); err != nil {
					s.fail(err)
				}
			}
			f.z.release(pk.zbufs)
			for range f.tokens {
				<-pk.tokens
			}
			continue
		}
		var n int64
		err := s.err
		if err == nil {
			err = pk.storePack(s)
			if err == nil && op.index {
				n, err = pk.writeDone(s)
				n += pk.indexed
				pk.indexed = 0
			}
			if err != nil {
				s.fail(err)
			}
		}
		op.call(s.ctx, n, err)
		s.attempts.Store(0)
	}
}

// appendFrame adds a compressed frame to the open pack, and stores the
// pack once it is full.
func (pk *packer) appendFrame(s *packSink, f *sealedFrame) error {
	z := f.z.z
	if f.z.err != nil {
		return f.z.err
	}
	off := len(pk.pack)
	pk.pack = append(pk.pack, z...)
	if pk.mangle != nil {
		pk.mangle("frame", pk.pack[off:])
	}
	if crc32c(pk.pack[off:]) != f.z.sum {
		pk.pack = pk.pack[:off]
		return fmt.Errorf("%w: a compressed frame of %d blobs changed after it was checked; the pack was not stored", ErrCorruptedInMemory, len(f.recs))
	}
	for _, rec := range f.recs {
		rec.FrameOff, rec.FrameLen = uint32(off), uint32(len(z))
		pk.recs = append(pk.recs, rec)
	}
	// Each contributor pays for the compressed frame in proportion to the
	// plain bytes it put in.
	var total int64
	for _, o := range f.owners {
		total += o.n
	}
	for _, o := range f.owners {
		pk.shares = addShare(pk.shares, o.owner, int64(len(z))*o.n/total)
	}
	if len(pk.pack) >= packSize {
		return pk.storePack(s)
	}
	return nil
}

// ErrCorruptedInMemory marks data that changed between being hashed and
// being stored: a fault in the machine's memory or a bug in piosnap. What
// it concerns was not stored.
var ErrCorruptedInMemory = errors.New("data changed in memory before it was stored (a memory fault or a bug in piosnap; please report it)")

// crc32c returns the CRC-32C of b, which amd64 and arm64 compute in
// hardware: what a sink checks a frame's bytes with.
func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// checkFrame checks a frame just compressed, on the goroutine that
// compressed it, so that frames are checked on every core: z must
// decompress (zstd also checks the frame's own checksum) and every blob in
// it must match its ID. So a fault that changed the content since it was
// hashed, in memory or in a buffer reused too early, or a fault of the
// compressor, is caught before the pack is stored rather than by the next
// check --read-data or a restore. The sink then checks only that the bytes
// it appends still have the CRC-32C taken here. scratch is a buffer for
// the decompressed content; checkFrame returns it, perhaps grown.
func (r *Repository) checkFrame(z []byte, recs []blobRecord, scratch []byte) ([]byte, error) {
	plain, err := r.decodeAll(z, scratch[:0])
	if err != nil {
		return scratch, fmt.Errorf("%w: a frame of %d blobs does not decompress (%v); the pack was not stored", ErrCorruptedInMemory, len(recs), err)
	}
	for _, rec := range recs {
		if uint64(rec.Off)+uint64(rec.Len) > uint64(len(plain)) || HashChunk(plain[rec.Off:rec.Off+rec.Len]) != rec.ID {
			return plain, fmt.Errorf("%w: blob %s does not match its ID once compressed; the pack was not stored", ErrCorruptedInMemory, rec.ID)
		}
	}
	return plain, nil
}

// storePack writes the open pack's header and stores it. It runs on the
// sink's goroutine.
func (pk *packer) storePack(s *packSink) error {
	ctx := s.ctx
	if len(pk.recs) == 0 {
		return nil
	}
	r := pk.repo
	hdr := make([]byte, 0, len(pk.recs)*headerRecord)
	for i := range pk.recs {
		hdr = pk.recs[i].append(hdr)
	}
	zh := r.enc.EncodeAll(hdr, nil)
	if pk.mangle != nil {
		pk.mangle("header", zh)
	}
	if got, err := r.decodeAll(zh, nil); err != nil || !bytes.Equal(got, hdr) {
		return fmt.Errorf("%w: the header of a pack of %d blobs does not decompress to what was written; the pack was not stored", ErrCorruptedInMemory, len(pk.recs))
	}
	pk.pack = append(pk.pack, zh...)
	pk.pack = binary.LittleEndian.AppendUint32(pk.pack, uint32(len(zh)))
	id := ChunkID(sha256.Sum256(pk.pack))
	if err := r.backend.Put(ctx, packName(id), bytes.NewReader(pk.pack), int64(len(pk.pack))); err != nil {
		return fmt.Errorf("store pack %s: %w", id, err)
	}
	s.attempts.Store(0)
	pk.written += int64(len(pk.pack))
	pk.packs++
	if pk.keepIDs {
		pk.stored = append(pk.stored, id)
	}
	// The header and trailer are shared overhead: charge them to whoever
	// contributed most.
	if len(pk.shares) > 0 {
		big := 0
		for i, sh := range pk.shares {
			if sh.n > pk.shares[big].n {
				big = i
			}
		}
		pk.shares[big].n += int64(len(zh) + 4)
	}
	if pk.onStore != nil {
		for _, sh := range pk.shares {
			pk.onStore(sh.owner, sh.n)
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
		n, err := pk.writeDone(s)
		pk.indexed += n
		return err
	}
	return nil
}

// writeDone stores index objects for the packs stored and not yet indexed.
// It runs on the sink's goroutine.
func (pk *packer) writeDone(s *packSink) (int64, error) {
	if len(pk.done) == 0 {
		return 0, nil
	}
	n, err := pk.repo.writeIndex(s.ctx, pk.done)
	if err != nil {
		return n, err
	}
	s.attempts.Store(0)
	pk.done, pk.doneRecs = pk.done[:0], 0
	return n, nil
}

// sealAll seals the open frames of both types.
func (pk *packer) sealAll(ctx context.Context) error {
	for i := range pk.open {
		if err := pk.seal(ctx, &pk.open[i]); err != nil {
			return err
		}
	}
	return nil
}

// then queues call for the sink after every blob given to add so far: it
// runs once they are stored in packs and, with index, indexed. It returns
// without waiting; a failure to queue is returned and call is not made.
func (pk *packer) then(ctx context.Context, index bool, call func(ctx context.Context, n int64, err error)) error {
	if err := pk.sealAll(ctx); err != nil {
		return err
	}
	return pk.send(ctx, sinkOp{call: call, index: index})
}

// sync stores every blob given to add so far and, with index, an index
// object for every pack stored since the last finish, then stops the
// sink. It returns the bytes of those index objects.
func (pk *packer) sync(ctx context.Context, index bool) (int64, error) {
	if pk.err != nil && pk.sink == nil {
		return 0, pk.err
	}
	type result struct {
		n   int64
		err error
	}
	res := make(chan result, 1)
	err := pk.then(ctx, index, func(_ context.Context, n int64, err error) { res <- result{n, err} })
	var r result
	if err == nil {
		err = pk.waitSink(ctx, func(done, failed, retried <-chan struct{}) bool {
			select {
			case r = <-res:
				return true
			case <-done:
			case <-retried:
			}
			return false
		})
	}
	if err != nil {
		pk.abandon(err)
	}
	if serr := pk.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return 0, err
	}
	return r.n, r.err
}

// finish stores the open frames and pack and then an index object for
// every pack stored since the last finish. It returns the bytes of the
// index objects. After finish returns, every blob given to add is stored
// and indexed, and no goroutine of the packer runs.
func (pk *packer) finish(ctx context.Context) (int64, error) { return pk.sync(ctx, true) }

// flush stores the open frames and pack without writing an index (forget
// writes its own); large runs may still have written index objects (see
// storePack), counted in pk.indexed.
func (pk *packer) flush(ctx context.Context) error {
	_, err := pk.sync(ctx, false)
	return err
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

// packBlobs decodes the frames of data, a whole pack, that hold recs (in
// the order of their frames, as a pack header lists them) and calls fn for
// each record with its content, verified against its ID, or with bad
// saying why it cannot be had. Each frame is decompressed once; a frame no
// record names is not. An error of fn stops it and is returned. Check,
// forget's repacking and repair read packs through it.
func (r *Repository) packBlobs(data []byte, recs []blobRecord, fn func(rec blobRecord, blob []byte, bad string) error) error {
	var plain []byte
	var frameErr error
	frameAt := int64(-1)
	for _, rec := range recs {
		if int64(rec.FrameOff) != frameAt {
			frameAt = int64(rec.FrameOff)
			if uint64(rec.FrameOff)+uint64(rec.FrameLen) > uint64(len(data)) {
				frameErr = errors.New("it lies past the end of the pack")
			} else {
				plain, frameErr = r.decodeAll(data[rec.FrameOff:rec.FrameOff+rec.FrameLen], plain[:0])
			}
		}
		var bad string
		var blob []byte
		switch {
		case frameErr != nil:
			bad = fmt.Sprintf("frame at %d cannot be decompressed: %v", rec.FrameOff, frameErr)
		case uint64(rec.Off)+uint64(rec.Len) > uint64(len(plain)):
			bad = fmt.Sprintf("blob %s lies past its frame", rec.ID)
		case HashChunk(plain[rec.Off:rec.Off+rec.Len]) != rec.ID:
			bad = fmt.Sprintf("blob %s does not match its hash", rec.ID)
		default:
			blob = plain[rec.Off : rec.Off+rec.Len]
		}
		if err := fn(rec, blob, bad); err != nil {
			return err
		}
	}
	return nil
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
