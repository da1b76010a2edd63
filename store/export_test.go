package store

import "context"

// BlobPlace returns the backend name of the pack holding blob id and the
// offset and length of the frame holding it, for tests that damage packs.
func BlobPlace(ctx context.Context, r *Repository, id ChunkID) (pack string, frameOff, frameLen int64, err error) {
	x, err := r.reloadIndex(ctx)
	if err != nil {
		return "", 0, 0, err
	}
	i := x.find(id)
	if i < 0 {
		return "", 0, 0, errNotIndexed
	}
	e := x.entries[i]
	return packName(x.packs[e.pack]), int64(e.frameOff), int64(e.frameLen), nil
}
