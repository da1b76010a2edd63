// Package ingest turns a Pioreactor export ZIP, read as a stream, into
// pending repository versions: one per host, each validated before it can be
// committed.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/archive"
	"github.com/piosnap/piosnap/store"
)

// MetadataName is the entry Pioreactor writes last into every unit export.
const MetadataName = "pioreactor_export_metadata.json"

// maxMetadata bounds the metadata entry; the real one is about 200 bytes.
const maxMetadata = 1 << 20

// Layout is how hosts are arranged in an archive.
type Layout int

const (
	// Single is one unit's archive: entries at the root.
	Single Layout = iota
	// Aggregate is the leader's cluster archive: each unit under "<host>/".
	Aggregate
)

// Options says how to read an archive.
type Options struct {
	// Layout is the archive's arrangement.
	Layout Layout
	// Host is the expected host of a Single archive. Empty: the host is
	// taken from the metadata, and an archive without metadata is refused.
	Host string
	// Limits bounds the archive (zip bombs).
	Limits archive.Limits
	// Units lists the cluster's units. When set, a host folder of an
	// Aggregate archive that is not among them is refused.
	Units []string
}

// CheckUnitName reports whether name can be a Pioreactor unit: a host name
// of letters, digits, '-', '_' and '.', starting with a letter or digit, at
// most 63 characters.
func CheckUnitName(name string) error {
	ok := len(name) > 0 && len(name) <= 63
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '-' || r == '_' || r == '.'):
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%q is not a valid Pioreactor unit name (a host name: letters, digits, '-', '_' and '.', starting with a letter or digit)", name)
	}
	return nil
}

// Host is one host found in an archive.
type Host struct {
	// Name is the host.
	Name string
	// Pending is the version, ready to commit; nil when Err is set.
	Pending *store.Pending
	// Metadata is the content of the host's export metadata (the last
	// entry of that name), nil if the archive had none.
	Metadata []byte
	// AppVersion is the metadata's app_version, if any.
	AppVersion string
	// ExportedAt is the metadata's exported_at_utc; zero if absent or
	// unreadable.
	ExportedAt time.Time
	// Err is why the host was rejected; nothing of it is stored then.
	Err error
}

