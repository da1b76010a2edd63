package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/restic/chunker"
)

// Writer stores the versions of one run in one or more repositories at once.
// Each entry is cut into blobs once: a SQLite database or -wal file into its
// pages, anything else by content-defined chunking. Blobs are hashed on
// every core while the next ones are cut (see hashQueue), and each is
// packed into every repository that lacks it, in the order cut. Stores
// that lack the same blobs fill the same frames, and each such frame is
// compressed once for all of them (see frameMemo). A repository that
// fails stops receiving data for the version at hand; the others carry
// on.
//
// Each repository is written by a goroutine of its own (its packer's
// sink), fed through a bounded queue, so that a slow store does not slow
// the others down until its queue is full; the caller then waits for it (a
// store that answers, however slowly, still gets every version). A store
// whose write has failed waitAttempts attempts in a row while the caller
// waits for it is left out of the rest of the run instead, as long as
// another store is still written, and its goroutine is stopped: the
// healthy stores do not wait for its backend's whole retry budget. The
// goroutines run while a version is pending and are gone once none is.
//
// A Writer is not safe for concurrent use; the caller must hold each
// repository's lock for the Writer's lifetime.
type Writer struct {
	repos   []*Repository
	known   []*blobSet // per repository: blobs present
	packers []*packer  // per repository: blobs being packed
	broken  []error    // per repository: why it cannot be written, from the start or since it failed
	pending map[*Pending]bool
	retried chan struct{} // signalled by every store's sink after a failed attempt
	memo    *frameMemo    // with several stores: frames compressed once for all
	chunker *chunker.Chunker
	hq      *hashQueue // hashes the blobs of the entry being added
	br      *bufio.Reader
	// bases maps host and entry name to the page tree of the newest
	// version holding it, loaded at the first database; nil until then.
	bases map[string]ChunkID
}

// blobSet is the set of blobs a repository holds: its index at the start of
// the run plus the blobs added since. The index keeps the place of tree
// nodes only (a writer reads the nodes of base trees, never a page), and
// just the IDs of data blobs.
type blobSet struct {
	idx   *index
	added *idSet
	loose map[ChunkID]int64 // format-1 chunks
}

// writerIndex is what a writer keeps of the index.
var writerIndex = indexFilter{
	keep: func(typ uint8, _ ChunkID) keepMode {
		if typ == blobTree {
			return keepPlace
		}
		return keepID
	},
	ids: countRecords,
}

func (s *blobSet) has(id ChunkID) bool {
	if s.added.has(id) {
		return true
	}
	if _, ok := s.loose[id]; ok {
		return true
	}
	return s.idx.has(id)
}

// NewWriter prepares a run against repos, learning which blobs each already
// holds. A repository that cannot be read is left out of the run (its
// versions fail with that error) while the others are written; only when
// none can be read does NewWriter fail. A repository of format 1 is
// upgraded to the current format first (see Upgrade).
func NewWriter(ctx context.Context, repos ...*Repository) (*Writer, error) {
	if len(repos) == 0 {
		return nil, errors.New("new writer: no repository")
	}
	w := &Writer{repos: repos, pending: make(map[*Pending]bool), retried: make(chan struct{}, 1)}
	if len(repos) > 1 {
		w.memo = &frameMemo{}
	}
	healthy := 0
	for i, r := range repos {
		set, err := r.blobSet(ctx)
		if err == nil {
			err = r.Upgrade(ctx)
		}
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		w.known = append(w.known, set)
		w.broken = append(w.broken, err)
		pk := newPacker(r, func(owner any, n int64) {
			if p, ok := owner.(*Pending); ok {
				p.stored[i].Add(n)
			}
		})
		pk.retried = w.retried
		pk.memo = w.memo
		if len(repos) > 1 {
			pk.patience = waitAttempts
			pk.giveUp = func() bool { return w.othersHealthy(i) }
		}
		w.packers = append(w.packers, pk)
		if err == nil {
			healthy++
		}
	}
	if healthy == 0 {
		return nil, errors.Join(w.broken...)
	}
	cfg := repos[0].config
	w.chunker = chunker.NewWithBoundaries(nil, cfg.Polynomial, cfg.ChunkMinSize, cfg.ChunkMaxSize)
	w.hq = newHashQueue()
	w.br = bufio.NewReaderSize(nil, 64<<10)
	return w, nil
}

