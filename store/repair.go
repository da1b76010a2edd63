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
	// BlobsSalvaged counts the blobs of damaged packs that still matched
	// their hash, written again into new packs; BlobsFetched those taken
	// from RepairOptions.From; BlobsLost those found in neither, no longer
	// indexed, so that the next backup of the same data stores them again.
	BlobsSalvaged int `json:"blobs_salvaged"`
	BlobsFetched  int `json:"blobs_fetched"`
	BlobsLost     int `json:"blobs_lost"`
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
// healthy again, in the manner of `restic repair packs`:
//
//  1. every pack the index names is read and verified as check --read-data
//     does; a pack that is missing, or whose content does not match its
//     name, header or index, is damaged;
//  2. every blob of a damaged pack that has no sound copy elsewhere and
//     still matches its hash is written into a new pack; one that does
//     not is fetched from opt.From when it holds it (verified), else lost;
//  3. one new set of index objects names every sound pack and the new
//     packs, and the index objects read in step 1 are deleted;
//  4. the damaged packs, and damaged packs no index names, are deleted.
//
// Lost blobs are then in no index, so the next backup stores them again;
// the versions that use them are reported. A crash leaves at worst blobs
// indexed twice (sound in their new pack), unindexed new packs, or
// damaged packs no index names: check accepts the first two, and the next
// repair (or forget) deletes the rest. The caller holds the exclusive
// lock unless opt.DryRun.
func (r *Repository) Repair(ctx context.Context, opt RepairOptions) (*RepairReport, error) {
	rep := &RepairReport{DryRun: opt.DryRun, Damaged: []DamagedPack{}, Incomplete: []string{}}
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
	if len(st.damaged) > 0 {
		name := sortedKeys(st.damaged)[0]
		return rep, fmt.Errorf("repair stopped, nothing changed: index object %s is damaged (%s); repair does not rebuild the index from the packs", name, st.damaged[name])
	}
	x := st.idx

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
	var strays []ChunkID // damaged packs no index names
	for _, p := range slices.SortedFunc(maps.Keys(st.packs), compareIDs) {
		if err := ctx.Err(); err != nil {
			return rep, err
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
		switch {
		case reason == "":
			continue
		case reason == "gone":
			reason = "pack missing" // deleted meanwhile by someone not holding the lock
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
	if len(rep.Damaged) == 0 {
		return rep, nil
	}

	// 2. Salvage the blobs of damaged packs that have no sound copy.
	need := make(map[ChunkID]bool)
	for n := range bad {
		for _, i := range byPack[n] {
			id := x.entries[i].id
			sound := false
			for j := x.find(id); j >= 0 && j < len(x.entries) && x.entries[j].id == id; j++ {
				damaged := bad[x.packOf(j)]
				sound = sound || !damaged
			}
			if !sound {
				need[id] = true
			}
		}
	}
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
			if id := x.entries[i].id; need[id] && !got[id] {
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

	// Fetch what could not be salvaged, or give it up.
	lost := make(map[ChunkID]bool)
	var br *blobReader
	if opt.From != nil {
		br = opt.From.newBlobReader()
	}
	var buf []byte
	for _, id := range slices.SortedFunc(maps.Keys(need), compareIDs) {
		if got[id] {
			continue
		}
		if br != nil {
			buf, err = br.read(ctx, id, buf[:0])
			switch {
			case err == nil:
				rep.BlobsFetched++
				if err := add(x.record(x.find(id)).Type, id, buf); err != nil {
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
		// 3. The new packs, then the new index, then the old index gone.
		if err := pk.flush(ctx); err != nil {
			return rep, fmt.Errorf("repair stopped, nothing deleted: %w", err)
		}
		rep.PacksWritten = pk.packs
		if len(bad) > 0 {
			if _, _, err := r.replaceIndex(ctx, x, func(n uint32) bool { return bad[n] }, pk.done, func(int) {}); err != nil {
				return rep, fmt.Errorf("repair stopped before deleting packs: %w", err)
			}
		}
		// 4. The damaged packs, now named by no index.
		if err := r.checkHeld(); err != nil {
			return rep, fmt.Errorf("repair stopped before deleting packs: %w", err)
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
					return rep, ctx.Err()
				}
				errs = append(errs, fmt.Errorf("delete damaged pack %s: %w", p, err))
				continue
			}
			rep.PacksDeleted++
		}
		if err := errors.Join(errs...); err != nil {
			return rep, fmt.Errorf("repair: %w; run it again", err)
		}
		r.dropIndex()
	}

	// The versions the lost blobs leave incomplete.
	if len(lost) > 0 {
		var src indexSource = repoIndex{r}
		if opt.DryRun {
			src = &loadedIndex{r: r, f: everyPlace, x: x}
		}
		users, err := r.usersOf(ctx, src, func(id ChunkID) bool { return lost[id] })
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

func compareIDs(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) }
