package simulator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"
)

const (
	sentinelName = "DISALLOW_UI_FILE_SYSTEM"
	metadataName = "pioreactor_export_metadata.json"
)

func (u *Unit) sentinelPresent() bool {
	fi, err := os.Stat(filepath.Join(u.dir, sentinelName))
	return err == nil && fi.Mode().IsRegular()
}

func (u *Unit) handleExport(w http.ResponseWriter, r *http.Request) {
	if u.sentinelPresent() {
		writeError(w, http.StatusForbidden, "DISALLOW_UI_FILE_SYSTEM is present",
			"File system access is disabled on this unit.",
			"Remove DISALLOW_UI_FILE_SYSTEM or export files locally via SSH.")
		return
	}
	exportedAt := time.Now()
	u.set(func() { u.exports++ })
	if u.hold(r.Context(), exportedAt, &u.exportDelay) != nil {
		return
	}
	f, err := os.CreateTemp(u.tmp, u.name+"_dot_pioreactor_*.zip")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Failed to create export archive", err.Error(), "")
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// The real export writes its ZIP into /tmp, in RAM, before sending it.
	if err := u.writeArchive(r.Context(), &tmpWriter{w: f, path: f.Name(), left: u.tmpFree()}, exportedAt); err != nil {
		u.c.opts.Logger.Error("export failed", "unit", u.name, "err", err)
		writeError(w, http.StatusInternalServerError, "Failed to build export archive", err.Error(), "")
		return
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Failed to read export archive", err.Error(), "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", "attachment; filename="+u.name+"_dot_pioreactor.zip")
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	h.Set("ETag", fmt.Sprintf("\"%d-%d\"", fi.ModTime().UnixNano(), fi.Size()))
	h.Set("Cache-Control", "no-cache")
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, f)
	}
}

// writeArchive writes the unit's per-unit archive to f the way
// unit_api.get_zipped_dot_pioreactor does.
func (u *Unit) writeArchive(ctx context.Context, f io.WriteSeeker, exportedAt time.Time) error {
	base, err := filepath.EvalSymlinks(u.dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", u.dir, err)
	}
	paths, err := rglob(base)
	if err != nil {
		return err
	}
	z := newPyZip(f)
	skip := filepath.Join(base, "storage", "pioreactor.sqlite.backup")
	for _, rel := range paths {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("export of %s cancelled: %w", u.name, err)
		}
		p := filepath.Join(base, rel)
		if p == skip {
			continue
		}
		if err := addPath(z, base, p, rel); err != nil {
			if errors.Is(err, errWrite) {
				return err
			}
			// Like publish_to_error_log: logged, not fatal.
			u.c.opts.Logger.Warn("Failed to add file to zip", "unit", u.name, "path", p, "err", err)
		}
	}
	meta := exportMetadata(u.name, u.c.opts.Leader, u.c.opts.AppVersion, exportedAt)
	err = z.add(pyEntry{name: metadataName, method: methodDeflated, extAttr: 0o600 << 16,
		mtime: time.Now(), size: int64(len(meta))}, strings.NewReader(meta))
	if err != nil {
		return fmt.Errorf("write %s: %w", metadataName, err)
	}
	return z.close()
}

var errWrite = errors.New("zip output failed")

// addPath mirrors the loop body of the real export: skip missing targets and
// targets resolving outside base, then ZipFile.write (which follows links).
func addPath(z *pyZip, base, p, rel string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return nil // path.exists() is false: skipped silently
	}
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil || !within(base, resolved) {
		return nil
	}
	mode := uint32(fi.Mode().Perm())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		mode = st.Mode & 0xffff
	}
	name := filepath.ToSlash(rel)
	if fi.IsDir() {
		e := pyEntry{name: name + "/", method: methodStored, extAttr: mode<<16 | dosDirFlag, mtime: fi.ModTime()}
		if err := z.add(e, nil); err != nil {
			return fmt.Errorf("%w: %w", errWrite, err)
		}
		return nil
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	e := pyEntry{name: name, method: methodDeflated, extAttr: mode << 16, mtime: fi.ModTime(), size: fi.Size()}
	if err := z.add(e, src); err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

func within(base, p string) bool {
	return p == base || strings.HasPrefix(p, base+string(filepath.Separator))
}

// rglob lists every path below base, relative to it, in the order of
// Python's sorted(base.rglob("*")): sorted by path components, symlinks to
// directories listed but not descended into.
func rglob(base string) ([]string, error) {
	var out [][]string
	var walk func(dir string, parts []string) error
	walk = func(dir string, parts []string) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range ents {
			p := append(slices.Clip(parts), e.Name())
			out = append(out, p)
			if e.IsDir() && e.Type()&os.ModeSymlink == 0 {
				if err := walk(filepath.Join(dir, e.Name()), p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(base, nil); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b []string) int { return slices.CompareFunc(a, b, cmp.Compare[string]) })
	rels := make([]string, len(out))
	for i, p := range out {
		rels[i] = filepath.Join(p...)
	}
	return rels, nil
}

// exportMetadata renders pioreactor_export_metadata.json exactly as
// json.dumps(metadata) does: key order kept, ", " and ": " separators.
func exportMetadata(name, leader, version string, at time.Time) string {
	return fmt.Sprintf(`{"metadata_version": 1, "name": %s, "leader_hostname": %s, "is_leader": %t, "app_version": %s, "exported_at_utc": %s}`,
		pyString(name), pyString(leader), name == leader, pyString(version), pyString(utcTimestamp(at)))
}

// pyString encodes s as Python's json.dumps does with ensure_ascii=True.
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || r > 0x7e && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