// waitAttempts is how many failed attempts in a row of one write a store
// is given while the others wait for it (see Writer). With the S3
// backend's default policy, about two seconds against a server that
// refuses connections.
const waitAttempts = 3

// othersHealthy reports whether a repository other than i is still
// written in this run.
func (w *Writer) othersHealthy(i int) bool {
	for j, err := range w.broken {
		if j != i && err == nil {
			return true
		}
	}
	return false
}

// blobSet loads what the repository holds.
func (r *Repository) blobSet(ctx context.Context) (*blobSet, error) {
	// A damaged index object is left out: its blobs are stored again,
	// and `piosnap check` names the object.
	idx, _, err := r.loadIndex(ctx, writerIndex)
	if err != nil {
		return nil, err
	}
	loose, err := r.looseChunks(ctx)
	if err != nil {
		return nil, err
	}
	return &blobSet{idx: idx, added: newIDSet(), loose: loose}, nil
}

// Pending is a version being written. Nothing of it is visible until Commit.
type Pending struct {
	w       *Writer
	host    string
	entries []Entry
	size    int64
	errs    []error        // per repository: first failure, nil while healthy
	stored  []atomic.Int64 // per repository: bytes written (added by the stores' goroutines)
	start   time.Time
	done    bool
}

// Begin starts a version of host.
func (w *Writer) Begin(host string) *Pending {
	p := &Pending{
		w:      w,
		host:   host,
		errs:   make([]error, len(w.repos)),
		stored: make([]atomic.Int64, len(w.repos)),
		start:  time.Now(),
	}
	copy(p.errs, w.broken)
	w.pending[p] = true
	return p
}

// Host returns the host the version belongs to.
func (p *Pending) Host() string { return p.host }

// SetHost names the host when it is known only at the end of an archive (a
// single-unit archive names its host in its last entry).
func (p *Pending) SetHost(host string) { p.host = host }

// Size returns the content bytes added so far.
func (p *Pending) Size() int64 { return p.size }

// Add appends an entry, reading its content from r (ignored for
// directories). It returns the entry as recorded, with the size and CRC-32
// computed from what was read. A SQLite database or -wal file is stored page
// by page; anything else in content-defined chunks.
func (p *Pending) Add(ctx context.Context, name string, mode fs.FileMode, modified time.Time, r io.Reader) (Entry, error) {
	e := Entry{Name: name, Mode: mode, Modified: modified.UTC()}
	if p.done {
		return e, fmt.Errorf("add %q to version of %s: version already finished", name, p.host)
	}
	if mode.IsDir() {
		p.entries = append(p.entries, e)
		return e, nil
	}
	crc := crc32.NewIEEE()
	w := p.w
	br := w.br
	br.Reset(io.TeeReader(r, crc))
	head, _ := br.Peek(100)
	var err error
	switch layout, ps := detectLayout(head); layout {
	case layoutDB, layoutWAL:
		err = p.addPages(ctx, &e, br, layout, ps)
	default:
		err = p.addChunks(ctx, &e, br)
	}
	br.Reset(nil)
	w.hq.emit = nil
	if err != nil {
		w.hq.drop()
		return e, err
	}
	e.CRC32 = crc.Sum32()
	p.size += e.Size
	p.entries = append(p.entries, e)
	return e, nil
}

