package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/store"
)

// VerifyRecord is what the daemon's last reading of a store's data found
// (see verifyStores).
type VerifyRecord struct {
	Store string `json:"store"`
	// Part is the part of the packs read, "N/T" (T is verify_days).
	Part string `json:"part"`
	// Time is when the reading ended.
	Time time.Time `json:"time"`
	// PacksRead and BlobsRead count what was read and verified.
	PacksRead int `json:"packs_read"`
	BlobsRead int `json:"blobs_read"`
	// Problems is the damage found, with the versions it affects.
	Problems []store.Problem `json:"problems,omitempty"`
	// Error says why the store could not be read; nothing is known then.
	Error string `json:"error,omitempty"`
}

// verifyPart returns the part of verify_days parts to read on the day of
// t in loc: part 1 on one day, 2 on the next, and so on, so that every
// pack is read once in days days whenever the daemon runs daily.
func verifyPart(t time.Time, loc *time.Location, days int) store.Subset {
	y, m, d := t.In(loc).Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
	return store.Subset{Part: int(day%int64(days)) + 1, Of: days}
}

// verifyStores reads and verifies one part of the packs of each store
// whose verify_days is set, unless that store's part of today has been
// read already: after the first run of each day, whoever started it. It
// runs after the run's locks are released (a check needs none). Damage
// and failures are logged, recorded in the status file and the metrics,
// and reported by the run's pings; they do not fail the run, whose
// versions are stored.
func (d *Daemon) verifyStores(ctx context.Context, a run, now time.Time, log *slog.Logger) {
	if ctx.Err() != nil {
		return // shutting down
	}
	loc := a.cfg.Location()
	due := map[string]store.Subset{}
	damaged := map[string]bool{} // stores with damage recorded
	d.mu.Lock()
	d.status.Verified = configuredOnly(d.status.Verified, a.cfg)
	for _, r := range d.status.Verified {
		if len(r.Problems) > 0 {
			damaged[r.Store] = true
		}
	}
	for _, cs := range a.cfg.Stores {
		days := cs.VerifyDaysOrDefault()
		if days == 0 {
			continue
		}
		sub := verifyPart(now, loc, days)
		i := slices.IndexFunc(d.status.Verified, func(r VerifyRecord) bool { return r.Store == cs.Name })
		if i >= 0 {
			r := d.status.Verified[i]
			if r.Error == "" && r.Part == sub.String() && sameDay(r.Time, now, loc) {
				continue
			}
		}
		due[cs.Name] = sub
	}
	d.mu.Unlock()
	if len(due) == 0 && len(damaged) == 0 {
		return
	}
	stores, err := a.app.OpenReadable(ctx)
	if err != nil {
		log.Warn("cannot open the stores to verify their data; trying again after the next run", "err", err)
		return
	}
	for _, s := range stores {
		if s.Err == nil && damaged[s.Name] {
			d.dropGone(ctx, s.Name, s.Repo, log)
		}
		sub, ok := due[s.Name]
		if !ok || ctx.Err() != nil {
			continue
		}
		rec := VerifyRecord{Store: s.Name, Part: sub.String()}
		l := log.With("store", s.Name, "part", rec.Part)
		if s.Err != nil {
			rec.Error = s.Err.Error()
		} else {
			start := time.Now()
			rep, err := s.Repo.CheckReading(ctx, sub)
			switch {
			case ctx.Err() != nil:
				return // shutting down: nothing is known
			case err != nil:
				rec.Error = err.Error()
			default:
				rec.PacksRead, rec.BlobsRead, rec.Problems = rep.PacksRead, rep.ChunksRead, rep.Problems
			}
			l = l.With("duration", time.Since(start).Round(time.Millisecond))
		}
		rec.Time = time.Now().UTC()
		d.mu.Lock()
		i := slices.IndexFunc(d.status.Verified, func(r VerifyRecord) bool { return r.Store == s.Name })
		if i >= 0 {
			rec.Problems = stillDamaged(rec, d.status.Verified[i].Problems, sub)
		}
		d.mu.Unlock()
		if rec.Error == "" {
			d.metrics.verified(s.Name, rec.Time, len(rec.Problems))
		}
		switch {
		case rec.Error != "":
			l.Warn("cannot verify the store's data; trying again after the next run", "err", rec.Error)
		case len(rec.Problems) > 0:
			for _, p := range rec.Problems {
				l.Error("stored data is damaged: run `piosnap repair --store "+s.Name+"` to remove it (with `--from` another store that has the data); until then restore the versions it affects from another store", "object", p.Object, "reason", p.Reason, "versions", p.Versions)
			}
		default:
			l.Info("stored data verified", "packs", rec.PacksRead, "blobs", rec.BlobsRead)
		}
		d.mu.Lock()
		if i := slices.IndexFunc(d.status.Verified, func(r VerifyRecord) bool { return r.Store == s.Name }); i >= 0 {
			d.status.Verified[i] = rec
		} else {
			d.status.Verified = append(d.status.Verified, rec)
		}
		d.mu.Unlock()
	}
}

