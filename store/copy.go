package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
)

// CopyReport says what CopyVersions did.
type CopyReport struct {
	// Copied lists the IDs of the versions written to the target, oldest
	// first.
	Copied []string `json:"copied"`
	// Present counts the selected versions the target already had.
	Present int `json:"already_present"`
	// Chunks and Bytes count the chunks uploaded to the target and their
	// stored (compressed) size, manifests included in Bytes.
	Chunks int   `json:"chunks_copied"`
	Bytes  int64 `json:"bytes_copied"`
	// ChunksPresent counts the distinct chunks the copied versions use that
	// the target held before the copy, so they were not sent.
	ChunksPresent int `json:"chunks_already_present"`
	// Failed maps the ID of each selected version that could not be copied
	// to the reason; the target does not show it.
	Failed map[string]string `json:"failed,omitempty"`
}

// CopyVersions copies every version of from that filter selects (all when
// filter is nil) and that to lacks, comparing by manifest ID, so that a
// version keeps its ID in both repositories. Only the chunks to lacks are
// sent; each is read back and verified before it is uploaded, so damage in
// from is reported and never spread. A version's manifest is written last,
// after all its chunks, so an interrupted copy leaves no partial version in
// to, only unused chunks that the next copy reuses.
//
// Each version is held in from (see Hold) while it is copied, so retention
// there cannot delete it midway. The caller holds to's exclusive lock. A
// version that cannot be copied (damaged in from) is recorded in the
// report's Failed and does not stop the others; the error return then
// names them. A failure of either backend stops the copy.
func CopyVersions(ctx context.Context, from, to *Repository, filter func(*Version) bool) (*CopyReport, error) {
	rep := &CopyReport{}
	if from.config.ID == to.config.ID {
		return rep, fmt.Errorf("copy from %s to %s: both are the same repository (id %s); name two different stores", from.Location(), to.Location(), from.config.ID)
	}
	srcIDs, err := from.VersionIDs(ctx)
	if err != nil {
		return rep, fmt.Errorf("copy: %w", err)
	}
	dstIDs, err := to.VersionIDs(ctx)
	if err != nil {
		return rep, fmt.Errorf("copy: %w", err)
	}
	have := make(map[string]bool, len(dstIDs))
	for _, id := range dstIDs {
		have[id] = true
	}
	type todo struct {
		v    *Version
		data []byte
	}
	var work []todo
	for _, id := range srcIDs {
		data, v, err := from.readManifest(ctx, id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted by a concurrent forget
		}
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if !errors.Is(err, ErrDamaged) {
				return rep, fmt.Errorf("copy: %w", err)
			}
			rep.fail(id, err)
			continue
		}
		if filter != nil && !filter(v) {
			continue
		}
		if have[id] {
			rep.Present++
			continue
		}
		work = append(work, todo{v: v, data: data})
	}
	// Oldest first: an interrupted copy then leaves the target with a
	// contiguous history rather than only its newest versions.
	sort.SliceStable(work, func(i, j int) bool { return work[i].v.Time.Before(work[j].v.Time) })
	if len(work) == 0 {
		return rep, rep.err()
	}
	if err := to.Upgrade(ctx); err != nil {
		return rep, fmt.Errorf("copy: %w", err)
	}
	known, err := to.blobSet(ctx)
	if err != nil {
		return rep, fmt.Errorf("copy: %w", err)
	}
	c := &copier{from: from, to: to, rep: rep, known: known, present: make(map[ChunkID]bool), br: from.newBlobReader(), pk: newPacker(to, nil)}
	defer c.pk.close()
	for _, w := range work {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		err := c.version(ctx, w.v, w.data)
		if err == nil {
			rep.Copied = append(rep.Copied, w.v.ID)
			continue
		}
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, fs.ErrNotExist) {
			return rep, err
		}
		rep.fail(w.v.ID, err)
	}
	return rep, rep.err()
}

