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
	"strings"
	"time"
)

// Version kinds.
const (
	// KindBackup is a version taken by a backup run.
	KindBackup = "backup"
	// KindSafety is the state of a unit taken just before a restore replaced it.
	KindSafety = "safety"
	// KindImport is a ZIP exported by hand and added with `piosnap import`.
	KindImport = "import"
)

// Entry is one member of a version: a file or a directory.
type Entry struct {
	// Name is the entry's path inside the unit's directory, as in the unit's
	// own export ZIP; directories end in "/".
	Name string `json:"name"`
	// Mode holds the permission bits and fs.ModeDir for directories.
	Mode fs.FileMode `json:"mode"`
	// Modified is the entry's modification time as the archive recorded it.
	Modified time.Time `json:"mtime"`
	// Size is the content's length in bytes.
	Size int64 `json:"size"`
	// CRC32 is the IEEE CRC-32 of the content, as ZIP files record it.
	CRC32 uint32 `json:"crc32"`
	// Chunks lists the content's chunks in order (content-defined chunks
	// of an ordinary file).
	Chunks []ChunkID `json:"chunks,omitempty"`
	// Tree is the root of the content's page tree (a SQLite database or
	// -wal file, stored page by page); nil for other entries.
	Tree *ChunkID `json:"tree,omitempty"`
	// Owner is the numeric owner and group, recorded by directory
	// sources; nil in Pioreactor versions.
	Owner *Owner `json:"owner,omitempty"`
	// Link is a symbolic link's target (Mode has fs.ModeSymlink); the
	// link is stored as a link, never followed.
	Link string `json:"link,omitempty"`
}

// Owner is a numeric user and group ID.
type Owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// Database describes the database dump a directory source's version holds.
type Database struct {
	// Engine is "mariadb", "mysql", "postgres" or "command".
	Engine string `json:"engine"`
	// Name is the database's name.
	Name string `json:"name"`
	// Entry is the name of the entry holding the dump.
	Entry string `json:"entry"`
}

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e.Mode.IsDir() }

// Version is one host's state at one time: the manifest a backup writes last.
type Version struct {
	// ID is the hex SHA-256 of the manifest; it is not stored inside it.
	ID string `json:"-"`
	// Format is the manifest format: FormatVersion for versions written
	// now, 1 for versions written before packs existed.
	Format int `json:"format"`
	// Host is the unit the version belongs to.
	Host string `json:"host"`
	// Time is when the version was taken, in UTC.
	Time time.Time `json:"time"`
	// Zone is the IANA time zone retention and schedules use for this version.
	Zone string `json:"zone"`
	// Kind is KindBackup, KindSafety or KindImport.
	Kind string `json:"kind"`
	// Source names the source kind, e.g. "pioreactor".
	Source string `json:"source"`
	// AppVersion is the Pioreactor version from the export metadata, if any.
	AppVersion string `json:"app_version,omitempty"`
	// Metadata is the export metadata object exactly as the unit wrote it.
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Note is a free-form remark, e.g. why a safety snapshot was taken.
	Note string `json:"note,omitempty"`
	// Paths are the directories a directory source's version holds; entry
	// names are these paths without their leading "/". Empty for Pioreactor
	// versions.
	Paths []string `json:"paths,omitempty"`
	// Database describes the database dump the version holds, if any.
	Database *Database `json:"database,omitempty"`
	// Size is the total content size of all entries.
	Size int64 `json:"size"`
	// Entries lists the members in archive order.
	Entries []Entry `json:"entries"`
}

// ShortID is the first eight hex digits of the ID, as lists show it.
func (v *Version) ShortID() string {
	if len(v.ID) < 8 {
		return v.ID
	}
	return v.ID[:8]
}

// versionPrefix is where manifests live in the backend.
const versionPrefix = "versions/"

func versionName(id string) string { return versionPrefix + id + ".json" }

// encodeVersion serialises a manifest and returns it with its ID.
func encodeVersion(v *Version) ([]byte, string, error) {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return nil, "", fmt.Errorf("encode manifest: %w", err)
	}
	data = append(data, '\n')
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:]), nil
}

