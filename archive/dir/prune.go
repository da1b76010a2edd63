package dir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/piosnap/piosnap/store/retention"
)

// keptInfix and stampLayout name what a restore keeps beside a target:
// the folder it replaced, <target>.pre-restore-<stamp>, and the database
// dump taken before, <first target>.pre-restore-<stamp>.<database>.sql.
const (
	keptInfix   = ".pre-restore-"
	stampLayout = "20060102T150405Z"
)

// KeepPolicy says which copies of the state before a restore stay beside
// the folders: the newest Last restores' copies, and every copy younger
// than Within. A copy either rule keeps stays.
type KeepPolicy struct {
	Last   int
	Within retention.Duration
}

// String describes the policy in the configuration's words.
func (p KeepPolicy) String() string {
	within := "off"
	if !p.Within.Zero() {
		within = p.Within.String()
	}
	return fmt.Sprintf("pre_restore.keep_last = %d, keep_within = %s", p.Last, within)
}

// Kept is what one restore left beside a source's folders.
type Kept struct {
	// Time is the restore's time, from the names.
	Time time.Time
	// Stamp is the time as the names write it.
	Stamp string
	// Paths are the folders replaced and the database dump.
	Paths []string
}

// Leftovers lists what interrupted restores left beside targets (a
// symbolic link is looked at where it points): staging folders,
// <target>.piosnap-restore-<time>, and the folders of a rollback,
// <target>.piosnap-failed-<time>. Nothing uses them once their restore
// has ended; they are reported, never deleted, since a restore that still
// runs may be filling its staging folder.
func Leftovers(targets []string) ([]string, error) {
	var out []string
	for _, target := range targets {
		if real, err := filepath.EvalSymlinks(target); err == nil {
			target = real
		}
		parent, base := filepath.Dir(target), filepath.Base(target)
		entries, err := os.ReadDir(parent)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look for what interrupted restores left in %s: %w", parent, err)
		}
		for _, e := range entries {
			for _, infix := range []string{".piosnap-restore-", ".piosnap-failed-"} {
				stamp, ok := strings.CutPrefix(e.Name(), base+infix)
				if _, err := time.Parse(stampLayout, stamp); ok && err == nil && e.IsDir() {
					out = append(out, filepath.Join(parent, e.Name()))
				}
			}
		}
	}
	return out, nil
}

// FindKept lists the copies restores left beside targets (the first holds
// the dumps of database db, when db is not empty), newest first. A target
// that is a symbolic link is looked at where it points, as Restore does.
func FindKept(targets []string, db string) ([]Kept, error) {
	byStamp := map[string]*Kept{}
	for i, target := range targets {
		if real, err := filepath.EvalSymlinks(target); err == nil {
			target = real
		}
		parent, prefix := filepath.Dir(target), filepath.Base(target)+keptInfix
		entries, err := os.ReadDir(parent)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look for the state kept by earlier restores in %s: %w", parent, err)
		}
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), prefix)
			if !ok || len(rest) < len(stampLayout) {
				continue
			}
			stamp, suffix := rest[:len(stampLayout)], rest[len(stampLayout):]
			t, err := time.Parse(stampLayout, stamp)
			if err != nil {
				continue
			}
			switch {
			case suffix == "" && e.IsDir():
			case i == 0 && db != "" && suffix == "."+db+".sql" && e.Type().IsRegular():
			default:
				continue // not a name a restore writes
			}
			k := byStamp[stamp]
			if k == nil {
				k = &Kept{Time: t, Stamp: stamp}
				byStamp[stamp] = k
			}
			k.Paths = append(k.Paths, filepath.Join(parent, e.Name()))
		}
	}
	out := make([]Kept, 0, len(byStamp))
	for _, k := range byStamp {
		sort.Strings(k.Paths)
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

// PruneKept deletes the copies beside targets (see FindKept) that p does
// not keep at now. The restore stamped keep, the one just made, always
// stays. It returns the copies it deleted; the error names each path it
// could not delete and how to delete it by hand.
func PruneKept(targets []string, db string, p KeepPolicy, now time.Time, keep string) ([]Kept, error) {
	kept, err := FindKept(targets, db)
	if err != nil {
		return nil, err
	}
	cutoff := now
	if !p.Within.Zero() {
		cutoff = p.Within.Before(now)
	}
	var deleted []Kept
	var errs []error
	for i, k := range kept {
		if i < p.Last || k.Stamp == keep || k.Time.After(cutoff) {
			continue
		}
		var failed bool
		for _, path := range k.Paths {
			if err := os.RemoveAll(path); err != nil {
				failed = true
				errs = append(errs, fmt.Errorf("delete %s, the state before the restore of %s: %w: delete it by hand (sudo rm -rf %s)", path, k.Time.Format(time.RFC3339), err, path))
			}
		}
		if !failed {
			deleted = append(deleted, k)
		}
	}
	return deleted, errors.Join(errs...)
}