// addChunks stores content cut by content-defined chunking.
func (p *Pending) addChunks(ctx context.Context, e *Entry, r io.Reader) error {
	w := p.w
	cfg := w.repos[0].config
	w.chunker.ResetWithBoundaries(r, cfg.Polynomial, cfg.ChunkMinSize, cfg.ChunkMaxSize)
	w.hq.emit = func(data []byte, id ChunkID, _ bool) error {
		if err := p.putBlob(ctx, blobData, id, data); err != nil {
			return err
		}
		e.Chunks = append(e.Chunks, id)
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := w.chunker.Next(w.hq.tail(0))
		if err == io.EOF {
			return w.hq.flush()
		}
		if err != nil {
			return fmt.Errorf("read %q of %s: %w", e.Name, p.host, err)
		}
		e.Size += int64(c.Length)
		if err := w.hq.pushChunk(c.Data); err != nil {
			return err
		}
	}
}

// addPages stores a database or WAL file page by page under a page tree.
func (p *Pending) addPages(ctx context.Context, e *Entry, r io.Reader, layout, pageSize int) error {
	tb := newTreeBuilder(func(node []byte) (ChunkID, error) {
		id := HashChunk(node)
		return id, p.putBlob(ctx, blobTree, id, node)
	})
	if layout == layoutDB {
		tb.base = p.baseLeaves(ctx, e.Name)
	}
	q := p.w.hq
	q.emit = func(data []byte, id ChunkID, inline bool) error {
		if inline {
			return tb.addInline(data)
		}
		if err := p.putBlob(ctx, blobData, id, data); err != nil {
			return err
		}
		return tb.addRef(id, len(data))
	}
	// read cuts the next n bytes as a blob (inline: to be kept in the
	// tree); it reports whether the content ended.
	read := func(n int, inline bool) (bool, error) {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		buf, err := q.reserve(n)
		if err != nil {
			return true, err
		}
		got, err := io.ReadFull(r, buf)
		e.Size += int64(got)
		end := false
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			end = true
		default:
			return true, fmt.Errorf("read %q of %s: %w", e.Name, p.host, err)
		}
		return end, q.push(buf[:got], inline)
	}
	if layout == layoutWAL {
		end, err := read(walHeader, true)
		for err == nil && !end {
			if end, err = read(walFrameHdr, true); err == nil && !end {
				end, err = read(pageSize, false)
			}
		}
		if err != nil {
			return err
		}
	} else {
		for end := false; !end; {
			var err error
			if end, err = read(pageSize, false); err != nil {
				return err
			}
		}
	}
	if err := q.flush(); err != nil {
		return err
	}
	root, err := tb.finish()
	if err != nil {
		return err
	}
	e.Tree = &root
	return nil
}

