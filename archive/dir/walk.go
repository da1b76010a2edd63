// Package dir is the directory source: it takes versions of directory
// trees (plus an optional database dump) while the application that owns
// them is stopped, and restores them with a way back. Pydio Cells is the
// application it was built for.
//
// Entry names are the absolute paths without their leading "/", so one
// version can hold several trees; directories end in "/". Entries keep
// mode, numeric owner and group, modification time and symbolic links
// (stored as links, never followed).
package dir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/piosnap/piosnap/store"
)

// Skipped is something a walk left out of a version, and why.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// keptMode is the part of a mode a version records.
const keptMode = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | fs.ModeDir | fs.ModeSymlink

// EntryName is the entry name of an absolute path.
func EntryName(path string) string { return strings.TrimPrefix(filepath.ToSlash(path), "/") }

type inode struct{ dev, ino uint64 }

// walker adds trees to a pending version.
type walker struct {
	p        *store.Pending
	excludes []string
	links    map[inode]string // hard-linked files already stored
	skipped  []Skipped
}

// addTree adds root and everything under it that no exclude matches.
func (w *walker) addTree(ctx context.Context, root string) error {
	fi, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("back up %s: %w", root, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		real, _ := filepath.EvalSymlinks(root)
		return fmt.Errorf("back up %s: it is a symbolic link to %s, and links are stored, not followed: list %s in paths instead", root, real, real)
	}
	if !fi.IsDir() {
		return fmt.Errorf("back up %s: not a directory", root)
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("back up %s: %w: piosnap must run as root to read every file of an application (see README, Pydio Cells)", path, err)
		}
		if err != nil {
			return fmt.Errorf("back up %s: %w", path, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if rel != "." && matchAny(w.excludes, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return w.add(ctx, path)
	})
}

// add adds one file, folder or link.
func (w *walker) add(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		w.skip(path, "vanished while the tree was read")
		return nil
	}
	if err != nil {
		return fmt.Errorf("back up %s: %w", path, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	name := EntryName(path)
	mode := fi.Mode()
	link := ""
	switch {
	case mode.IsDir():
		_, err = w.p.Add(ctx, name+"/", mode&keptMode, fi.ModTime(), nil)
	case mode&fs.ModeSymlink != 0:
		if link, err = os.Readlink(path); err != nil {
			return fmt.Errorf("back up %s: %w", path, err)
		}
		_, err = w.p.Add(ctx, name, mode&keptMode, fi.ModTime(), strings.NewReader(""))
	case mode.IsRegular():
		if st != nil && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := w.links[key]; ok {
				w.skip(path, "hard link to "+first+", which the version holds; hard links are not kept")
				return nil
			}
			w.links[key] = path
		}
		f, oerr := os.Open(path)
		if errors.Is(oerr, fs.ErrNotExist) {
			w.skip(path, "vanished while the tree was read")
			return nil
		}
		if errors.Is(oerr, fs.ErrPermission) {
			return fmt.Errorf("back up %s: %w: piosnap must run as root to read every file of an application (see README, Pydio Cells)", path, oerr)
		}
		if oerr != nil {
			return fmt.Errorf("back up %s: %w", path, oerr)
		}
		_, err = w.p.Add(ctx, name, mode&keptMode, fi.ModTime(), f)
		f.Close()
	default:
		w.skip(path, "special file ("+typeName(mode)+") is not backed up")
		return nil
	}
	if err != nil {
		return err
	}
	w.last().Link = link
	if st != nil {
		w.last().Owner = &store.Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return nil
}

func (w *walker) last() *store.Entry {
	es := w.p.Entries()
	return &es[len(es)-1]
}

func (w *walker) skip(path, reason string) {
	w.skipped = append(w.skipped, Skipped{Path: path, Reason: reason})
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "irregular file"
}