// copier is the state of one CopyVersions call.
type copier struct {
	from, to *Repository
	rep      *CopyReport
	known    *blobSet         // blobs the target holds
	present  map[ChunkID]bool // blobs counted in rep.ChunksPresent
	br       *blobReader      // reads from the source
	pk       *packer          // packs for the target
	buf      []byte
}

// version sends the blobs of one version the target lacks, packed anew,
// then the index, then its manifest.
func (c *copier) version(ctx context.Context, v *Version, manifest []byte) (err error) {
	from, to, rep := c.from, c.to, c.rep
	hold, err := from.Hold(ctx, "copy", v.ID)
	if err != nil {
		return fmt.Errorf("copy version %s of %s: %w", v.ShortID(), v.Host, err)
	}
	defer func() {
		if uerr := hold.Unlock(ctx); uerr != nil && err == nil {
			err = fmt.Errorf("copy version %s of %s: %w", v.ShortID(), v.Host, uerr)
		}
	}()
	var failed error
	written := c.pk.written
	werr := walkVersion(ctx, c.br, v, func(id ChunkID, typ uint8) bool {
		if failed != nil {
			return false
		}
		if typ == blobBase {
			typ = blobTree
		}
		if c.known.has(id) {
			// Walk on below a node the target holds: forget keeps a
			// delta leaf's base node but may drop pages only the base
			// names, so a node does not promise its pages.
			if !c.present[id] {
				c.present[id] = true
				rep.ChunksPresent++
			}
			return true
		}
		c.buf, failed = c.br.read(ctx, id, c.buf[:0])
		if failed != nil {
			return false
		}
		if failed = c.pk.add(ctx, typ, id, c.buf, nil); failed != nil {
			return false
		}
		c.known.added.add(id)
		c.present[id] = true // sent now: never counted as present
		rep.Chunks++
		return true
	})
	if werr == nil {
		werr = failed
	}
	if werr != nil {
		return fmt.Errorf("copy version %s of %s: %w", v.ShortID(), v.Host, werr)
	}
	n, err := c.pk.finish(ctx)
	rep.Bytes += c.pk.written - written + n
	if err != nil {
		return fmt.Errorf("copy version %s of %s: %w", v.ShortID(), v.Host, err)
	}
	if err := to.backend.Put(ctx, versionName(v.ID), bytes.NewReader(manifest), int64(len(manifest))); err != nil {
		return fmt.Errorf("copy version %s of %s: save manifest: %w", v.ShortID(), v.Host, err)
	}
	rep.Bytes += int64(len(manifest))
	return nil
}

// readManifest reads a manifest's exact bytes and checks them against id.
func (r *Repository) readManifest(ctx context.Context, id string) ([]byte, *Version, error) {
	rc, err := r.backend.Get(ctx, versionName(id))
	if err != nil {
		return nil, nil, fmt.Errorf("load version %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("load version %s: %w", id, err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != id {
		return nil, nil, fmt.Errorf("load version %s: manifest does not match its name (%w)", id, ErrDamaged)
	}
	var v Version
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, nil, fmt.Errorf("load version %s: manifest unreadable: %v (%w)", id, err, ErrDamaged)
	}
	if v.Format < oldestFormat || v.Format > FormatVersion {
		return nil, nil, fmt.Errorf("load version %s: manifest format %d is not supported: upgrade piosnap", id, v.Format)
	}
	v.ID = id
	return data, &v, nil
}

func (rep *CopyReport) fail(id string, err error) {
	if rep.Failed == nil {
		rep.Failed = make(map[string]string)
	}
	rep.Failed[id] = err.Error()
}

// err summarises the failed versions, or returns nil.
func (rep *CopyReport) err() error {
	if len(rep.Failed) == 0 {
		return nil
	}
	ids := make([]string, 0, len(rep.Failed))
	for id := range rep.Failed {
		ids = append(ids, id[:min(8, len(id))])
	}
	sort.Strings(ids)
	return fmt.Errorf("%d versions not copied because they are damaged in the source (%v): run `piosnap check --read-data` and `piosnap repair` on it; the other versions were copied", len(ids), ids)
}