// Error is a rejection of one host, naming the host, the entry and the reason.
type Error struct {
	Host, Entry, Reason string
	Err                 error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("host " + e.Host)
	if e.Entry != "" {
		fmt.Fprintf(&b, ": entry %q", e.Entry)
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// MetadataJSON returns the metadata for embedding in a manifest: the
// object as the unit wrote it, or nil when there is none.
func (h *Host) MetadataJSON() json.RawMessage {
	if h.Metadata == nil {
		return nil
	}
	return json.RawMessage(bytes.TrimSpace(h.Metadata))
}

type hostState struct {
	Host
	names   map[string]int // entry name -> index in Pending.Entries
	metaHdr *archive.Header
}

// Read reads a whole archive from r and writes each host's content through w.
// It returns the hosts in the order they appear. Hosts whose entries fail
// validation carry an Err and have been aborted (their new chunks deleted);
// the others hold an uncommitted Pending. An error that spoils the whole
// stream (not a ZIP, truncated, CRC mismatch, a store that fails
// everywhere) aborts every host and is returned.
func Read(ctx context.Context, r io.Reader, w *store.Writer, opts Options) ([]*Host, error) {
	ar := archive.NewReader(r, opts.Limits)
	var pipes pipes
	var order []*hostState
	hosts := map[string]*hostState{}
	abortAll := func(err error) ([]*Host, error) {
		for _, h := range order {
			if h.Pending != nil {
				_ = h.Pending.Abort(context.WithoutCancel(ctx))
			}
		}
		return nil, err
	}
	for {
		hdr, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return abortAll(err)
		}
		host, rel, ok := split(opts, hdr.Name)
		if !ok {
			return abortAll(fmt.Errorf("entry %q lies outside every host folder of the cluster archive (%w)", hdr.Name, archive.ErrUnsafe))
		}
		if rel == "" && opts.Layout == Aggregate {
			continue // "<host>/" itself
		}
		hs := hosts[host]
		if hs == nil {
			hs = &hostState{Host: Host{Name: host}, names: map[string]int{}}
			hosts[host] = hs
			order = append(order, hs)
			if err := opts.checkFolder(host); err != nil {
				hs.Err = &Error{Host: host, Reason: err.Error(), Err: err}
				continue
			}
			hs.Pending = w.Begin(host)
		}
		if hs.Err != nil {
			continue
		}
		if err := archive.CheckName(rel); err != nil {
			hs.reject(ctx, rel, err)
			continue
		}
		if rel == MetadataName {
			data, err := io.ReadAll(io.LimitReader(ar, maxMetadata+1))
			if err != nil {
				return abortAll(err)
			}
			if len(data) > maxMetadata {
				hs.reject(ctx, rel, fmt.Errorf("metadata larger than %d bytes", maxMetadata))
				continue
			}
			h := *hdr
			hs.Metadata, hs.metaHdr = data, &h
			continue
		}
		mode := fs.FileMode(0o600)
		if hdr.IsDir() {
			mode = fs.ModeDir | 0o775
		}
		if _, dup := hs.names[rel]; dup {
			hs.reject(ctx, rel, errors.New("duplicate entry name"))
			continue
		}
		hs.names[rel] = len(hs.Pending.Entries())
		var content io.Reader = ar
		var pp *pipe
		if hdr.Size > pipeBlock {
			// Inflate a large entry on another core while it is stored.
			pp = pipes.open(ar)
			content = pp
		}
		_, err = hs.Pending.Add(ctx, rel, mode, hdr.Modified, content)
		if pp != nil {
			pp.close()
		}
		if err != nil {
			return abortAll(err)
		}
	}
	central, err := ar.Finish()
	if err != nil {
		return abortAll(err)
	}
	perHost := map[string][]archive.Header{}
	for _, h := range central {
		host, rel, _ := split(opts, h.Name)
		if rel == "" && opts.Layout == Aggregate {
			continue
		}
		h.Name = rel
		perHost[host] = append(perHost[host], h)
	}
	out := make([]*Host, 0, len(order))
	for _, hs := range order {
		if hs.Err == nil {
			hs.finish(ctx, opts, perHost[hs.Name])
		}
		out = append(out, &hs.Host)
	}
	return out, nil
}

// split returns the host and the host-relative name of an entry.
func split(opts Options, name string) (host, rel string, ok bool) {
	if opts.Layout == Single {
		return opts.Host, name, true
	}
	host, rel, ok = strings.Cut(name, "/")
	if !ok || host == "" || archive.CheckName(host) != nil || host == "." || host == ".." {
		return "", "", false
	}
	return host, rel, true
}

// checkFolder refuses a host folder of an Aggregate archive that cannot be a
// unit of the cluster.
func (opts Options) checkFolder(host string) error {
	if opts.Layout != Aggregate {
		return nil
	}
	if err := CheckUnitName(host); err != nil {
		return fmt.Errorf("folder %q of the cluster archive: %w; nothing of it was stored", host+"/", err)
	}
	if len(opts.Units) > 0 && !slices.Contains(opts.Units, host) {
		return fmt.Errorf("folder %q of the cluster archive is not a unit of the cluster (the leader lists %s); nothing of it was stored", host+"/", strings.Join(opts.Units, ", "))
	}
	return nil
}

// clusterFolders returns the top-level folders that hold a unit's files
// (its metadata or config.ini) in a Single archive that has neither at its
// root: the signs of a cluster archive given as one unit's.
func clusterFolders(central []archive.Header) []string {
	var folders []string
	for _, h := range central {
		if h.Name == MetadataName || h.Name == "config.ini" {
			return nil
		}
		dir, base, ok := strings.Cut(h.Name, "/")
		if ok && (base == MetadataName || base == "config.ini") && !slices.Contains(folders, dir+"/") {
			folders = append(folders, dir+"/")
		}
	}
	return folders
}

func (hs *hostState) reject(ctx context.Context, entry string, err error) {
	var ee *archive.EntryError
	if errors.As(err, &ee) {
		entry, err = ee.Entry, errors.New(ee.Reason)
	}
	hs.Err = &Error{Host: hs.Name, Entry: entry, Reason: err.Error(), Err: err}
	if hs.Pending != nil {
		_ = hs.Pending.Abort(context.WithoutCancel(ctx))
		hs.Pending = nil
	}
}

// finish validates the host against the central directory, applies the
// recorded modes, checks the metadata and appends it as the last entry.
func (hs *hostState) finish(ctx context.Context, opts Options, central []archive.Header) {
	if err := archive.CheckEntries(central, opts.Limits); err != nil {
		var ee *archive.EntryError
		if errors.As(err, &ee) {
			hs.reject(ctx, ee.Entry, errors.New(ee.Reason))
		} else {
			hs.reject(ctx, "", err)
		}
		return
	}
	if opts.Layout == Single {
		if folders := clusterFolders(central); len(folders) > 0 {
			hs.reject(ctx, "", fmt.Errorf("the archive is a cluster archive, not one unit's: its folders %s each hold a unit's files, and it has no %s or config.ini at the top; export the unit alone from the Pioreactor UI and import that file",
				strings.Join(folders, ", "), MetadataName))
			return
		}
	}
	entries := hs.Pending.Entries()
	for _, h := range central {
		if h.Name == MetadataName {
			if hs.metaHdr != nil {
				hs.metaHdr.Mode = h.Mode
			}
			continue
		}
		i, ok := hs.names[h.Name]
		if !ok {
			continue
		}
		if h.IsDir() {
			entries[i].Mode = fs.ModeDir | h.Mode.Perm()
		} else {
			entries[i].Mode = h.Mode.Perm()
		}
	}
	if hs.Metadata == nil {
		if opts.Layout == Single && opts.Host == "" {
			hs.reject(ctx, MetadataName, errors.New("missing: the archive does not say which unit it belongs to; name it with --host"))
		}
		if opts.Layout == Single && hs.Name == "" {
			hs.Name = opts.Host
		}
		return
	}
	var meta struct {
		Name       string `json:"name"`
		AppVersion string `json:"app_version"`
		ExportedAt string `json:"exported_at_utc"`
	}
	if err := json.Unmarshal(hs.Metadata, &meta); err != nil || !bytes.HasPrefix(bytes.TrimSpace(hs.Metadata), []byte("{")) {
		if err == nil {
			err = errors.New("not a JSON object")
		}
		hs.reject(ctx, MetadataName, fmt.Errorf("not valid JSON: %v", err))
		return
	}
	hs.AppVersion = meta.AppVersion
	if t, err := time.Parse(time.RFC3339Nano, meta.ExportedAt); err == nil {
		hs.ExportedAt = t
	}
	switch {
	case hs.Name == "" && meta.Name == "":
		hs.reject(ctx, MetadataName, errors.New(`"name" is empty: the archive does not say which unit it belongs to; name it with --host`))
		return
	case hs.Name == "":
		if err := CheckUnitName(meta.Name); err != nil {
			hs.reject(ctx, MetadataName, fmt.Errorf("name: %w", err))
			return
		}
		hs.Name = meta.Name
		hs.Pending.SetHost(meta.Name)
	case meta.Name != "" && meta.Name != hs.Name:
		hs.reject(ctx, MetadataName, fmt.Errorf("metadata names unit %q but the archive is for %s: Pioreactor's import would refuse it; if %s's archive was pulled from its own address, that address probably reaches %s: check it (piosnap's [pioreactor.addresses])", meta.Name, hs.Name, hs.Name, meta.Name))
		return
	}
	mode := hs.metaHdr.Mode.Perm()
	if mode == 0 {
		mode = 0o600
	}
	if _, err := hs.Pending.Add(ctx, MetadataName, mode, hs.metaHdr.Modified, bytes.NewReader(hs.Metadata)); err != nil {
		hs.reject(ctx, MetadataName, err)
	}
}
