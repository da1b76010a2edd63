package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/archive/ingest"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/scheduler/daemon"
	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// pickVersion finds the version named by --version or --at in the first of
// stores that has it. --at skips safety snapshots unless withSafety is set
// (--include-safety): after a restore, `--at today` means the good state the
// user restored, not the broken one the safety snapshot kept.
func (a *app) pickVersion(ctx context.Context, stores []snapshot.Store, host, id, at string, withSafety bool) (snapshot.Store, *store.Version, error) {
	if (id == "") == (at == "") {
		return snapshot.Store{}, nil, usageErrorf("give exactly one of --version ID and --at TIME")
	}
	var when time.Time
	if at != "" {
		var err error
		if when, err = parseWhen(at, time.Now(), a.cfg.Location()); err != nil {
			return snapshot.Store{}, nil, withCode(exitUsage, err)
		}
	}
	var firstErr error
	var unreadable []error
	for _, s := range stores {
		if s.Err != nil {
			unreadable = append(unreadable, fmt.Errorf("store %q: %w", s.Name, s.Err))
			continue
		}
		vs, err := s.Repo.Versions(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return s, nil, ctx.Err()
			}
			a.log.Error("store unavailable", "store", s.Name, "err", err)
			unreadable = append(unreadable, fmt.Errorf("store %q: %w", s.Name, err))
			continue
		}
		var v *store.Version
		if id != "" {
			v, err = store.FindVersion(vs, host, id)
		} else {
			v, err = versionAt(vs, host, when, withSafety)
		}
		if err == nil {
			if len(unreadable) > 0 {
				a.log.Warn("version chosen among the stores that could be read", "store", s.Name, "version", v.ShortID())
			}
			s, v = a.preferSound(ctx, stores, s, v)
			return s, v, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if len(unreadable) > 0 {
		if firstErr == nil {
			return snapshot.Store{}, nil, errors.Join(unreadable...)
		}
		return snapshot.Store{}, nil, fmt.Errorf("%w; not searched, as it could not be read: %w", firstErr, errors.Join(unreadable...))
	}
	return snapshot.Store{}, nil, firstErr
}

// preferSound returns where to read version v, found first in store s of
// stores: s, unless the daemon's readings of stored data (its status file)
// recorded v damaged there and another of stores holds it undamaged. The
// choice is said on stderr (standard output may be the export), and so is
// a warning when v is read where it is recorded damaged: --store named
// that store, or no other holds it undamaged.
func (a *app) preferSound(ctx context.Context, stores []snapshot.Store, s snapshot.Store, v *store.Version) (snapshot.Store, *store.Version) {
	sf, err := daemon.ReadStatusFile(filepath.Join(a.cfg.StateDir, daemon.StatusFileName))
	if err != nil {
		return s, v // no daemon has recorded anything
	}
	bad := daemon.DamagedIn(ctx, sf.Verified, v.ID, func(name string) *store.Repository {
		for _, o := range stores {
			if o.Name == name && o.Err == nil {
				return o.Repo
			}
		}
		return nil
	})
	if !slices.Contains(bad, s.Name) {
		return s, v
	}
	note := fmt.Sprintf("version %s of %s is recorded damaged in store %s (the daemon's reading of stored data found it)", v.ShortID(), v.Host, s.Name)
	for _, o := range stores {
		if o.Err != nil || o.Name == s.Name || slices.Contains(bad, o.Name) {
			continue
		}
		vs, err := o.Repo.Versions(ctx)
		if err != nil {
			continue
		}
		if ov, err := store.FindVersion(vs, v.Host, v.ID); err == nil {
			fmt.Fprintf(a.env.Stderr, "%s; reading it from store %s, which holds it undamaged\n", note, o.Name)
			return o, ov
		}
	}
	why := "no other store holds it undamaged"
	if len(stores) == 1 && len(a.cfg.Stores) > 1 {
		why = "that store was named"
	}
	fmt.Fprintf(a.env.Stderr, "WARNING: %s, and %s: reading it may fail, and then nothing is changed; `piosnap check --read-data --store %s` lists the damage, `piosnap repair --store %s` removes it (see README, \"A store reports damaged data\")\n",
		note, why, s.Name, s.Name)
	return s, v
}

// versionAt is store.VersionAt over the versions that are not safety
// snapshots, unless withSafety.
func versionAt(vs []*store.Version, host string, when time.Time, withSafety bool) (*store.Version, error) {
	if withSafety {
		return store.VersionAt(vs, host, when)
	}
	var plain []*store.Version
	safety := 0
	for _, v := range vs {
		if v.Kind == store.KindSafety {
			if v.Host == host && !v.Time.After(when) {
				safety++
			}
			continue
		}
		plain = append(plain, v)
	}
	v, err := store.VersionAt(plain, host, when)
	if err != nil && safety > 0 {
		return nil, fmt.Errorf("%w (%d safety snapshot(s) of %s skipped: add --include-safety, or name one with --version)", err, safety, host)
	}
	return v, err
}

func cmdExport(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("export", "--host H [--at TIME | --version ID] -o FILE.zip [--stored] [--store S]")
	host := fs.String("host", "", "the unit (required)")
	id := fs.String("version", "", "version ID (at least 4 characters, as `piosnap list` shows)")
	at := fs.String("at", "", "newest version at or before TIME: latest, yesterday, 3d-ago, 2026-05-01, RFC 3339 (default latest; safety snapshots are skipped)")
	withSafety := fs.Bool("include-safety", false, "with --at: consider safety snapshots (taken before a restore) too")
	out := fs.String("o", "", "output file (required; - for standard output): a ZIP for a Pioreactor unit, a tar for a directory source")
	storeName := fs.String("store", "", "read from this store (default: the first that has the version)")
	stored := fs.Bool("stored", false, "write the entries uncompressed (STORED), as restore sends them: faster, about 4 times larger for a database")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *host == "" || *out == "" {
		return usageErrorf("--host and -o are required")
	}
	if *id != "" && *at != "" {
		return usageErrorf("give one of --version ID and --at TIME, not both")
	}
	if *id == "" && *at == "" {
		*at = "latest"
	}
	stores, err := a.openReadable(ctx, optionalName(*storeName)...)
	if err != nil {
		return err
	}
	s, v, err := a.pickVersion(ctx, stores, *host, *id, *at, *withSafety)
	if err != nil {
		return err
	}
	hold, err := s.Repo.Hold(ctx, "export", v.ID)
	if err != nil {
		return err
	}
	defer hold.Unlock(ctx)
	write := func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		switch {
		case v.Source == dir.SourceKind:
			// A directory version is a tar: it keeps owners and links.
			if err := dir.WriteTar(ctx, bw, s.Repo, v); err != nil {
				return err
			}
		case *stored:
			z, err := s.Repo.StoredZip(v, nil)
			if err != nil {
				return err
			}
			if err := z.WriteTo(ctx, bw); err != nil {
				return err
			}
		default:
			if err := s.Repo.WriteZip(ctx, bw, v); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
	if *out == "-" {
		return write(a.env.Stdout)
	}
	var n int64
	if special, err := isSpecialFile(*out); err != nil {
		return err
	} else if special {
		n, err = writeSpecialFile(*out, write)
		if err != nil {
			return err
		}
	} else if n, err = local.WriteFileAtomic(*out, func(f *os.File) error { return write(f) }); err != nil {
		return err
	}
	fmt.Fprintf(a.env.Stdout, "wrote %s (%s): version %s of %s from %s, store %s\n",
		*out, web.HumanBytes(n), v.ShortID(), v.Host, v.Time.In(a.cfg.Location()).Format(time.RFC3339), s.Name)
	return nil
}

// isSpecialFile reports whether path names an existing file that is not a
// regular file or a directory: a device such as /dev/null, a named pipe or a
// socket. Such a file is written in place; replacing it by renaming a
// temporary file over it would destroy it (as root, /dev/null itself).
func isSpecialFile(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("output %s: %w", path, err)
	}
	return !fi.Mode().IsRegular() && !fi.IsDir(), nil
}

// writeSpecialFile writes to an existing device, pipe or socket in place and
// returns the number of bytes written.
func writeSpecialFile(path string, write func(io.Writer) error) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	cw := &countingWriter{w: f}
	if err := write(cw); err != nil {
		f.Close()
		return cw.n, err
	}
	if err := f.Close(); err != nil {
		return cw.n, fmt.Errorf("write %s: %w", path, err)
	}
	return cw.n, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func cmdImport(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("import", "--host H [--time T] [--store S]... FILE.zip")
	host := fs.String("host", "", "the unit the archive belongs to (required; checked against its metadata)")
	when := fs.String("time", "", "the version's time (default: the metadata's exported_at_utc, else the file's modification time)")
	var storeNames stringList
	fs.Var(&storeNames, "store", "add to this store (repeatable; default: every store)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *host == "" || len(pos) != 1 {
		return usageErrorf("give --host and exactly one ZIP file")
	}
	var t time.Time
	if *when != "" {
		if t, err = parseWhen(*when, time.Now(), a.cfg.Location()); err != nil || t.Equal(latest) {
			return usageErrorf("--time %q: give a date or RFC 3339 time", *when)
		}
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	all, err := a.openStoresForBackup(ctx, storeNames...)
	if err != nil {
		return err
	}
	unlock, err := a.lockForBackup(ctx, all, "import")
	if err != nil {
		return err
	}
	defer unlock()
	// A store that cannot be opened or locked is reported; the others
	// receive the version.
	var stores []snapshot.Store
	var repos []*store.Repository
	var errs []error
	for _, s := range all {
		if s.Repo == nil {
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, s.Err))
			continue
		}
		stores = append(stores, s)
		repos = append(repos, s.Repo)
	}
	w, err := store.NewWriter(ctx, repos...)
	if err != nil {
		return err
	}
	hosts, err := ingest.Read(ctx, bufio.NewReaderSize(f, 1<<20), w, ingest.Options{Layout: ingest.Single, Host: *host})
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if len(hosts) == 0 {
		return fmt.Errorf("%s holds no files, so it is not a unit's export: export the unit from the Pioreactor UI and import that file (nothing was stored)", pos[0])
	}
	h := hosts[0]
	if h.Err != nil {
		return fmt.Errorf("%s: %w (nothing was stored)", pos[0], h.Err)
	}
	if t.IsZero() {
		t = h.ExportedAt
	}
	if t.IsZero() {
		t = st.ModTime()
	}
	res := h.Pending.Commit(ctx, store.Version{
		Time: t, Zone: a.cfg.ZoneName(), Kind: store.KindImport, Source: "pioreactor",
		AppVersion: h.AppVersion, Metadata: h.MetadataJSON(), Note: "imported from " + filepath.Base(pos[0]),
	})
	for i, r := range res {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("store %q: %w", stores[i].Name, r.Err))
			continue
		}
		fmt.Fprintf(a.env.Stdout, "imported %s as version %s of %s at %s into store %s (new %s)\n",
			pos[0], r.Version.ShortID(), h.Name, t.In(a.cfg.Location()).Format(time.RFC3339), stores[i].Name, web.HumanBytes(r.Stored))
	}
	if len(errs) == len(all) {
		return errors.Join(errs...)
	}
	if len(errs) > 0 {
		return withCode(exitPartial, errors.Join(errs...))
	}
	return nil
}
