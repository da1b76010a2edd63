package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
	"github.com/piosnap/piosnap/store/s3"
)

// backend opens the backend of a configured store. create makes a missing
// local directory.
func (a *app) backend(ctx context.Context, s *config.Store, create bool) (store.Backend, error) {
	switch s.Type {
	case "local":
		open := local.Open
		if create {
			open = local.Create
		}
		b, err := open(s.Path)
		if err != nil {
			return nil, a.permissionHint(s.Path, err)
		}
		return b, nil
	case "s3":
		creds, warning, err := s3.LoadCredentials(a.env.Getenv, s.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("store %q: %w", s.Name, err)
		}
		if warning != "" {
			a.log.Warn(warning, "store", s.Name)
		}
		cfg := s3.Config{
			Endpoint: s.Endpoint, Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region,
			PathStyle: s.PathStyleOrDefault(), TLS: s.TLSOrDefault(), CAFile: s.CAFile,
			AccessKey: creds.AccessKey, SecretKey: creds.SecretKey, Logger: a.log.With("store", s.Name),
		}
		if create {
			b, err := s3.New(cfg)
			if err != nil {
				return nil, err
			}
			return b, nil
		}
		return s3.Open(ctx, cfg)
	}
	return nil, fmt.Errorf("store %q: unknown type %q", s.Name, s.Type)
}

// openEach opens the named stores (all when names is empty), each on its
// own: a store that cannot be opened is returned with Err set. Only an
// unknown name (a usage error) or a cancelled context fails the call.
func (a *app) openEach(ctx context.Context, names []string) ([]snapshot.Store, error) {
	for _, n := range names {
		if _, err := a.cfg.Store(n); err != nil {
			return nil, usageErrorf("%v", err)
		}
	}
	var out []snapshot.Store
	for i := range a.cfg.Stores {
		s := &a.cfg.Stores[i]
		if len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		st := snapshot.Store{Name: s.Name}
		b, err := a.backend(ctx, s, false)
		if err == nil {
			st.Repo, err = store.Open(ctx, b)
			if err != nil && s.Type == "local" {
				err = a.permissionHint(s.Path, err)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			st.Err = err
		}
		out = append(out, st)
	}
	return out, nil
}

// openStores opens the named stores (all when names is empty); any store
// that cannot be opened fails the call.
func (a *app) openStores(ctx context.Context, names ...string) ([]snapshot.Store, error) {
	stores, err := a.openEach(ctx, names)
	if err != nil {
		return nil, err
	}
	for _, s := range stores {
		if s.Err != nil {
			return nil, fmt.Errorf("store %q: %w", s.Name, s.Err)
		}
	}
	return stores, nil
}

// optionalName turns a --store flag's value into the names openReadable
// takes: none (every store) when the flag is empty.
func optionalName(name string) []string {
	if name == "" {
		return nil
	}
	return []string{name}
}

// openReadable opens the named stores (all when names is empty) for a
// command that serves each store on its own (list, check, status, forget,
// export, restore): a store that cannot be opened, such as an S3 server
// that is down, is logged and returned with Err set, and the command serves
// the others at once. See storesVerdict for the exit code.
func (a *app) openReadable(ctx context.Context, names ...string) ([]snapshot.Store, error) {
	stores, err := a.openEach(ctx, names)
	if err != nil {
		return nil, err
	}
	for _, s := range stores {
		if s.Err != nil {
			a.log.Error("store unavailable", "store", s.Name, "err", s.Err)
		}
	}
	return stores, nil
}

// storesVerdict is the result of a command that served each of total
// stores on its own, given the stores that failed: nil when none did, exit
// 3 when the others were served, exit 1 when none could be.
func storesVerdict(failed []error, total int) error {
	switch {
	case len(failed) == 0:
		return nil
	case len(failed) < total:
		return withCode(exitPartial, fmt.Errorf("%d of %d stores unavailable, the others were served: %w", len(failed), total, errors.Join(failed...)))
	}
	return withCode(exitFailure, errors.Join(failed...))
}

// openStoresForBackup is openStores for a backup run: a store that cannot be
// opened (its disk unmounted, its server down) is returned with Err set
// instead of failing the run, so that the other stores still receive their
// versions and the report names the broken one. At least one store must
// open.
func (a *app) openStoresForBackup(ctx context.Context, names ...string) ([]snapshot.Store, error) {
	stores, err := a.openEach(ctx, names)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, s := range stores {
		if s.Err != nil {
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, s.Err))
			a.log.Error("store unavailable for this run", "store", s.Name, "err", s.Err)
		}
	}
	if len(errs) == len(stores) {
		return nil, errors.Join(errs...)
	}
	return stores, nil
}

