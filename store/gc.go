package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
)

// Repacking thresholds of Forget.
const (
	// repackUnused is the share of a pack's plain bytes that must be unused
	// before Forget rewrites the pack's used blobs into a new pack.
	repackUnused = 0.2
	// smallPack is the stored size under which a pack counts as small;
	// once smallPacks of them exist, Forget merges them all, so that the
	// number of objects stays bounded however many short runs there were.
	smallPack  = packSize / 8
	smallPacks = 16
)

// GCReport says what Forget removed.
type GCReport struct {
	// VersionsDeleted counts removed manifests.
	VersionsDeleted int `json:"versions_deleted"`
	// ChunksDeleted counts the distinct unused blobs (pages, chunks, tree
	// nodes) removed.
	ChunksDeleted int `json:"chunks_deleted"`
	// BytesFreed is the storage freed: objects deleted less objects written.
	BytesFreed int64 `json:"bytes_freed"`
	// PacksDeleted counts packs deleted; PacksWritten the packs written by
	// repacking the used blobs of mostly unused packs.
	PacksDeleted int `json:"packs_deleted"`
	PacksWritten int `json:"packs_written"`
	// BytesRepacked counts the stored bytes of the packs written.
	BytesRepacked int64 `json:"bytes_repacked"`
}

// Forget deletes the given versions, and then the blobs no remaining version
// uses:
//
//  1. the manifests;
//  2. every blob reachable from the remaining manifests (through their page
//     trees) is marked used;
//  3. the used blobs of packs that are mostly unused (or small, once there
//     are many small ones) are written into new packs;
//  4. a new index naming every pack kept and written is stored;
//  5. the index objects read in step 2 are deleted;
//  6. packs no longer indexed (unused, repacked, or left unindexed by an
//     interrupted run) and unused format-1 chunks are deleted.
//
// Each step leaves a repository whose manifests name only indexed blobs in
// packs that exist, so a crash anywhere leaves at worst unused packs and
// blobs, which the next Forget removes. It also removes the temporary files
// that processes killed while writing left behind (TempRemover). The
// caller must hold the exclusive
// lock: no backup can then be adding blobs that are not yet referenced.
func (r *Repository) Forget(ctx context.Context, ids []string) (*GCReport, error) {
	rep := &GCReport{}
	if err := r.checkHeld(); err != nil {
		return rep, fmt.Errorf("forget: %w", err)
	}
	for _, id := range ids {
		size, err := r.backend.Stat(ctx, versionName(id))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("forget version %s: %w", id, err)
		}
		if err := r.DeleteVersion(ctx, id); err != nil {
			return rep, err
		}
		rep.VersionsDeleted++
		rep.BytesFreed += size
	}
	defer r.dropIndex()
	st, err := r.scan(ctx)
	if err != nil {
		return rep, err
	}
	if len(st.damaged) > 0 {
		name := sortedKeys(st.damaged)[0]
		return rep, fmt.Errorf("garbage collection stopped, nothing more deleted: index object %s is damaged (%s), and the packs it names might still be needed; run `piosnap repair`, which indexes them again from their headers", name, st.damaged[name])
	}
	x := st.idx
	marks := newBlobMarks(x)
	vids, err := r.VersionIDs(ctx)
	if err != nil {
		return rep, err
	}
	br := r.newBlobReaderOn(&loadedIndex{r: r, f: everyPlace, x: x})
	for _, id := range vids {
		v, err := r.LoadVersion(ctx, id)
		if err == nil {
			err = marks.mark(ctx, br, v, nil)
		}
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			// An unreadable manifest or tree may still name blobs:
			// deleting any now could destroy data a repair would recover.
			return rep, fmt.Errorf("garbage collection stopped, nothing more deleted: version %s: %w; run `piosnap check --read-data`, then `piosnap repair` (with `--from` another store that has the data) if it finds damage; if a repair leaves that version incomplete and its data is no longer on the unit, `piosnap forget --version %.8s --store STORE` removes it", id, err, id)
		}
	}

	// Sort the packs into keep, repack and delete.
	type packUse struct{ used, total int64 }
	use := make([]packUse, len(x.packs))
	for i := range x.entries {
		p, n := x.packOf(i), int64(x.entries[i].len)
		use[p].total += n
		if marks.used[i] {
			use[p].used += n
		}
	}
	indexed := make(map[ChunkID]bool, len(x.packs))
	doomed := make(map[ChunkID]bool) // packs to delete once the new index is stored
	repack := make(map[uint32]bool)
	var small []uint32
	for n, p := range x.packs {
		indexed[p] = true
		size, exists := st.packs[p]
		u := use[n]
		switch {
		case !exists:
			// Missing: keep its index entries so `check` keeps
			// reporting the damage.
		case u.used == 0:
			doomed[p] = true
		case float64(u.total-u.used) > repackUnused*float64(u.total):
			repack[uint32(n)] = true
		case size < smallPack:
			small = append(small, uint32(n))
		}
	}
	if len(small) >= smallPacks {
		for _, n := range small {
			repack[uint32(n)] = true
		}
	}
	for p := range st.packs {
		if !indexed[p] {
			doomed[p] = true
		}
	}
	changed := len(repack) > 0
	for p := range doomed {
		changed = changed || indexed[p]
	}
	counted := make(map[ChunkID]bool)
	countDropped := func(i int) {
		if !marks.used[i] && !counted[x.entries[i].id] && (i == 0 || x.entries[i-1].id != x.entries[i].id) {
			counted[x.entries[i].id] = true
			rep.ChunksDeleted++
		}
	}

	if changed {
		pk := newPacker(r, nil)
		defer pk.close()
		pk.keepIDs = true
		if err := r.repack(ctx, x, repack, marks.used, pk); err != nil {
			if errors.Is(err, ErrDamaged) {
				return rep, fmt.Errorf("garbage collection stopped, nothing deleted but manifests: %w; run `piosnap repair`", err)
			}
			return rep, fmt.Errorf("garbage collection stopped, nothing deleted but manifests: %w", err)
		}
		if err := pk.flush(ctx); err != nil {
			return rep, fmt.Errorf("garbage collection stopped, nothing deleted but manifests: %w", err)
		}
		rep.PacksWritten = pk.packs
		rep.BytesRepacked = pk.written
		rep.BytesFreed -= pk.written + pk.indexed
		written, freed, err := r.replaceIndex(ctx, x, func(n uint32) bool { return doomed[x.packs[n]] || repack[n] }, pk.done, countDropped)
		rep.BytesFreed += freed - written
		if err != nil {
			return rep, fmt.Errorf("garbage collection stopped before deleting packs: %w", err)
		}
		for n := range repack {
			doomed[x.packs[n]] = true
		}
		// A pack written now may have the very name of one found unused:
		// repacking again what an interrupted forget already repacked
		// gives the same bytes. The new index names it, so it stays.
		for _, p := range pk.stored {
			delete(doomed, p)
		}
	}
	if err := r.checkHeld(); err != nil {
		return rep, fmt.Errorf("garbage collection stopped before deleting packs: %w", err)
	}
	var errs []error
	for _, p := range slices.SortedFunc(maps.Keys(doomed), func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) }) {
		if err := r.backend.Delete(ctx, packName(p)); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("delete pack %s: %w", p, err))
			continue
		}
		rep.PacksDeleted++
		rep.BytesFreed += st.packs[p]
	}
	for c, size := range st.loose {
		if marks.loose[c] {
			continue
		}
		if err := r.DeleteChunk(ctx, c); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		rep.ChunksDeleted++
		rep.BytesFreed += size
	}
	if tr, ok := r.backend.(TempRemover); ok {
		// Partial files of processes killed during a write: invisible,
		// but they take space. Old enough not to be a live write.
		if _, err := tr.RemoveStaleTemp(ctx, "", LockStale); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// replaceIndex stores one new set of index objects naming every entry of
// x whose pack drop does not reject, and the packs in done (stored by a
// packer that wrote no index for them), then checks that the lock is still
// held and deletes the index objects x was read from. left is called for
// each entry left out. It returns the bytes of index objects written and
// deleted. Until the old objects are deleted, both sets name the kept
// blobs: a crash leaves blobs indexed twice, which every reader accepts.
func (r *Repository) replaceIndex(ctx context.Context, x *index, drop func(pack uint32) bool, done []indexPack, left func(i int)) (written, deleted int64, err error) {
	iw := r.newIndexWriter()
	order := make([]int, len(x.entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(x.packOf(a)) - int(x.packOf(b)) })
	for k, i := range order {
		n := x.packOf(i)
		if drop(n) {
			left(i)
			continue
		}
		if k > 0 && x.packOf(order[k-1]) == n && x.entries[order[k-1]].id == x.entries[i].id {
			continue // named twice, by an old index object and a new one
		}
		if err := iw.add(ctx, x.packs[n], x.record(i)); err != nil {
			return iw.bytes, 0, err
		}
	}
	for _, p := range done {
		for _, rec := range p.Recs {
			if err := iw.add(ctx, p.ID, rec); err != nil {
				return iw.bytes, 0, err
			}
		}
	}
	if err := iw.close(ctx); err != nil {
		return iw.bytes, 0, err
	}
	if err := r.checkHeld(); err != nil {
		return iw.bytes, 0, fmt.Errorf("nothing more deleted: %w", err)
	}
	for _, name := range x.objects {
		if slices.Contains(iw.names, name) {
			continue // the same records, written again under the same name
		}
		size, err := r.backend.Stat(ctx, name)
		if err == nil {
			err = r.backend.Delete(ctx, name)
		}
		if err != nil {
			return iw.bytes, deleted, fmt.Errorf("delete old index %s: %w", name, err)
		}
		deleted += size
	}
	return iw.bytes, deleted, nil
}

// repack reads the packs chosen and adds their used blobs to pk, verifying
// each. A damaged blob stops it: the caller then deletes nothing.
func (r *Repository) repack(ctx context.Context, x *index, packs map[uint32]bool, used []bool, pk *packer) error {
	want := make(map[uint32]map[ChunkID]bool)
	for i := range x.entries {
		if p := x.packOf(i); packs[p] && used[i] {
			if want[p] == nil {
				want[p] = make(map[ChunkID]bool)
			}
			want[p][x.entries[i].id] = true
		}
	}
	for _, n := range slices.Sorted(maps.Keys(packs)) {
		p := x.packs[n]
		data, err := r.readWhole(ctx, packName(p), 1<<30)
		if err != nil {
			return fmt.Errorf("repack %s: %w", p, err)
		}
		if ChunkID(sha256.Sum256(data)) != p {
			return fmt.Errorf("repack %s: pack content does not match its name (%w)", p, ErrDamaged)
		}
		recs, err := r.readPackHeader(data)
		if err != nil {
			return fmt.Errorf("repack %s: %w", p, err)
		}
		var wanted []blobRecord
		for _, rec := range recs {
			if want[n][rec.ID] {
				delete(want[n], rec.ID)
				wanted = append(wanted, rec)
			}
		}
		err = r.packBlobs(data, wanted, func(rec blobRecord, blob []byte, bad string) error {
			if bad != "" {
				return fmt.Errorf("repack %s: %s (%w)", p, bad, ErrDamaged)
			}
			return pk.add(ctx, rec.Type, rec.ID, blob, nil)
		})
		if err != nil {
			return err
		}
		if len(want[n]) > 0 {
			return fmt.Errorf("repack %s: the index names blobs its header lacks (%w)", p, ErrDamaged)
		}
	}
	return nil
}
