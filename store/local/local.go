// Package local implements store.Backend on a directory of the local file
// system. Objects are plain files under the directory; writes go to a
// temporary file in the destination directory and are renamed into place
// after an fsync, so a reader never sees a partial object.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/piosnap/piosnap/store"
)

// tempPrefix starts the base name of every in-progress upload. List skips
// such files and names that would collide with them are rejected.
const tempPrefix = ".tmp-"

// Backend stores objects as files below a root directory. It is safe for
// concurrent use; concurrent Puts of one name leave one complete object.
type Backend struct {
	root string
}

var (
	_ store.Backend     = (*Backend)(nil)
	_ store.TempRemover = (*Backend)(nil)
)

// Open returns a Backend rooted at dir, which must be an existing
// directory. A missing directory is an error that wraps fs.ErrNotExist and
// says how to create it.
func Open(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository directory %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("repository directory %s does not exist; create it with `piosnap init` (or mkdir -p %s): %w", abs, abs, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository directory %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("repository path %s is not a directory; point the repository at a directory", abs)
	}
	return &Backend{root: abs}, nil
}

// Create makes dir (and its parents, mode 0700) if needed and opens it.
func Create(dir string) (*Backend, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create repository directory %s: %w", dir, err)
	}
	return Open(dir)
}

// Location returns the absolute root directory.
func (b *Backend) Location() string { return b.root }

// path checks name and maps it to a file path below the root.
func (b *Backend) path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// checkName rejects what store.CheckName refuses, and names with an element
// that looks like one of this backend's temporary files. The error wraps
// fs.ErrInvalid.
func checkName(name string) error {
	if err := store.CheckName(name); err != nil {
		return err
	}
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, tempPrefix) {
			return fmt.Errorf("object name %q has an element starting with %s, which this backend uses for temporary files: %w", name, tempPrefix, fs.ErrInvalid)
		}
	}
	return nil
}

// Put writes exactly size bytes from r to a temporary file next to the
// final name, syncs it, renames it into place and syncs the directory.
func (b *Backend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	p, err := b.path(name)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d; pass the object's exact size: %w", name, size, fs.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	dir := filepath.Dir(p)
	if err := mkdirSync(b.root, dir); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("put %s: create temporary file: %w", name, err)
	}
	tmp := f.Name()
	if err := writeFile(ctx, f, r, size); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("put %s: close temporary file: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return nil
}

// writeFile copies exactly size bytes from r to f and syncs f. It fails if
// r ends early, has bytes left over, or ctx is cancelled.
func writeFile(ctx context.Context, f *os.File, r io.Reader, size int64) error {
	n, err := io.Copy(f, io.LimitReader(store.ContextReader(ctx, r), size))
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n != size {
		return fmt.Errorf("reader ended after %d of %d bytes; the size passed to Put must match the data", n, size)
	}
	var one [1]byte
	if m, err := io.ReadFull(store.ContextReader(ctx, r), one[:]); m > 0 {
		return fmt.Errorf("reader has more than %d bytes; the size passed to Put must match the data", size)
	} else if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// mkdirSync creates dir and any missing parents below root, syncing each
// parent whose entries changed so the new directories survive a crash.
func mkdirSync(root, dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != root && parent != dir {
		if err := mkdirSync(root, parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create directory: %w", err)
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory so renames and creations in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Get opens the object's file. The caller must close it.
func (b *Backend) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get: %w", err)
	}
	if fi.IsDir() {
		_ = f.Close()
		return nil, fmt.Errorf("get: %w", &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist})
	}
	return f, nil
}

// GetRange opens length bytes of the object's file from offset.
func (b *Backend) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: bad range %d+%d: %w", name, offset, length, fs.ErrInvalid)
	}
	rc, err := b.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	f := rc.(*os.File)
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get: %w", err)
	}
	if offset+length > fi.Size() {
		_ = f.Close()
		return nil, fmt.Errorf("get %s: range %d+%d runs past the object's %d bytes", name, offset, length, fi.Size())
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, length), f}, nil
}

// Stat returns the size of the object's file. A directory counts as
// missing.
func (b *Backend) Stat(ctx context.Context, name string) (int64, error) {
	p, err := b.path(name)
	if err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("stat %s: %w", name, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("stat: %w", &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist})
	}
	return fi.Size(), nil
}

// Delete removes the object's file; a missing file is not an error.
func (b *Backend) Delete(ctx context.Context, name string) error {
	p, err := b.path(name)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if fi.IsDir() {
		return fmt.Errorf("delete %s: %s is a directory, not an object", name, p)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// List walks the directory that holds names starting with prefix and
// calls fn for each regular file whose name matches, skipping temporary
// files of unfinished Puts.
func (b *Backend) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	if strings.ContainsAny(prefix, "\\\x00") || strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("list: prefix %q must be a relative slash-separated name prefix like \"chunks/\": %w", prefix, fs.ErrInvalid)
	}
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := checkName(prefix[:i]); err != nil {
			return fmt.Errorf("list: prefix %q: %w", prefix, err)
		}
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted during the walk
		}
		if err != nil {
			return err
		}
		return fn(name, fi.Size())
	})
	if err != nil {
		return fmt.Errorf("list %q in %s: %w", prefix, b.root, err)
	}
	return nil
}

// RemoveStaleTemp removes the temporary files of unfinished Puts in and
// below the directory that holds the names starting with prefix that were
// last written more than olderThan ago: left behind by a process killed
// during a Put. A Put in progress keeps writing its file, so a file idle
// that long has no live writer. It returns how many it removed.
func (b *Backend) RemoveStaleTemp(ctx context.Context, prefix string, olderThan time.Duration) (int, error) {
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := checkName(prefix[:i]); err != nil {
			return 0, fmt.Errorf("remove stale temporary files: prefix %q: %w", prefix, err)
		}
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	cutoff := time.Now().Add(-olderThan)
	n := 0
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the folder is missing, or went away meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !strings.HasPrefix(d.Name(), tempPrefix) || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // its Put finished or failed meanwhile
		}
		if err != nil {
			return err
		}
		if !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("remove stale temporary files in %s: %w", start, err)
	}
	return n, nil
}
