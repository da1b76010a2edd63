package store

import (
	"context"
	"errors"
	"fmt"
)

// GCReport says what Forget removed.
type GCReport struct {
	// VersionsDeleted counts removed manifests.
	VersionsDeleted int `json:"versions_deleted"`
	// ChunksDeleted and BytesFreed count removed chunks and their stored size.
	ChunksDeleted int   `json:"chunks_deleted"`
	BytesFreed    int64 `json:"bytes_freed"`
}

// Forget deletes the given versions and then every chunk that no remaining
// version uses, in that order, so that a crash in between leaves only unused
// chunks, which the next Forget removes. It also removes the temporary
// files that processes killed while writing left behind (TempRemover). The caller must hold the exclusive
// lock: no backup can then be adding chunks that are not yet referenced.
func (r *Repository) Forget(ctx context.Context, ids []string) (*GCReport, error) {
	rep := &GCReport{}
	if err := r.checkHeld(); err != nil {
		return rep, fmt.Errorf("forget: %w", err)
	}
	for _, id := range ids {
		if err := r.DeleteVersion(ctx, id); err != nil {
			return rep, err
		}
		rep.VersionsDeleted++
	}
	used := make(map[ChunkID]bool)
	vids, err := r.VersionIDs(ctx)
	if err != nil {
		return rep, err
	}
	for _, id := range vids {
		v, err := r.LoadVersion(ctx, id)
		if err != nil {
			// An unreadable manifest may still name chunks: deleting any
			// chunk now could destroy data that a repair would recover.
			return rep, fmt.Errorf("garbage collection stopped, nothing more deleted: %w; run `piosnap check`", err)
		}
		for _, e := range v.Entries {
			for _, c := range e.Chunks {
				used[c] = true
			}
		}
	}
	chunks, err := r.Chunks(ctx)
	if err != nil {
		return rep, err
	}
	if err := r.checkHeld(); err != nil {
		return rep, fmt.Errorf("garbage collection stopped before deleting chunks: %w", err)
	}
	var errs []error
	for c, size := range chunks {
		if used[c] {
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