// SaveVersion writes a version's manifest, which makes the version visible.
// Every chunk it names must already be stored. It sets v.ID.
func (r *Repository) SaveVersion(ctx context.Context, v *Version) error {
	if err := r.checkHeld(); err != nil {
		return fmt.Errorf("save version of %s: %w", v.Host, err)
	}
	v.Format = FormatVersion
	v.Time = v.Time.UTC()
	data, id, err := encodeVersion(v)
	if err != nil {
		return err
	}
	if err := r.backend.Put(ctx, versionName(id), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("save version of %s: %w", v.Host, err)
	}
	v.ID = id
	return nil
}

// LoadVersion reads one manifest by its full ID and checks it against its ID.
func (r *Repository) LoadVersion(ctx context.Context, id string) (*Version, error) {
	rc, err := r.backend.Get(ctx, versionName(id))
	if err != nil {
		return nil, fmt.Errorf("load version %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("load version %s: %w", id, err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != id {
		return nil, fmt.Errorf("load version %s: manifest does not match its name (%w)", id, ErrDamaged)
	}
	var v Version
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("load version %s: manifest unreadable: %v (%w)", id, err, ErrDamaged)
	}
	if v.Format < oldestFormat || v.Format > FormatVersion {
		return nil, fmt.Errorf("load version %s: manifest format %d is not supported: upgrade piosnap", id, v.Format)
	}
	v.ID = id
	return &v, nil
}

// VersionIDs lists the IDs of all versions.
func (r *Repository) VersionIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := r.backend.List(ctx, versionPrefix, func(name string, _ int64) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(name, versionPrefix), ".json")
		if ok && len(id) == 64 && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list versions in %s: %w", r.Location(), err)
	}
	sort.Strings(ids)
	return ids, nil
}

// Versions loads every version, newest first (ties broken by host, then ID).
// A manifest that cannot be read is an error naming it; `piosnap check`
// reports such damage without stopping.
func (r *Repository) Versions(ctx context.Context) ([]*Version, error) {
	ids, err := r.VersionIDs(ctx)
	if err != nil {
		return nil, err
	}
	vs := make([]*Version, 0, len(ids))
	for _, id := range ids {
		v, err := r.LoadVersion(ctx, id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted by a concurrent forget
		}
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	SortVersions(vs)
	return vs, nil
}

// SortVersions orders versions newest first, then by host and ID.
func SortVersions(vs []*Version) {
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.After(b.Time)
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.ID < b.ID
	})
}

// DeleteVersion removes a version's manifest. Its chunks stay until garbage
// collection finds them unused.
func (r *Repository) DeleteVersion(ctx context.Context, id string) error {
	if err := r.backend.Delete(ctx, versionName(id)); err != nil {
		return fmt.Errorf("delete version %s: %w", id, err)
	}
	return nil
}

// FindVersion returns the version whose ID starts with prefix (at least four
// hex digits), optionally restricted to a host.
func FindVersion(vs []*Version, host, prefix string) (*Version, error) {
	if len(prefix) < 4 {
		return nil, fmt.Errorf("version %q: give at least 4 characters of the ID shown by `piosnap list`", prefix)
	}
	var found *Version
	for _, v := range vs {
		if host != "" && v.Host != host {
			continue
		}
		if strings.HasPrefix(v.ID, prefix) {
			if found != nil {
				return nil, fmt.Errorf("version %q is ambiguous (%s and %s): give more characters", prefix, found.ShortID(), v.ShortID())
			}
			found = v
		}
	}
	if found == nil {
		where := ""
		if host != "" {
			where = " for host " + host
		}
		return nil, fmt.Errorf("no version %q%s: see `piosnap list`", prefix, where)
	}
	return found, nil
}

// VersionAt returns the newest version of host taken at or before t.
func VersionAt(vs []*Version, host string, t time.Time) (*Version, error) {
	var best *Version
	oldest := time.Time{}
	n := 0
	for _, v := range vs {
		if v.Host != host {
			continue
		}
		n++
		if oldest.IsZero() || v.Time.Before(oldest) {
			oldest = v.Time
		}
		if v.Time.After(t) {
			continue
		}
		if best == nil || v.Time.After(best.Time) {
			best = v
		}
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("no versions of host %q: see `piosnap list` for the hosts backed up", host)
	case best == nil:
		return nil, fmt.Errorf("no version of %s at or before %s: the oldest is from %s", host, t.Format(time.RFC3339), oldest.In(t.Location()).Format(time.RFC3339))
	}
	return best, nil
}