// baseLeaves returns the leaves of the page tree of the same entry in the
// host's newest version, one after the other, for the tree builder to
// store changed leaves as deltas; nil when there is none that every
// healthy repository holds. A base that cannot be read ends the deltas for
// the entry (its leaves are then stored in full), never the backup.
func (p *Pending) baseLeaves(ctx context.Context, name string) func(int) (ChunkID, int, []treeItem, bool) {
	w := p.w
	first := -1
	for i := range w.repos {
		if p.errs[i] == nil {
			first = i
			break
		}
	}
	if first < 0 {
		return nil
	}
	if w.bases == nil {
		w.bases = make(map[string]ChunkID)
		vs, err := w.repos[first].Versions(ctx)
		if err != nil {
			return nil
		}
		for _, v := range vs { // newest first
			for _, e := range v.Entries {
				key := v.Host + "\x00" + e.Name
				if _, seen := w.bases[key]; !seen && e.Tree != nil {
					w.bases[key] = *e.Tree
				}
			}
		}
	}
	root, ok := w.bases[p.host+"\x00"+name]
	if !ok {
		return nil
	}
	for i := range w.repos {
		if p.errs[i] == nil && !w.known[i].has(root) {
			return nil
		}
	}
	br := w.repos[first].newBlobReaderOn(fixedIndex{w.known[first].idx})
	read := func(id ChunkID) ([]byte, error) { return br.read(ctx, id, nil) }
	// The items handed out are the builder's until it asks for the next
	// leaf: one list and the resolver's buffers serve every leaf.
	leaves := newLeafResolver(br)
	var items []treeItem
	type level struct {
		children []ChunkID
		pos      int
	}
	var stack []level
	started, failed := false, false
	next := 0
	// leaf returns the next leaf of the base tree and its bytes.
	leaf := func() (ChunkID, []byte, bool) {
		var id ChunkID
		if !started {
			started = true
			id = root
		} else {
			for len(stack) > 0 && stack[len(stack)-1].pos == len(stack[len(stack)-1].children) {
				stack = stack[:len(stack)-1]
			}
			if len(stack) == 0 {
				return id, nil, false
			}
			top := &stack[len(stack)-1]
			id = top.children[top.pos]
			top.pos++
		}
		for depth := 0; depth < 16; depth++ {
			node, err := read(id)
			if err != nil {
				return id, nil, false
			}
			var kids []ChunkID
			level0, err := parseNode(node, func(it treeItem) error {
				if it.kind == itemChild {
					kids = append(kids, it.id)
				}
				return nil
			})
			if err != nil || (level0 > 0 && len(kids) == 0) {
				return id, nil, false
			}
			if level0 == 0 {
				return id, node, true
			}
			stack = append(stack, level{children: kids[1:]})
			id = kids[0]
		}
		return id, nil, false
	}
	return func(n int) (ChunkID, int, []treeItem, bool) {
		if failed || n != next {
			failed = true
			return ChunkID{}, 0, nil, false
		}
		next++
		id, node, ok := leaf()
		if !ok {
			failed = true
			return id, 0, nil, false
		}
		var depth int
		var err error
		items, depth, err = leaves.resolve(ctx, node, items[:0])
		if err != nil {
			failed = true
			return id, 0, nil, false
		}
		return id, depth, items, true
	}
}

// putBlob packs a blob into every healthy repository that lacks it.
func (p *Pending) putBlob(ctx context.Context, typ uint8, id ChunkID, data []byte) error {
	healthy := 0
	for i := range p.w.repos {
		if p.errs[i] != nil {
			continue
		}
		known := p.w.known[i]
		if known.has(id) {
			if known.added.has(id) {
				p.w.packers[i].use(id, p)
			}
		} else {
			if err := p.w.packers[i].add(ctx, typ, id, data, p); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				p.w.abandon(i, err)
				p.fail(i, err)
				continue
			}
			known.added.add(id)
		}
		healthy++
	}
	if healthy == 0 {
		return fmt.Errorf("version of %s: %w", p.host, errors.Join(p.errs...))
	}
	return nil
}

// fail records that repository i failed for p, and leaves the repository
// out of the rest of the run: every other version, pending or begun later,
// fails there at once instead of waiting for a store that is down or full
// again, host after host.
func (p *Pending) fail(i int, err error) {
	p.errs[i] = err
	if p.w.broken[i] != nil {
		return
	}
	skip := fmt.Errorf("left out of the rest of this run after it failed: %w", err)
	p.w.broken[i] = skip
	for q := range p.w.pending {
		if q.errs[i] == nil {
			q.errs[i] = skip
		}
	}
}

// abandon stops writing repository i for the rest of the run: its
// goroutine's writes are cancelled with cause.
func (w *Writer) abandon(i int, cause error) {
	w.packers[i].abandon(cause)
}

// settle stops the stores' goroutines once no version is pending. A store
// left out while they finish is broken for the rest of the run.
func (w *Writer) settle() {
	if len(w.pending) > 0 {
		return
	}
	if w.memo != nil {
		w.memo.clear(w.packers[0].zbufs)
	}
	for i, pk := range w.packers {
		if err := pk.stop(); err != nil && w.broken[i] == nil {
			w.broken[i] = fmt.Errorf("left out of the rest of this run: %w", err)
		}
	}
}

