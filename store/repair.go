package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
)

// RepairOptions says where Repair may look for lost blobs and whether it
// changes anything.
type RepairOptions struct {
	// From, if set, is another repository that blobs which cannot be
	// salvaged are fetched from: by ID, each verified against it.
	From *Repository
	// DryRun reads and reports, and changes nothing.
	DryRun bool
	// Packs, if not empty, are the only packs read (names as Problems
	// give them, packs/xx/ID): the others are taken for sound, so that a
	// pack check or the daemon found damaged is repaired without reading
	// the whole store. Packs the index names that do not exist are found
	// either way.
	Packs []string
}

// DamagedPack is a pack Repair found damaged or missing.
type DamagedPack struct {
	Pack   string `json:"pack"`
	Reason string `json:"reason"`
}

// RepairReport says what Repair found and did.
type RepairReport struct {
	DryRun bool `json:"dry_run"`
	// PacksRead counts the packs read and verified.
	PacksRead int `json:"packs_read"`
	// Damaged lists the packs found damaged or missing: all of them are
	// removed (from the index, and from the store if they exist).
	Damaged []DamagedPack `json:"damaged"`
	// BlobsSalvaged counts the blobs versions use that damaged packs
	// still held intact, written again into new packs; BlobsFetched those
	// taken from RepairOptions.From; BlobsLost those the versions use and
	// the repository no longer has: no longer indexed, so that the next
	// backup of the same data stores them again.
	BlobsSalvaged int `json:"blobs_salvaged"`
	BlobsFetched  int `json:"blobs_fetched"`
	BlobsLost     int `json:"blobs_lost"`
	// IndexDamaged lists the index objects found damaged: they are
	// deleted, and PacksIndexed counts the sound packs no other index
	// object named, indexed again from their own headers.
	IndexDamaged []string `json:"damaged_index_objects"`
	PacksIndexed int      `json:"packs_indexed"`
	// PacksWritten counts the new packs; PacksDeleted the damaged packs
	// removed.
	PacksWritten int `json:"packs_written"`
	PacksDeleted int `json:"packs_deleted"`
	// Incomplete lists the versions that use lost blobs, as "ID (host
	// date)" like a Problem's: they cannot be rebuilt completely until a
	// backup stores those blobs again.
	Incomplete []string `json:"incomplete_versions"`
}

