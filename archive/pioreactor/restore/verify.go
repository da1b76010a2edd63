package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/piosnap/piosnap/archive"
	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/store"
)

const (
	// configINI is the file Pioreactor's import rewrites.
	configINI = "config.ini"
	// maxConfigSize bounds config.ini read into memory for comparison.
	maxConfigSize = 4 << 20
)

// Diff is what a unit's export has that the restored version does
// not, or the other way round.
type Diff struct {
	// Missing, Extra and Changed name entries missing on the unit, extra on
	// the unit, and differing in size or CRC-32, sorted.
	Missing, Extra, Changed []string
	// Config lists the config.ini settings that differ.
	Config []string
}

// Empty reports whether the unit matches the version.
func (d *Diff) Empty() bool {
	return len(d.Missing)+len(d.Extra)+len(d.Changed)+len(d.Config) == 0
}

// Summary counts the differences of each kind, as one line.
func (d *Diff) Summary() string {
	var parts []string
	for _, p := range []struct {
		what string
		n    int
	}{{"missing", len(d.Missing)}, {"extra", len(d.Extra)}, {"changed", len(d.Changed)}, {"config.ini settings differing", len(d.Config)}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return strings.Join(parts, ", ")
}

// String lists the differences, one line per kind.
func (d *Diff) String() string {
	var b strings.Builder
	for _, l := range []struct {
		what  string
		names []string
	}{{"missing on the unit", d.Missing}, {"extra on the unit", d.Extra}, {"changed", d.Changed}, {"config.ini", d.Config}} {
		if len(l.names) > 0 {
			fmt.Fprintf(&b, "  %s: %s\n", l.what, strings.Join(l.names, ", "))
		}
	}
	return b.String()
}

// Verify exports unit and compares every entry's size and CRC-32
// with the version's. Allowed differences: the metadata file, config.ini
// (compared by its settings, since the import rewrites it), and ui/ and
// hardware/ that the import keeps when the archive has none.
//
// progress, when not nil, is called with the size of every piece of the
// export as it arrives.
func Verify(ctx context.Context, cl *pioreactor.Client, repo *store.Repository, v *store.Version, unit string, progress func(int64)) (*Diff, error) {
	exp, err := cl.ExportUnit(ctx, unit)
	if err != nil {
		return nil, err
	}
	defer exp.Body.Close()
	zr := archive.NewReader(exp.Reader(progress), archive.Limits{})
	var gotConfig []byte
	for {
		h, err := zr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read export: %w", err)
		}
		if h.Name == configINI {
			if gotConfig, err = io.ReadAll(io.LimitReader(zr, maxConfigSize)); err != nil {
				return nil, fmt.Errorf("read export's %s: %w", configINI, err)
			}
		}
	}
	hdrs, err := zr.Finish()
	if err != nil {
		return nil, fmt.Errorf("read export: %w", err)
	}
	got := map[string]archive.Header{}
	for _, h := range hdrs {
		got[h.Name] = h // the last copy wins, as on extraction
	}
	want := map[string]*store.Entry{}
	for i := range v.Entries {
		want[v.Entries[i].Name] = &v.Entries[i]
	}
	kept := func(name string) bool {
		for _, dir := range []string{"ui/", "hardware/"} {
			if strings.HasPrefix(name, dir) {
				_, inVersion := want[dir]
				return !inVersion
			}
		}
		return false
	}
	d := &Diff{}
	for name, e := range want {
		if name == pioreactor.MetadataFile {
			continue
		}
		h, ok := got[name]
		switch {
		case !ok:
			d.Missing = append(d.Missing, name)
		case name == configINI:
			wantConfig, err := io.ReadAll(io.LimitReader(repo.OpenEntryAlone(ctx, e), maxConfigSize))
			if err != nil {
				return nil, fmt.Errorf("read version's %s: %w", configINI, err)
			}
			d.Config = CompareConfig(string(wantConfig), string(gotConfig))
		case e.IsDir() != h.IsDir() || !e.IsDir() && (uint64(e.Size) != h.Size || e.CRC32 != h.CRC32):
			d.Changed = append(d.Changed, name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok && name != pioreactor.MetadataFile && !kept(name) {
			d.Extra = append(d.Extra, name)
		}
	}
	slices.Sort(d.Missing)
	slices.Sort(d.Extra)
	slices.Sort(d.Changed)
	return d, nil
}

// iniFile maps section → lower-cased option → value, read the way Python's
// configparser reads Pioreactor's config.ini.
type iniFile map[string]map[string]string

// parseINI reads full-line "#" and ";" comments, [section] headers,
// "key=value" and "key: value" options and indented continuation lines.
// It is lenient: a line it cannot read is kept as an option without value,
// so that a comparison still notices it.
func parseINI(text string) iniFile {
	f := iniFile{}
	sec := ""
	var key string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			continue
		}
		if key != "" && (line[0] == ' ' || line[0] == '\t') {
			f[sec][key] += "\n" + trimmed
			continue
		}
		if strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]") {
			sec, key = trimmed[1:len(trimmed)-1], ""
			if f[sec] == nil {
				f[sec] = map[string]string{}
			}
			continue
		}
		if f[sec] == nil {
			f[sec] = map[string]string{}
		}
		k, val := trimmed, ""
		if i := strings.IndexAny(trimmed, "=:"); i >= 0 {
			k, val = trimmed[:i], strings.TrimSpace(trimmed[i+1:])
		}
		key = strings.ToLower(strings.TrimSpace(k))
		f[sec][key] = val
	}
	return f
}

// CompareConfig compares two config.ini texts by their settings: the same
// sections, the same options (names compared case-insensitively) with the
// same values. [storage] temporary_cache is ignored, since the import sets
// it. It returns one line per difference, sorted.
func CompareConfig(want, got string) []string {
	w, g := parseINI(want), parseINI(got)
	ignore := func(sec, key string) bool { return sec == "storage" && key == "temporary_cache" }
	var diffs []string
	for sec, opts := range w {
		gopts, ok := g[sec]
		if !ok {
			if len(opts) > 0 || sec != "" {
				diffs = append(diffs, fmt.Sprintf("[%s] missing", sec))
			}
			continue
		}
		for k, v := range opts {
			if ignore(sec, k) {
				continue
			}
			gv, ok := gopts[k]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("[%s] %s missing", sec, k))
			case gv != v:
				diffs = append(diffs, fmt.Sprintf("[%s] %s is %q, want %q", sec, k, gv, v))
			}
		}
		for k := range gopts {
			if _, ok := opts[k]; !ok && !ignore(sec, k) {
				diffs = append(diffs, fmt.Sprintf("[%s] %s extra", sec, k))
			}
		}
	}
	for sec, opts := range g {
		if _, ok := w[sec]; ok {
			continue
		}
		for k := range opts {
			if !ignore(sec, k) {
				diffs = append(diffs, fmt.Sprintf("[%s] extra", sec))
				break
			}
		}
	}
	slices.Sort(diffs)
	return diffs
}
