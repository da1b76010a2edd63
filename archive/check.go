package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

// MetadataName is the base name of the metadata file Pioreactor adds to every
// export. An archive of a unit that was once restored holds it twice (the
// stale copy restored into ~/.pioreactor and the fresh one); the last copy is
// the current one.
const MetadataName = "pioreactor_export_metadata.json"

// CheckName reports why an entry name is unsafe to extract, as an
// [*EntryError] wrapping [ErrUnsafe], or nil if it is safe. A name is unsafe
// if it is empty, is not valid UTF-8, holds a NUL or other control character,
// is absolute, starts with a drive letter ("C:"), or has an empty ("a//b"),
// "." or ".." element. A single trailing "/" marks a directory and is allowed.
//
// A backslash is an ordinary character of a Linux file name, and Pioreactor's
// import (Python's zipfile on Linux) extracts it as such, so "a\b.yaml" is
// allowed. Only where a backslash would make the name start at the root or
// climb out once read as a Windows separator ("\x", "..\x", "a\..\..\b") is
// the name refused.
func CheckName(name string) error {
	reason := nameProblem(name)
	if reason == "" {
		return nil
	}
	return &EntryError{Entry: name, Reason: reason, Err: ErrUnsafe}
}

// nameProblem returns why name is unsafe, or "".
func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty name"
	case !utf8.ValidString(name):
		return "name is not valid UTF-8"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Sprintf("control character %U in name", r)
		}
	}
	switch {
	case name[0] == '/':
		return "absolute path"
	case len(name) >= 2 && name[1] == ':' && isLetter(name[0]):
		return fmt.Sprintf("drive letter (%q)", name[:2])
	}
	elems := strings.Split(strings.TrimSuffix(name, "/"), "/")
	for _, el := range elems {
		switch el {
		case "..":
			return `path traversal ("..")`
		case ".":
			return `"." path element`
		case "":
			return `empty path element ("//")`
		}
	}
	if strings.Contains(name, `\`) && (name[0] == '\\' || slices.Contains(strings.FieldsFunc(name, isSeparator), "..")) {
		return `backslash path that starts at the root or climbs out when read with Windows separators`
	}
	return ""
}

// isSeparator reports whether r separates path elements on Linux or Windows.
func isSeparator(r rune) bool { return r == '/' || r == '\\' }

func isLetter(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// CheckEntries validates a finished entry list (from [Reader.Finish]) more
// strictly than Pioreactor's own import does. Every name must pass
// [CheckName]; no entry may be a symlink, device, named pipe, socket or other
// irregular file, and no directory entry may have content; no name may
// appear twice, except an entry whose base name is [MetadataName], of which
// the last copy wins (callers extracting the archive must let the last copy
// overwrite the earlier one, as Python's zipfile does); a name may not be
// both a file and a directory (file "a" and directory "a/", or file "a" and
// entry "a/b"); and the entry count and sizes must be within lim. It returns
// an [*EntryError] or, for several problems, their [errors.Join].
func CheckEntries(hdrs []Header, lim Limits) error {
	lim = lim.withDefaults()
	var errs []error
	add := func(name, reason string, kind error) {
		errs = append(errs, &EntryError{Entry: name, Reason: reason, Err: kind})
	}
	if len(hdrs) > lim.MaxEntries {
		add(hdrs[lim.MaxEntries].Name, fmt.Sprintf(
			"archive has %d entries, more than %d (limit MaxEntries)", len(hdrs), lim.MaxEntries), ErrLimit)
	}
	ns := namespace{entries: make(map[string]bool, len(hdrs)), parents: make(map[string]struct{})}
	var total uint64
	for i := range hdrs {
		h := &hdrs[i]
		if err := CheckName(h.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		if reason := modeProblem(h.Mode); reason != "" {
			add(h.Name, reason, ErrUnsafe)
		}
		if h.IsDir() && h.Size != 0 {
			add(h.Name, fmt.Sprintf("directory entry with %d bytes of content", h.Size), ErrUnsafe)
		}
		if h.Size > uint64(lim.MaxEntrySize) {
			add(h.Name, fmt.Sprintf("%d bytes, more than %d (limit MaxEntrySize)", h.Size, lim.MaxEntrySize), ErrLimit)
		}
		total += h.Size
		if total > uint64(lim.MaxTotalSize) {
			add(h.Name, fmt.Sprintf("total content reaches %d bytes, more than %d (limit MaxTotalSize)",
				total, lim.MaxTotalSize), ErrLimit)
			total = 0 // report once
			lim.MaxTotalSize = 1<<63 - 1
		}
		if reason := ns.clash(h); reason != "" {
			add(h.Name, reason, ErrUnsafe)
		}
	}
	return errors.Join(errs...)
}

// modeProblem returns why an entry with mode m may not be extracted, or "".
func modeProblem(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeDevice != 0:
		return "device file"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeIrregular != 0:
		return "irregular file type"
	}
	return ""
}

// namespace tracks the names seen so far to find duplicates and clashes.
type namespace struct {
	entries map[string]bool     // name without trailing "/" -> is a directory
	parents map[string]struct{} // every ancestor directory of a name seen
}

// clash records h in ns and reports whether it duplicates or conflicts with
// an entry already seen, or "".
func (ns *namespace) clash(h *Header) string {
	name, isDir := strings.TrimSuffix(h.Name, "/"), h.IsDir()
	if wasDir, ok := ns.entries[name]; ok {
		switch {
		case wasDir != isDir:
			return "both a file and a directory"
		case path.Base(name) == MetadataName && !isDir:
			return "" // the known duplicate: the last copy wins
		default:
			return "duplicate name"
		}
	}
	if _, ok := ns.parents[name]; ok && !isDir {
		return "a file, but earlier entries use it as a directory"
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if wasDir, ok := ns.entries[dir]; ok && !wasDir {
			return fmt.Sprintf("its parent %q is a file", dir)
		}
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if _, ok := ns.parents[dir]; ok {
			break // and so are all of its ancestors
		}
		ns.parents[dir] = struct{}{}
	}
	ns.entries[name] = isDir
	return ""
}