// Repair reads every pack and makes a repository whose packs are damaged
// healthy again, in the manner of restic's `repair packs`:
//
//  1. every pack is read and verified as check --read-data does; a pack
//     that is missing while the index names it, or whose content does not
//     match its name, header or index, is damaged; when an index object is
//     damaged, the packs no other index object names are indexed again
//     from their own headers (restic's `repair index`);
//  2. every version is walked: each blob it uses that no sound pack holds
//     is needed;
//  3. a needed blob that a damaged pack still holds intact (its frame
//     decompresses, its content matches its ID) is written into a new
//     pack; else it is fetched from opt.From when that has it (verified),
//     else it is lost;
//  4. one new set of index objects names every sound pack and the new
//     packs, and the index objects read in step 1, and the damaged ones,
//     are deleted;
//  5. the damaged packs, and damaged packs no index names, are deleted.
//
// Lost blobs are then in no index, so the next backup of the same data
// stores them again; the versions that use them are reported. With
// opt.From, blobs already missing (lost by an earlier repair) are fetched
// too. A crash leaves at worst blobs indexed twice (sound in their new
// pack), unindexed new packs, or damaged packs no index names: check
// accepts the first two, and the next repair (or forget) deletes the rest.
// The caller holds the exclusive lock unless opt.DryRun.
func (r *Repository) Repair(ctx context.Context, opt RepairOptions) (*RepairReport, error) {
	rep := &RepairReport{DryRun: opt.DryRun, Damaged: []DamagedPack{}, IndexDamaged: []string{}, Incomplete: []string{}}
	if !opt.DryRun {
		r.lockMu.Lock()
		held := r.held != nil
		r.lockMu.Unlock()
		if !held {
			return rep, fmt.Errorf("repair %s: the exclusive lock is not held", r.Location())
		}
		if err := r.checkHeld(); err != nil {
			return rep, fmt.Errorf("repair: %w", err)
		}
	}
	if opt.From != nil && opt.From.config.ID == r.config.ID {
		return rep, fmt.Errorf("repair %s from %s: both are the same repository (id %s); name another store", r.Location(), opt.From.Location(), r.config.ID)
	}
	defer r.dropIndex()
	st, err := r.scan(ctx)
	if err != nil {
		return rep, err
	}
	x := st.idx
	rep.IndexDamaged = append(rep.IndexDamaged, sortedKeys(st.damaged)...)
	only := make(map[ChunkID]bool, len(opt.Packs))
	for _, name := range opt.Packs {
		p, ok := parsePackName(name)
		if !ok {
			return rep, fmt.Errorf("repair: %q is not a pack's name: give it as check prints it, packs/xx/ followed by 64 hex digits", name)
		}
		_, stored := st.packs[p]
		if !stored && !slices.Contains(x.packs, p) {
			return rep, fmt.Errorf("repair: %s is not in %s: neither stored nor named by the index", name, r.Location())
		}
		only[p] = true
	}

	// 1. Read every pack.
	byPack := make([][]int, len(x.packs))
	for i := range x.entries {
		byPack[x.packOf(i)] = append(byPack[x.packOf(i)], i)
	}
	bad := make(map[uint32]bool)                      // damaged or missing indexed packs, by position in x.packs
	indexed := make(map[ChunkID]uint32, len(x.packs)) // position in x.packs
	for n, p := range x.packs {
		indexed[p] = uint32(n)
	}
	var strays []ChunkID    // damaged packs no index names
	var reindex []indexPack // packs no index names, while an index object is damaged
	var badNew []ChunkID    // those of them that are damaged
	for _, p := range slices.SortedFunc(maps.Keys(st.packs), compareIDs) {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if len(only) > 0 && !only[p] {
			continue
		}
		n, isIndexed := indexed[p]
		var entries []int
		if isIndexed {
			entries = byPack[n]
		}
		_, reason, err := r.verifyPack(ctx, p, x, entries)
		if err != nil {
			return rep, fmt.Errorf("repair: %w", err)
		}
		rep.PacksRead++
		if reason == "gone" {
			reason = "pack missing" // deleted meanwhile by someone not holding the lock
		}
		if !isIndexed && len(st.damaged) > 0 && reason != "pack missing" {
			// Perhaps named only by a damaged index object: index it
			// again from its own header, as restic's repair index does,
			// so that its blobs are found (and, if it is damaged,
			// salvaged).
			data, err := r.readWhole(ctx, packName(p), 1<<30)
			if err != nil && !errors.Is(err, ErrDamaged) {
				return rep, fmt.Errorf("repair: read pack %s: %w", p, err)
			}
			if recs, herr := r.readPackHeader(data); err == nil && herr == nil {
				reindex = append(reindex, indexPack{ID: p, Recs: recs})
				if reason != "" {
					rep.Damaged = append(rep.Damaged, DamagedPack{Pack: packName(p), Reason: reason})
					badNew = append(badNew, p)
				}
				continue
			}
		}
		if reason == "" {
			continue
		}
		rep.Damaged = append(rep.Damaged, DamagedPack{Pack: packName(p), Reason: reason})
		if isIndexed {
			bad[n] = true
		} else {
			strays = append(strays, p)
		}
	}
	for n, p := range x.packs {
		if _, ok := st.packs[p]; !ok {
			bad[uint32(n)] = true
			rep.Damaged = append(rep.Damaged, DamagedPack{Pack: packName(p), Reason: "pack missing"})
		}
	}
	slices.SortFunc(rep.Damaged, func(a, b DamagedPack) int { return cmp.Compare(a.Pack, b.Pack) })
	if len(reindex) > 0 {
		x.addPacks(reindex)
		rep.PacksIndexed = len(reindex)
		for n, p := range x.packs {
			if slices.Contains(badNew, p) {
				bad[uint32(n)] = true
			}
		}
		byPack = make([][]int, len(x.packs))
		for i := range x.entries {
			byPack[x.packOf(i)] = append(byPack[x.packOf(i)], i)
		}
	}

	// 2. Find the blobs the versions use that no sound pack holds: those
	// of damaged packs, and (for --from) any missing already, e.g. lost by
	// an earlier repair. Tree nodes the repository cannot give are read
	// from opt.From, so that the pages below them are found too.
	sound := func(id ChunkID) bool {
		for j := x.find(id); j >= 0 && j < len(x.entries) && x.entries[j].id == id; j++ {
			if _, ok := st.packs[x.packs[x.packOf(j)]]; ok && !bad[x.packOf(j)] {
				return true
			}
		}
		_, ok := st.loose[id]
		return ok
	}
	br := r.newBlobReaderOn(&loadedIndex{r: r, f: everyPlace, x: x})
	if opt.From != nil {
		br.fallback = opt.From.newBlobReader()
	}
	need := make(map[ChunkID]uint8) // blob -> type
	walked := make(map[ChunkID]bool)
	vids, err := r.VersionIDs(ctx)
	if err != nil {
		return rep, err
	}
	for _, vid := range vids {
		v, err := r.LoadVersion(ctx, vid)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			continue // a damaged manifest: check reports it
		}
		// A tree node that cannot be read ends its entry's walk; the node
		// itself is in need.
		_ = walkVersion(ctx, br, v, func(id ChunkID, typ uint8) bool {
			switch typ {
			case blobTree:
				// As blobMarks: below a node walked before, all is seen.
				if walked[id] {
					return false
				}
				walked[id] = true
			case blobBase:
				// Read only as a base: its pages may be walked later.
				typ = blobTree
			}
			if !sound(id) {
				need[id] = typ
			}
			return true
		})
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	if len(need) == 0 && len(rep.Damaged) == 0 && len(st.damaged) == 0 {
		return rep, nil
	}

	// 3. Salvage what the damaged packs still hold.
	var pk *packer
	add := func(typ uint8, id ChunkID, blob []byte) error {
		if opt.DryRun {
			return nil
		}
		return pk.add(ctx, typ, id, blob, nil)
	}
	if !opt.DryRun {
		pk = newPacker(r, nil)
		pk.keepIDs = true
		defer pk.close()
	}
	got := make(map[ChunkID]bool)
	for _, n := range slices.Sorted(maps.Keys(bad)) {
		p := x.packs[n]
		if _, ok := st.packs[p]; !ok {
			continue
		}
		data, err := r.readWhole(ctx, packName(p), 1<<30)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrDamaged) {
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("repair: read pack %s: %w", p, err)
		}
		var recs []blobRecord
		for _, i := range byPack[n] {
			if _, ok := need[x.entries[i].id]; ok && !got[x.entries[i].id] {
				recs = append(recs, x.record(i))
			}
		}
		slices.SortFunc(recs, func(a, b blobRecord) int {
			return cmp.Or(cmp.Compare(a.FrameOff, b.FrameOff), cmp.Compare(a.Off, b.Off))
		})
		err = r.packBlobs(data, recs, func(rec blobRecord, blob []byte, why string) error {
			if why != "" || got[rec.ID] {
				return nil
			}
			got[rec.ID] = true
			rep.BlobsSalvaged++
			return add(rec.Type, rec.ID, blob)
		})
		if err != nil {
			return rep, fmt.Errorf("repair: %w", err)
		}
	}

	// 4. Fetch the rest from opt.From, or give it up.
	lost := make(map[ChunkID]bool)
	var buf []byte
	for _, id := range slices.SortedFunc(maps.Keys(need), compareIDs) {
		if got[id] {
			continue
		}
		if br.fallback != nil {
			buf, err = br.fallback.read(ctx, id, buf[:0])
			switch {
			case err == nil:
				rep.BlobsFetched++
				if err := add(need[id], id, buf); err != nil {
					return rep, fmt.Errorf("repair: %w", err)
				}
				continue
			case ctx.Err() != nil:
				return rep, ctx.Err()
			case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrDamaged):
				return rep, fmt.Errorf("repair: fetch blob %s from %s: %w", id, opt.From.Location(), err)
			}
		}
		lost[id] = true
	}
	rep.BlobsLost = len(lost)

	if !opt.DryRun {
		if err := r.commitRepair(ctx, rep, x, st, bad, strays, pk); err != nil {
			return rep, err
		}
	}

	// The versions the lost blobs leave incomplete.
	if len(lost) > 0 {
		users, err := r.usersOf(ctx, br, func(id ChunkID) bool { return lost[id] })
		if err != nil {
			return rep, err
		}
		for _, us := range users {
			for _, u := range us {
				if !slices.Contains(rep.Incomplete, u) {
					rep.Incomplete = append(rep.Incomplete, u)
				}
			}
		}
		slices.Sort(rep.Incomplete)
	}
	return rep, nil
}

