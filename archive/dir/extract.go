package dir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/piosnap/piosnap/store"
)

// EntryOpener reads an entry's content, checking it against the manifest
// (store.Repository does).
type EntryOpener interface {
	OpenEntry(ctx context.Context, e *store.Entry) io.Reader
}

// versionOpener is a repository that reads the entries of one version
// with the places of that version's blobs only (store.Repository does),
// so that memory follows the version, not the repository's history.
type versionOpener interface {
	ForVersion(v *store.Version) *store.VersionReader
}

// forVersion returns what reads v's entries: src's reader of v when it
// has one, else src.
func forVersion(src EntryOpener, v *store.Version) EntryOpener {
	if vo, ok := src.(versionOpener); ok {
		return vo.ForVersion(v)
	}
	return src
}

// tree is the part of a version under one of its paths.
type tree struct {
	path    string         // the path the version recorded
	root    *store.Entry   // the path's own entry
	entries []*store.Entry // below it, in version order
}

// splitTrees assigns every entry to the path it lies under and checks the
// names: no "." or ".." elements, nothing under a symbolic link, nothing
// outside the recorded paths except the database dump.
func splitTrees(v *store.Version) ([]*tree, error) {
	if len(v.Paths) == 0 {
		return nil, fmt.Errorf("version %s of %s records no paths: it is not a directory version", v.ShortID(), v.Host)
	}
	trees := make([]*tree, len(v.Paths))
	for i, p := range v.Paths {
		trees[i] = &tree{path: p}
	}
	links := map[string]bool{}
	for i := range v.Entries {
		e := &v.Entries[i]
		if v.Database != nil && e.Name == v.Database.Entry {
			continue
		}
		name := strings.TrimSuffix(e.Name, "/")
		if err := checkRel(name); err != nil {
			return nil, fmt.Errorf("entry %q: %w", e.Name, err)
		}
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if links[dir] {
				return nil, fmt.Errorf("entry %q lies under the symbolic link %q: refused, it would write outside the tree", e.Name, dir)
			}
		}
		if e.Mode&fs.ModeSymlink != 0 {
			links[name] = true
		}
		placed := false
		for _, t := range trees {
			root := EntryName(t.path)
			switch {
			case name == root:
				if !e.IsDir() {
					return nil, fmt.Errorf("entry %q: the recorded path %s is not a folder", e.Name, t.path)
				}
				t.root = e
			case strings.HasPrefix(name, root+"/"):
				t.entries = append(t.entries, e)
			default:
				continue
			}
			placed = true
			break
		}
		if !placed {
			return nil, fmt.Errorf("entry %q lies outside the version's paths %v", e.Name, v.Paths)
		}
	}
	for _, t := range trees {
		if t.root == nil {
			return nil, fmt.Errorf("version %s has no entry for its path %s", v.ShortID(), t.path)
		}
	}
	return trees, nil
}

func checkRel(name string) error {
	if name == "" || strings.HasPrefix(name, "/") {
		return errors.New("not a relative path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." || strings.ContainsRune(el, 0) {
			return fmt.Errorf("path element %q is not allowed", el)
		}
	}
	return nil
}

// extractor writes a tree into a new folder.
type extractor struct {
	src       EntryOpener
	owners    bool // restore owners (we are root)
	ownerErrs int
}

// extract writes t into dst, a new empty folder, with modes, owners and
// times; folders get theirs last, so writing into them does not change
// them.
func (x *extractor) extract(ctx context.Context, t *tree, dst string) error {
	prefix := EntryName(t.path) + "/"
	var dirs []struct {
		path string
		e    *store.Entry
	}
	for _, e := range t.entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(e.Name, prefix), "/")
		p := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case e.IsDir():
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, struct {
				path string
				e    *store.Entry
			}{p, e})
			continue
		case e.Mode&fs.ModeSymlink != 0:
			if err := os.Symlink(e.Link, p); err != nil {
				return err
			}
		default:
			if err := x.writeFile(ctx, p, e); err != nil {
				return err
			}
		}
		if err := x.setMeta(p, e); err != nil {
			return err
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := x.setMeta(dirs[i].path, dirs[i].e); err != nil {
			return err
		}
	}
	return x.setMeta(dst, t.root)
}

func (x *extractor) writeFile(ctx context.Context, p string, e *store.Entry) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, x.src.OpenEntry(ctx, e)); err != nil {
		f.Close()
		return fmt.Errorf("restore %s: %w", e.Name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// setMeta applies owner, mode and time; chown comes first because it
// clears the set-user-ID and set-group-ID bits.
func (x *extractor) setMeta(p string, e *store.Entry) error {
	if x.owners && e.Owner != nil {
		if err := os.Lchown(p, e.Owner.UID, e.Owner.GID); err != nil {
			x.ownerErrs++
		}
	}
	link := e.Mode&fs.ModeSymlink != 0
	if !link {
		if err := os.Chmod(p, fileMode(e.Mode)); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.Modified.UnixNano()), unix.NsecToTimespec(e.Modified.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set the time of %s: %w", p, err)
	}
	return nil
}

// fileMode converts a Go mode to what os.Chmod takes, special bits
// included.
func fileMode(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}
