package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
)

// Problem is one piece of damage found by Check.
type Problem struct {
	// Object is the backend name of the damaged or missing object.
	Object string `json:"object"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
	// Versions lists the short IDs and hosts of the versions it affects.
	Versions []string `json:"versions"`
}

// CheckReport is what Check found.
type CheckReport struct {
	// Versions counts the manifests examined.
	Versions int `json:"versions"`
	// Chunks counts the distinct blobs stored: chunks of ordinary files,
	// database pages and page-tree nodes, in packs or (format 1) alone.
	Chunks int `json:"chunks"`
	// Packs counts the pack objects.
	Packs int `json:"packs"`
	// ChunksRead counts blobs read and verified (with ReadData or a
	// subset).
	ChunksRead int `json:"chunks_read"`
	// PacksRead counts the packs read (and, in a repository from before
	// format 2, the chunks stored alone).
	PacksRead int `json:"packs_read"`
	// Unused counts blobs no version references (left by an interrupted or
	// rejected run; the next forget removes them). They are not damage.
	Unused int `json:"unused_chunks"`
	// UnindexedPacks counts packs no index names: written by a run that was
	// interrupted before its index. The next forget removes them.
	UnindexedPacks int `json:"unindexed_packs"`
	// Problems lists the damage, empty when the repository is sound.
	Problems []Problem `json:"problems"`
}

// OK reports whether no damage was found.
func (c *CheckReport) OK() bool { return len(c.Problems) == 0 }

// repoState is a listing of what a repository holds.
type repoState struct {
	packs   map[ChunkID]int64 // pack objects and their sizes
	loose   map[ChunkID]int64 // format-1 chunks
	idx     *index
	damaged map[string]string // damaged index objects
}

// scan lists packs and chunks, then reads the index. Packs are listed
// first: a backup running meanwhile writes a pack before the index that
// names it, and a forget deletes an index object before the packs only it
// named, so every pack the index names was listed unless it is missing.
func (r *Repository) scan(ctx context.Context) (*repoState, error) {
	st := &repoState{packs: make(map[ChunkID]int64)}
	err := r.backend.List(ctx, packPrefix, func(name string, size int64) error {
		if id, ok := parsePackName(name); ok {
			st.packs[id] = size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs in %s: %w", r.Location(), err)
	}
	if st.loose, err = r.looseChunks(ctx); err != nil {
		return nil, err
	}
	if st.idx, st.damaged, err = r.loadIndex(ctx, everyPlace); err != nil {
		return nil, err
	}
	return st, nil
}

// has reports whether a blob is stored: indexed in a pack that exists, or a
// format-1 chunk.
func (st *repoState) has(id ChunkID) bool {
	if _, ok := st.loose[id]; ok {
		return true
	}
	i := st.idx.find(id)
	if i < 0 {
		return false
	}
	_, ok := st.packs[st.idx.packs[st.idx.packOf(i)]]
	return ok
}

// Check verifies that every manifest is readable and that every blob it
// uses, through its page trees, is stored in a pack the index names (or as
// a format-1 chunk); with readData it also reads every pack, checks it
// against its name, its header and the index, and verifies every blob's
// hash. It reports each problem with the versions it affects and does not
// stop at the first.
func (r *Repository) Check(ctx context.Context, readData bool) (*CheckReport, error) {
	if readData {
		return r.CheckReading(ctx, Subset{Part: 1, Of: 1})
	}
	return r.CheckReading(ctx, Subset{})
}

// Subset is the part of a repository's packs a check reads: packs are
// split into Of parts by their ID, and part Part (1 to Of) is read. A
// check with part 1/7 on the first day, 2/7 on the next, and so on reads
// every pack once a week. The zero Subset reads nothing.
type Subset struct{ Part, Of int }

// ParseSubset parses "N/T", a part of a check's packs (see Subset).
func ParseSubset(s string) (Subset, error) {
	var sub Subset
	n, err := fmt.Sscanf(s, "%d/%d", &sub.Part, &sub.Of)
	if err != nil || n != 2 || fmt.Sprintf("%d/%d", sub.Part, sub.Of) != s {
		return Subset{}, fmt.Errorf("subset %q: write it as N/T, e.g. 1/7 for the first of seven parts", s)
	}
	if sub.Of < 1 || sub.Part < 1 || sub.Part > sub.Of {
		return Subset{}, fmt.Errorf("subset %q: N must be from 1 to T, e.g. 1/7 for the first of seven parts", s)
	}
	return sub, nil
}

// String returns the subset as N/T.
func (s Subset) String() string { return fmt.Sprintf("%d/%d", s.Part, s.Of) }

// Covers reports whether a check reading s examines object, a name a
// Problem gives: a pack or format-1 chunk whose ID is in s, or any other
// object (a version or an index object), which every check examines.
func (s Subset) Covers(object string) bool {
	if id, ok := parsePackName(object); ok {
		return s.has(id)
	}
	if id, ok := parseChunkName(object); ok {
		return s.has(id)
	}
	return true
}

// has reports whether the object with ID id is in the subset.
func (s Subset) has(id ChunkID) bool {
	if s.Of < 1 {
		return false
	}
	return int(binary.BigEndian.Uint32(id[:4])%uint32(s.Of)) == s.Part-1
}

// CheckReading is Check that reads and verifies the packs (and format-1
// chunks) of one subset in full, as Check with readData does for all.
func (r *Repository) CheckReading(ctx context.Context, sub Subset) (*CheckReport, error) {
	rep := &CheckReport{}
	st, err := r.scan(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(st.damaged) {
		rep.Problems = append(rep.Problems, Problem{Object: name, Reason: "index object damaged: " + st.damaged[name]})
	}
	x := st.idx
	rep.Packs = len(st.packs)
	indexed := make(map[ChunkID]bool, len(x.packs))
	for _, p := range x.packs {
		indexed[p] = true
	}
	for p := range st.packs {
		if !indexed[p] {
			rep.UnindexedPacks++
		}
	}
	marks := newBlobMarks(x)
	missing := make(map[ChunkID]bool)
	present := func(id ChunkID, i int) bool {
		ok := false
		if i >= 0 {
			_, ok = st.packs[x.packs[x.packOf(i)]]
		} else {
			_, ok = st.loose[id]
		}
		if !ok {
			missing[id] = true
		}
		return ok
	}
	src := &loadedIndex{r: r, f: everyPlace, x: x}
	br := r.newBlobReaderOn(src)
	ids, err := r.VersionIDs(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		v, err := r.LoadVersion(ctx, id)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.Problems = append(rep.Problems, Problem{Object: versionName(id), Reason: err.Error(), Versions: []string{id[:8]}})
			continue
		}
		rep.Versions++
		err = marks.mark(ctx, br, v, present)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("check %s: %w", r.Location(), err)
			}
			rep.Problems = append(rep.Problems, Problem{Object: versionName(v.ID), Reason: "its page tree cannot be read: " + err.Error(), Versions: []string{versionLabel(v)}})
		}
	}
	if len(missing) > 0 {
		// A backup running meanwhile stores its packs and index and then
		// its manifest; a forget moves blobs to new packs. Look again
		// before calling anything missing.
		fresh, err := r.scan(ctx)
		if err != nil {
			return nil, err
		}
		for id := range missing {
			if fresh.has(id) {
				delete(missing, id)
			}
		}
	}
	for i := range x.entries {
		if i > 0 && x.entries[i].id == x.entries[i-1].id {
			continue
		}
		rep.Chunks++
		if !marks.used[i] {
			rep.Unused++
		}
	}
	for id := range st.loose {
		rep.Chunks++
		if !marks.loose[id] {
			rep.Unused++
		}
	}
	if len(missing) > 0 {
		users, err := r.usersOf(ctx, r.newBlobReaderOn(src), func(id ChunkID) bool { return missing[id] })
		if err != nil {
			return nil, err
		}
		bad := slices.SortedFunc(maps.Keys(missing), func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) })
		for _, id := range bad {
			obj, reason := "blob "+id.String(), "blob missing: in no index and no chunk"
			if i := x.find(id); i >= 0 {
				obj, reason = packName(x.packs[x.packOf(i)]), "pack missing"
			}
			rep.Problems = append(rep.Problems, Problem{Object: obj, Reason: reason, Versions: users[id]})
		}
	}
	if sub.Of > 0 {
		if err := r.readAll(ctx, st, rep, sub); err != nil {
			return nil, err
		}
	}
	rep.Problems = mergeProblems(rep.Problems)
	for i := range rep.Problems {
		if rep.Problems[i].Versions == nil {
			rep.Problems[i].Versions = []string{} // JSON shows [], never null
		}
	}
	return rep, nil
}

// mergeProblems joins problems about the same object, keeping their order.
func mergeProblems(ps []Problem) []Problem {
	var out []Problem
	at := make(map[string]int)
	for _, p := range ps {
		key := p.Object + "\x00" + p.Reason
		if i, ok := at[key]; ok {
			for _, v := range p.Versions {
				if !slices.Contains(out[i].Versions, v) {
					out[i].Versions = append(out[i].Versions, v)
				}
			}
			continue
		}
		at[key] = len(out)
		out = append(out, p)
	}
	return out
}

func versionLabel(v *Version) string {
	return v.ShortID() + " (" + v.Host + " " + v.Time.Format("2006-01-02 15:04") + ")"
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// usersOf names the versions that use a blob bad accepts, per blob. It
// walks every version in full, so it is for reporting damage only.
func (r *Repository) usersOf(ctx context.Context, br *blobReader, bad func(ChunkID) bool) (map[ChunkID][]string, error) {
	users := make(map[ChunkID][]string)
	ids, err := r.VersionIDs(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		v, err := r.LoadVersion(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue // reported already, or deleted meanwhile
		}
		label := versionLabel(v)
		seen := make(map[ChunkID]bool)
		_ = walkVersion(ctx, br, v, func(id ChunkID, typ uint8) bool {
			if bad(id) && !seen[id] {
				seen[id] = true
				users[id] = append(users[id], label)
			}
			return true
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return users, nil
}

// readAll reads every pack and format-1 chunk of sub and verifies every
// blob in them.
func (r *Repository) readAll(ctx context.Context, st *repoState, rep *CheckReport, sub Subset) error {
	x := st.idx
	byPack := make(map[ChunkID][]int)
	for i := range x.entries {
		p := x.packs[x.packOf(i)]
		byPack[p] = append(byPack[p], i)
	}
	badPacks := make(map[ChunkID]string)
	packs := slices.SortedFunc(maps.Keys(st.packs), func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) })
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !sub.has(p) {
			continue
		}
		n, reason, err := r.verifyPack(ctx, p, x, byPack[p])
		rep.PacksRead++
		rep.ChunksRead += n
		if err != nil {
			return err
		}
		if reason == "" {
			continue
		}
		if reason == "gone" {
			// Deleted since the listing: a forget running meanwhile
			// deletes packs after the index objects naming them. It is
			// damage only if the index still names it.
			fresh, err := r.scan(ctx)
			if err != nil {
				return err
			}
			if !slices.Contains(fresh.idx.packs, p) {
				continue
			}
			reason = "pack missing"
		}
		badPacks[p] = reason
	}
	badLoose := make(map[ChunkID]string)
	var buf []byte
	for _, c := range slices.SortedFunc(maps.Keys(st.loose), func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) }) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !sub.has(c) {
			continue
		}
		var err error
		buf, err = r.ReadChunk(ctx, c, buf[:0])
		rep.PacksRead++
		rep.ChunksRead++
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", r.Location(), err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted by a forget running meanwhile, or checked above
		}
		badLoose[c] = strings.TrimPrefix(err.Error(), "read chunk "+c.String()+": ")
	}
	if len(badPacks) == 0 && len(badLoose) == 0 {
		return nil
	}
	packOf := func(id ChunkID) (ChunkID, bool) {
		if i := x.find(id); i >= 0 {
			p := x.packs[x.packOf(i)]
			_, bad := badPacks[p]
			return p, bad
		}
		return ChunkID{}, false
	}
	users, err := r.usersOf(ctx, r.newBlobReaderOn(&loadedIndex{r: r, f: everyPlace, x: x}), func(id ChunkID) bool {
		_, bad := packOf(id)
		_, badL := badLoose[id]
		return bad || badL
	})
	if err != nil {
		return err
	}
	packUsers := make(map[ChunkID][]string)
	for id, us := range users {
		if p, bad := packOf(id); bad {
			for _, u := range us {
				if !slices.Contains(packUsers[p], u) {
					packUsers[p] = append(packUsers[p], u)
				}
			}
		}
	}
	for _, p := range packs {
		if reason, ok := badPacks[p]; ok {
			vs := packUsers[p]
			slices.Sort(vs)
			rep.Problems = append(rep.Problems, Problem{Object: packName(p), Reason: reason, Versions: vs})
		}
	}
	for _, c := range slices.SortedFunc(maps.Keys(badLoose), func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) }) {
		rep.Problems = append(rep.Problems, Problem{Object: chunkName(c), Reason: badLoose[c], Versions: users[c]})
	}
	return nil
}

// verifyPack reads a whole pack and checks it against its name, its header
// and the index entries naming it, and every blob against its hash. It
// returns the number of blobs read and, for damage, the reason ("gone" for
// a pack deleted since it was listed); err is a failure of the backend.
func (r *Repository) verifyPack(ctx context.Context, id ChunkID, x *index, entries []int) (int, string, error) {
	data, err := r.readWhole(ctx, packName(id), 1<<30)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "gone", nil
	}
	if err != nil && !errors.Is(err, ErrDamaged) {
		return 0, "", fmt.Errorf("check %s: read pack %s: %w", r.Location(), id, err)
	}
	if err != nil {
		return 0, err.Error(), nil
	}
	if ChunkID(sha256.Sum256(data)) != id {
		return 0, "pack content does not match its name", nil
	}
	recs, err := r.readPackHeader(data)
	if err != nil {
		return 0, err.Error(), nil
	}
	inHeader := make(map[blobRecord]bool, len(recs))
	for _, rec := range recs {
		inHeader[rec] = true
	}
	for _, i := range entries {
		if rec := x.record(i); !inHeader[rec] {
			return 0, fmt.Sprintf("the index places blob %s where the pack's header does not", rec.ID), nil
		}
	}
	n := 0
	var reason string
	stop := errors.New("damaged")
	_ = r.packBlobs(data, recs, func(_ blobRecord, _ []byte, bad string) error {
		if bad != "" {
			reason = bad
			return stop
		}
		n++
		return nil
	})
	return n, reason, nil
}

// Gone returns which of objects, names that Problems give, the repository
// no longer has at all, so that damage reported on them is over: a pack
// neither stored nor named by the index (a repair removed it, or a forget
// deleted it unused), a format-1 chunk no longer stored. Any other object
// (a version, an index object, a blob) is never gone here: every check
// examines those again.
func (r *Repository) Gone(ctx context.Context, objects []string) (map[string]bool, error) {
	gone := make(map[string]bool)
	var named map[ChunkID]bool // packs the index names, read when needed
	for _, name := range objects {
		pack, isPack := parsePackName(name)
		_, isChunk := parseChunkName(name)
		if !isPack && !isChunk {
			continue
		}
		_, err := r.backend.Stat(ctx, name)
		if err == nil {
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("look for %s in %s: %w", name, r.Location(), err)
		}
		if isPack {
			if named == nil {
				if named, err = r.indexedPacks(ctx); err != nil {
					return nil, err
				}
			}
			if named[pack] {
				continue // missing, and still needed: damage
			}
		}
		gone[name] = true
	}
	return gone, nil
}

// indexedPacks returns the packs the index objects name, keeping nothing
// else of them. Of a damaged index object, the packs named before the
// damage count: that errs on keeping damage reported.
func (r *Repository) indexedPacks(ctx context.Context) (map[ChunkID]bool, error) {
	objs, err := r.indexObjects(ctx)
	if err != nil {
		return nil, err
	}
	packs := make(map[ChunkID]bool)
	_, _, err = r.readIndexObjects(ctx, objs, func(plain []byte) error {
		return parseIndex(plain, func(pack ChunkID, _ blobRecord) { packs[pack] = true })
	})
	return packs, err
}