// dropGone forgets the recorded damage of objects the store no longer has
// (see DropGone): a repair removed them, so status, metrics and pings stop
// reporting them at once, not when their part is read again.
func (d *Daemon) dropGone(ctx context.Context, name string, repo *store.Repository, log *slog.Logger) {
	d.mu.Lock()
	i := slices.IndexFunc(d.status.Verified, func(r VerifyRecord) bool { return r.Store == name })
	if i < 0 {
		d.mu.Unlock()
		return
	}
	rec := d.status.Verified[i]
	d.mu.Unlock()
	n := len(rec.Problems)
	if err := rec.DropGone(ctx, repo); err != nil {
		log.Warn("cannot tell whether recorded damage was repaired; it stays reported", "store", name, "err", err)
		return
	}
	if len(rec.Problems) == n {
		return
	}
	log.Info("damage recorded earlier is repaired: the objects are no longer in the store", "store", name, "repaired", n-len(rec.Problems), "still_damaged", len(rec.Problems))
	d.mu.Lock()
	if i := slices.IndexFunc(d.status.Verified, func(r VerifyRecord) bool { return r.Store == name }); i >= 0 {
		d.status.Verified[i].Problems = rec.Problems
	}
	d.mu.Unlock()
	if rec.Error == "" {
		d.metrics.verified(name, rec.Time, len(rec.Problems))
	}
}

// DropGone removes from r the problems of objects repo no longer has at
// all (a damaged pack a repair removed: see store.Repository.Gone). The
// daemon drops them before each run's reading, and `piosnap status` when
// it shows the record, so that a repair is seen at once.
func (r *VerifyRecord) DropGone(ctx context.Context, repo *store.Repository) error {
	if len(r.Problems) == 0 {
		return nil
	}
	objs := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		objs[i] = p.Object
	}
	gone, err := repo.Gone(ctx, objs)
	if err != nil {
		return err
	}
	r.Problems = slices.DeleteFunc(slices.Clone(r.Problems), func(p store.Problem) bool { return gone[p.Object] })
	return nil
}

// DamagedIn returns the stores whose recorded readings (recs, as the
// status file holds them) found version id damaged, leaving out damage a
// repair has removed since (see DropGone). repo gives a store's
// repository, or nil when it cannot be read: its damage then stays. No
// store is read unless a record names id.
func DamagedIn(ctx context.Context, recs []VerifyRecord, id string, repo func(store string) *store.Repository) []string {
	names := func(r VerifyRecord) bool {
		for _, p := range r.Problems {
			for _, v := range p.Versions {
				if short, _, _ := strings.Cut(v, " "); len(id) >= 8 && short == id[:8] {
					return true
				}
			}
		}
		return false
	}
	var out []string
	for _, r := range recs { // a copy: DropGone leaves recs alone
		if !names(r) {
			continue
		}
		if rp := repo(r.Store); rp != nil {
			_ = r.DropGone(ctx, rp) // on an error, the damage stays
		}
		if names(r) {
			out = append(out, r.Store)
		}
	}
	return out
}

// stillDamaged returns rec's problems plus those of the store's earlier
// readings (earlier) that rec's reading did not look at again: damage
// found in a pack stays reported, in the status, the metrics and the
// pings, until the day its part is read again and finds it sound (or gone),
// not only on the day it was found. A reading that failed looked at
// nothing.
func stillDamaged(rec VerifyRecord, earlier []store.Problem, sub store.Subset) []store.Problem {
	out := rec.Problems
	for _, p := range earlier {
		if rec.Error == "" && sub.Covers(p.Object) {
			continue
		}
		if !slices.ContainsFunc(out, func(q store.Problem) bool { return q.Object == p.Object }) {
			out = append(out, p)
		}
	}
	return out
}

// configuredOnly drops the records of stores that cfg no longer has (or
// no longer verifies), so that damage found in a store taken out of the
// configuration does not stay in piosnap status for good.
func configuredOnly(recs []VerifyRecord, cfg *config.Config) []VerifyRecord {
	return slices.DeleteFunc(recs, func(r VerifyRecord) bool {
		cs, err := cfg.Store(r.Store)
		return err != nil || cs.VerifyDaysOrDefault() == 0
	})
}

// sameDay reports whether a and b fall on the same calendar day in loc.
func sameDay(a, b time.Time, loc *time.Location) bool {
	ay, am, ad := a.In(loc).Date()
	by, bm, bd := b.In(loc).Date()
	return ay == by && am == bm && ad == bd
}

// verifyFailures describes the damage and failures of the last readings,
// for a failure ping; empty when there are none.
func verifyFailures(recs []VerifyRecord) string {
	var s string
	for _, r := range recs {
		switch {
		case r.Error != "":
			s += fmt.Sprintf("verifying store %s (part %s) failed: %s\n", r.Store, r.Part, r.Error)
		case len(r.Problems) > 0:
			for _, p := range r.Problems {
				s += fmt.Sprintf("store %s is damaged: %s: %s (versions %v)\n", r.Store, p.Object, p.Reason, p.Versions)
			}
			s += fmt.Sprintf("run `piosnap repair --store %s` to remove the damage\n", r.Store)
		}
	}
	return s
}