// commitRepair stores what Repair salvaged and fetched (in pk) and removes
// the damaged packs: the new packs, then an index without the damaged
// packs, then the damaged packs themselves (see Repair).
func (r *Repository) commitRepair(ctx context.Context, rep *RepairReport, x *index, st *repoState, bad map[uint32]bool, strays []ChunkID, pk *packer) error {
	if len(bad) == 0 && len(st.damaged) == 0 {
		// Nothing to take out of the index: index the new packs only.
		if _, err := pk.finish(ctx); err != nil {
			return fmt.Errorf("repair stopped, nothing deleted: %w", err)
		}
	} else {
		if err := pk.flush(ctx); err != nil {
			return fmt.Errorf("repair stopped, nothing deleted: %w", err)
		}
		if _, _, err := r.replaceIndex(ctx, x, func(n uint32) bool { return bad[n] }, pk.done, func(int) {}); err != nil {
			return fmt.Errorf("repair stopped before deleting packs: %w", err)
		}
	}
	rep.PacksWritten = pk.packs
	r.dropIndex()
	if err := r.checkHeld(); err != nil {
		return fmt.Errorf("repair stopped before deleting packs: %w", err)
	}
	// The damaged index objects: what they named that still exists is in
	// the new index now.
	for _, name := range sortedKeys(st.damaged) {
		if err := r.backend.Delete(ctx, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("repair stopped before deleting packs: delete damaged index object %s: %w", name, err)
		}
	}
	doomed := strays
	for n := range bad {
		if _, ok := st.packs[x.packs[n]]; ok {
			doomed = append(doomed, x.packs[n])
		}
	}
	var errs []error
	for _, p := range doomed {
		if slices.Contains(pk.stored, p) {
			// Written again whole, byte for byte, under its own name:
			// the object now holds what its name says.
			continue
		}
		if err := r.backend.Delete(ctx, packName(p)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("delete damaged pack %s: %w", p, err))
			continue
		}
		rep.PacksDeleted++
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("repair: %w; run it again", err)
	}
	return nil
}

func compareIDs(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) }