// Entries returns the entries added so far. The caller may correct their
// Mode and Modified fields before Commit, e.g. once an archive's central
// directory has been read.
func (p *Pending) Entries() []Entry { return p.entries }

// Result is the outcome of a version in one repository.
type Result struct {
	// Repo is the repository written to.
	Repo *Repository
	// Version is the saved version, nil on failure.
	Version *Version
	// Stored is the number of bytes the version added to the repository:
	// its share of the packs (compressed blobs and pack headers) and the
	// index objects, without the manifest.
	Stored int64
	// Err is why the version is missing from this repository.
	Err error
}

// Commit stores every blob still buffered, then the index describing the
// packs, then the manifest in every healthy repository, which makes the
// version visible there. v supplies the host-independent fields (Time, Zone,
// Kind, Source, Metadata, AppVersion, Note); Host, Entries and Size are set
// from the pending version. It returns one Result per repository, in the
// order given to NewWriter.
func (p *Pending) Commit(ctx context.Context, v Version) []Result {
	w := p.w
	p.done = true
	delete(w.pending, p)
	defer w.settle()
	v.Host = p.host
	v.Entries = p.entries
	v.Size = p.size
	type reply struct {
		i   int
		v   *Version
		err error
	}
	// Each store's goroutine stores what is queued, the index and then the
	// manifest, each as soon as it can: a healthy store's version is
	// visible while a slower one is still busy.
	replies := make(chan reply, len(w.repos))
	waiting := make([]bool, len(w.repos))
	n := 0
	for i, r := range w.repos {
		if p.errs[i] != nil {
			continue
		}
		vv := v
		err := w.packers[i].then(ctx, true, func(sctx context.Context, n int64, err error) {
			p.stored[i].Add(n)
			if err == nil {
				err = r.SaveVersion(sctx, &vv)
			}
			if err != nil {
				replies <- reply{i, nil, err}
				return
			}
			replies <- reply{i, &vv, nil}
		})
		if err != nil {
			w.abandon(i, err)
			p.fail(i, err)
			continue
		}
		waiting[i] = true
		n++
	}
	saved := make([]*Version, len(w.repos))
	giveUp := func() {
		for i := range waiting {
			if !waiting[i] {
				continue
			}
			if err := w.packers[i].troubled(); err != nil {
				waiting[i] = false
				n--
				w.abandon(i, err)
				p.fail(i, err)
			}
		}
	}
	for giveUp(); n > 0; {
		select {
		case rp := <-replies:
			if !waiting[rp.i] {
				continue
			}
			waiting[rp.i] = false
			n--
			if rp.err != nil {
				p.fail(rp.i, rp.err)
			} else {
				saved[rp.i] = rp.v
			}
		case <-w.retried:
			giveUp()
		case <-ctx.Done():
			for i := range waiting {
				if waiting[i] {
					waiting[i] = false
					n--
					w.abandon(i, ctx.Err())
					p.fail(i, ctx.Err())
				}
			}
		}
	}
	res := make([]Result, len(w.repos))
	for i, r := range w.repos {
		res[i] = Result{Repo: r, Stored: p.stored[i].Load(), Err: p.errs[i], Version: saved[i]}
	}
	return res
}

// Abort drops the version. The blobs it added that are still waiting to
// be compressed, and that no other version of the run uses, are dropped
// too; blobs already packed stay in the repository, unused, until the next
// forget removes them (`piosnap check` counts them as unused, not as
// damage).
func (p *Pending) Abort(ctx context.Context) error {
	if p.done {
		return nil
	}
	p.done = true
	delete(p.w.pending, p)
	for i, pk := range p.w.packers {
		for _, id := range pk.drop(p) {
			p.w.known[i].added.remove(id)
		}
	}
	p.w.settle()
	return nil
}