// lockAll takes the exclusive lock of every store, waiting up to lock_wait.
func (a *app) lockAll(ctx context.Context, stores []snapshot.Store, purpose string) (unlock func(), err error) {
	var locks []*store.RepoLock
	unlock = func() {
		for _, l := range locks {
			_ = l.Unlock(context.WithoutCancel(ctx))
		}
	}
	for _, s := range stores {
		if s.Repo == nil {
			continue // could not be opened; reported by the run
		}
		l, err := s.Repo.Lock(ctx, purpose, a.cfg.LockWait.Duration)
		if err != nil {
			unlock()
			if errors.Is(err, store.ErrLocked) {
				return nil, withCode(exitLocked, fmt.Errorf("store %q: %w (waited %s; lock_wait in the config sets how long)", s.Name, err, a.cfg.LockWait.Duration))
			}
			return nil, fmt.Errorf("store %q: %w", s.Name, err)
		}
		locks = append(locks, l)
	}
	return unlock, nil
}

// lockForBackup is lockAll for a backup run: a store whose lock cannot be
// written (its disk full or read-only, its server down) is marked broken
// for the run instead of stopping it, so that the other stores still receive
// their versions. A store locked by another piosnap still fails the call
// (exit 5), as does every store failing.
func (a *app) lockForBackup(ctx context.Context, stores []snapshot.Store, purpose string) (unlock func(), err error) {
	var locks []*store.RepoLock
	unlock = func() {
		for _, l := range locks {
			_ = l.Unlock(context.WithoutCancel(ctx))
		}
	}
	var errs []error
	for i := range stores {
		s := &stores[i]
		if s.Repo == nil {
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, s.Err))
			continue
		}
		l, err := s.Repo.Lock(ctx, purpose, a.cfg.LockWait.Duration)
		switch {
		case err == nil:
			locks = append(locks, l)
			continue
		case ctx.Err() != nil:
			unlock()
			return nil, ctx.Err()
		case errors.Is(err, store.ErrLocked):
			unlock()
			return nil, withCode(exitLocked, fmt.Errorf("store %q: %w (waited %s; lock_wait in the config sets how long)", s.Name, err, a.cfg.LockWait.Duration))
		}
		s.Repo, s.Err = nil, fmt.Errorf("cannot write to the store: %w", err)
		errs = append(errs, fmt.Errorf("store %q: %w", s.Name, s.Err))
		a.log.Error("store unavailable for this run", "store", s.Name, "err", s.Err)
	}
	if len(locks) == 0 {
		return nil, errors.Join(errs...)
	}
	return unlock, nil
}

// client builds the Pioreactor client from the configuration.
func (a *app) client() (*pioreactor.Client, error) {
	p := a.cfg.Pioreactor
	password := a.env.Getenv("PIOSNAP_PIOREACTOR_PASSWORD")
	if p.PasswordFile != "" {
		b, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("pioreactor.password_file: %w", err)
		}
		password = trimNewline(string(b))
	}
	return pioreactor.New(pioreactor.Config{
		Leader: p.Leader, Addresses: p.Addresses, User: p.User, Password: password,
		Timeout: p.Timeout.Duration, ExportTimeout: p.ExportTimeout.Duration,
	})
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
