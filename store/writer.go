package store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"time"

	"github.com/restic/chunker"
)

// Writer stores the versions of one run in one or more repositories at once.
// Each entry is split by content-defined chunking once, and each chunk is
// stored in every repository that lacks it. A repository that fails stops
// receiving data for the version at hand; the others carry on.
//
// A Writer is not safe for concurrent use; the caller must hold each
// repository's lock for the Writer's lifetime.
type Writer struct {
	repos   []*Repository
	known   []map[ChunkID]bool // per repository: chunks present
	broken  []error            // per repository: why it cannot be written, from the start
	pending map[*Pending]bool
	used    map[ChunkID]bool // chunks used by versions committed in this run
	chunker *chunker.Chunker
	buf     []byte
}

// NewWriter prepares a run against repos, learning which chunks each already
// holds. A repository that cannot be listed is left out of the run (its
// versions fail with that error) while the others are written; only when
// none can be listed does NewWriter fail.
func NewWriter(ctx context.Context, repos ...*Repository) (*Writer, error) {
	if len(repos) == 0 {
		return nil, errors.New("new writer: no repository")
	}
	w := &Writer{repos: repos, pending: make(map[*Pending]bool), used: make(map[ChunkID]bool)}
	healthy := 0
	for _, r := range repos {
		have, err := r.Chunks(ctx)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		k := make(map[ChunkID]bool, len(have))
		for id := range have {
			k[id] = true
		}
		w.known = append(w.known, k)
		w.broken = append(w.broken, err)
		if err == nil {
			healthy++
		}
	}
	if healthy == 0 {
		return nil, errors.Join(w.broken...)
	}
	cfg := repos[0].config
	w.chunker = chunker.NewWithBoundaries(nil, cfg.Polynomial, cfg.ChunkMinSize, cfg.ChunkMaxSize)
	w.buf = make([]byte, cfg.ChunkMaxSize)
	return w, nil
}

// Pending is a version being written. Nothing of it is visible until Commit.
type Pending struct {
	w       *Writer
	host    string
	entries []Entry
	size    int64
	errs    []error            // per repository: first failure, nil while healthy
	created []map[ChunkID]bool // per repository: chunks this version added
	refs    map[ChunkID]bool   // chunks this version uses
	stored  []int64            // per repository: bytes written
	start   time.Time
	done    bool
}

// Begin starts a version of host.
func (w *Writer) Begin(host string) *Pending {
	p := &Pending{
		w:       w,
		host:    host,
		errs:    make([]error, len(w.repos)),
		created: make([]map[ChunkID]bool, len(w.repos)),
		refs:    make(map[ChunkID]bool),
		stored:  make([]int64, len(w.repos)),
		start:   time.Now(),
	}
	for i := range p.created {
		p.created[i] = make(map[ChunkID]bool)
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
// computed from what was read.
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
	w.chunker.ResetWithBoundaries(io.TeeReader(r, crc), w.repos[0].config.Polynomial, w.repos[0].config.ChunkMinSize, w.repos[0].config.ChunkMaxSize)
	for {
		if err := ctx.Err(); err != nil {
			return e, err
		}
		c, err := w.chunker.Next(w.buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return e, fmt.Errorf("read %q of %s: %w", name, p.host, err)
		}
		id := HashChunk(c.Data)
		if err := p.putChunk(ctx, id, c.Data); err != nil {
			return e, err
		}
		e.Chunks = append(e.Chunks, id)
		e.Size += int64(c.Length)
	}
	e.CRC32 = crc.Sum32()
	p.size += e.Size
	p.entries = append(p.entries, e)
	return e, nil
}

// putChunk stores a chunk in every healthy repository that lacks it.
func (p *Pending) putChunk(ctx context.Context, id ChunkID, data []byte) error {
	p.refs[id] = true
	healthy := 0
	for i, r := range p.w.repos {
		if p.errs[i] != nil {
			continue
		}
		if !p.w.known[i][id] {
			n, err := r.PutChunk(ctx, id, data)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				p.fail(i, err)
				continue
			}
			p.w.known[i][id] = true
			p.created[i][id] = true
			p.stored[i] += n
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
	// Stored is the number of bytes the version added to the repository
	// (compressed chunks plus manifest).
	Stored int64
	// Err is why the version is missing from this repository.
	Err error
}

// Commit saves the manifest in every healthy repository, which makes the
// version visible there. v supplies the host-independent fields (Time, Zone,
// Kind, Source, Metadata, AppVersion, Note); Host, Entries and Size are set
// from the pending version. It returns one Result per repository, in the
// order given to NewWriter.
func (p *Pending) Commit(ctx context.Context, v Version) []Result {
	p.done = true
	delete(p.w.pending, p)
	for id := range p.refs {
		p.w.used[id] = true
	}
	v.Host = p.host
	v.Entries = p.entries
	v.Size = p.size
	res := make([]Result, len(p.w.repos))
	for i, r := range p.w.repos {
		res[i] = Result{Repo: r, Stored: p.stored[i], Err: p.errs[i]}
		if p.errs[i] != nil {
			continue
		}
		vv := v
		if err := r.SaveVersion(ctx, &vv); err != nil {
			res[i].Err = err
			p.fail(i, err)
			continue
		}
		res[i].Version = &vv
	}
	return res
}

// Abort drops the version and deletes the chunks it added that no other
// version of this run uses, so a rejected host leaves nothing behind.
func (p *Pending) Abort(ctx context.Context) error {
	if p.done {
		return nil
	}
	p.done = true
	delete(p.w.pending, p)
	var errs []error
	for i, r := range p.w.repos {
		for id := range p.created[i] {
			if p.w.inUse(id) {
				continue
			}
			if err := r.DeleteChunk(ctx, id); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(p.w.known[i], id)
		}
	}
	return errors.Join(errs...)
}

// inUse reports whether a version of the run, committed or still pending,
// uses a chunk.
func (w *Writer) inUse(id ChunkID) bool {
	if w.used[id] {
		return true
	}
	for q := range w.pending {
		if q.refs[id] {
			return true
		}
	}
	return false
}
