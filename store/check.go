package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
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
	// Versions and Chunks count what was examined.
	Versions int `json:"versions"`
	Chunks   int `json:"chunks"`
	// ChunksRead counts chunks read and verified (with ReadData).
	ChunksRead int `json:"chunks_read"`
	// Unused counts chunks no version references (left by an interrupted
	// run; the next forget removes them). They are not damage.
	Unused int `json:"unused_chunks"`
	// Problems lists the damage, empty when the repository is sound.
	Problems []Problem `json:"problems"`
}

// OK reports whether no damage was found.
func (c *CheckReport) OK() bool { return len(c.Problems) == 0 }

// Check verifies that every manifest is readable and that every chunk it names
// exists; with readData it also reads every chunk and verifies its hash. It
// reports each problem with the versions it affects and does not stop at the
// first.
func (r *Repository) Check(ctx context.Context, readData bool) (*CheckReport, error) {
	rep := &CheckReport{}
	chunks, err := r.Chunks(ctx)
	if err != nil {
		return nil, err
	}
	rep.Chunks = len(chunks)
	ids, err := r.VersionIDs(ctx)
	if err != nil {
		return nil, err
	}
	users := make(map[ChunkID][]string)
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
		label := v.ShortID() + " (" + v.Host + " " + v.Time.Format("2006-01-02 15:04") + ")"
		seen := make(map[ChunkID]bool)
		for _, e := range v.Entries {
			for _, c := range e.Chunks {
				if !seen[c] {
					seen[c] = true
					users[c] = append(users[c], label)
				}
			}
		}
	}
	var bad []ChunkID
	for c := range users {
		if _, ok := chunks[c]; !ok {
			bad = append(bad, c)
		}
	}
	if len(bad) > 0 {
		// A backup running meanwhile stores its chunks and then its
		// manifest: a manifest newer than the chunk listing names chunks
		// the listing lacks. Look again before calling them missing.
		bad, err = r.stillMissing(ctx, bad)
		if err != nil {
			return nil, err
		}
	}
	sortIDs(bad)
	for _, c := range bad {
		rep.Problems = append(rep.Problems, Problem{Object: chunkName(c), Reason: "chunk missing", Versions: users[c]})
	}
	for c := range chunks {
		if _, ok := users[c]; !ok {
			rep.Unused++
		}
	}
	if readData {
		all := make([]ChunkID, 0, len(chunks))
		for c := range chunks {
			all = append(all, c)
		}
		sortIDs(all)
		var buf []byte
		for _, c := range all {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			buf, err = r.ReadChunk(ctx, c, buf[:0])
			rep.ChunksRead++
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if !errors.Is(err, ErrDamaged) && !errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("check %s: %w", r.Location(), err)
				}
				if errors.Is(err, fs.ErrNotExist) {
					// Gone since the listing: a forget running meanwhile
					// removes a version's chunks after the version. It is
					// damage only if a version present now needs it.
					still, err := r.stillNeeded(ctx, []ChunkID{c})
					if err != nil {
						return nil, err
					}
					if len(still) == 0 {
						continue
					}
				}
				rep.Problems = append(rep.Problems, Problem{Object: chunkName(c), Reason: strings.TrimPrefix(err.Error(), "read chunk "+c.String()+": "), Versions: users[c]})
			}
		}
	}
	return rep, nil
}

func sortIDs(ids []ChunkID) {
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
}

// stillMissing keeps the chunks that are still absent.
func (r *Repository) stillMissing(ctx context.Context, ids []ChunkID) ([]ChunkID, error) {
	var out []ChunkID
	for _, id := range ids {
		_, err := r.backend.Stat(ctx, chunkName(id))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, id)
		case err != nil:
			return nil, fmt.Errorf("check %s: %w", r.Location(), err)
		}
	}
	return out, nil
}

// stillNeeded keeps the chunks that some version present now still names.
func (r *Repository) stillNeeded(ctx context.Context, ids []ChunkID) ([]ChunkID, error) {
	want := make(map[ChunkID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	vids, err := r.VersionIDs(ctx)
	if err != nil {
		return nil, err
	}
	needed := make(map[ChunkID]bool)
	for _, id := range vids {
		v, err := r.LoadVersion(ctx, id)
		if err != nil {
			continue // reported above, or deleted meanwhile
		}
		for _, e := range v.Entries {
			for _, c := range e.Chunks {
				if want[c] {
					needed[c] = true
				}
			}
		}
	}
	var out []ChunkID
	for _, id := range ids {
		if needed[id] {
			out = append(out, id)
		}
	}
	return out, nil
}
