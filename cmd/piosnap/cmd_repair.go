package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/store"
)

// repairResult is one store's entry in `piosnap repair --json`.
type repairResult struct {
	Store  string              `json:"store"`
	From   string              `json:"from"`
	Report *store.RepairReport `json:"report"`
	Error  string              `json:"error"`
}

func cmdRepair(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("repair", "[--store S [--pack packs/xx/ID]...] [--from STORE] [--dry-run] [--json]")
	storeName := fs.String("store", "", "repair only this store (default: every store)")
	var packs stringList
	fs.Var(&packs, "pack", "read only this pack, as check names it (repeatable; needs --store; default: read every pack)")
	from := fs.String("from", "", "fetch the blobs that cannot be salvaged from this store, when it has them")
	dryRun := fs.Bool("dry-run", false, "read and report what a repair would do, change nothing")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(packs) > 0 && *storeName == "" {
		return usageErrorf("--pack names packs of one store: give --store too")
	}
	if *from != "" {
		if _, err := a.cfg.Store(*from); err != nil {
			return usageErrorf("--from: %v", err)
		}
		if *from == *storeName {
			return usageErrorf("--store and --from both name store %q: repair one store from another", *from)
		}
	}
	stores, err := a.openReadable(ctx, optionalName(*storeName)...)
	if err != nil {
		return err
	}
	var source *store.Repository
	if *from != "" {
		src, err := a.openStores(ctx, *from)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		source = src[0].Repo
		// Every other store is repaired from it; it is not repaired.
		stores = slices.DeleteFunc(stores, func(s snapshot.Store) bool { return s.Name == *from })
	}
	results := []repairResult{}
	var failed []error
	var incomplete []string
	for _, s := range stores {
		r := repairResult{Store: s.Name, From: *from}
		if s.Err != nil {
			r.Error = s.Err.Error()
			failed = append(failed, fmt.Errorf("store %q: %w", s.Name, s.Err))
			results = append(results, r)
			if !*asJSON {
				printRepair(a.env.Stdout, r)
			}
			continue
		}
		opt := store.RepairOptions{From: source, DryRun: *dryRun, Packs: packs}
		var rep *store.RepairReport
		if *dryRun {
			rep, err = s.Repo.Repair(ctx, opt)
		} else {
			unlock, lerr := a.lockAll(ctx, []snapshot.Store{s}, "repair")
			switch {
			case lerr == nil:
				rep, err = s.Repo.Repair(ctx, opt)
				unlock()
			case errors.Is(lerr, store.ErrLocked) || ctx.Err() != nil:
				return lerr
			default:
				err = lerr
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.Report = rep
		if err != nil {
			r.Error = err.Error()
			failed = append(failed, fmt.Errorf("store %q: %w", s.Name, err))
		} else if len(rep.Incomplete) > 0 {
			incomplete = append(incomplete, s.Name)
		}
		results = append(results, r)
		if !*asJSON {
			printRepair(a.env.Stdout, r)
		}
	}
	if *asJSON {
		if err := writeJSON(a.env.Stdout, results); err != nil {
			return err
		}
	}
	if len(incomplete) > 0 {
		how := "the next backup of the same data stores the lost blobs again and completes them"
		if *from == "" {
			how += ", or `piosnap repair --from OTHERSTORE` fetches them from a store that has them"
		}
		how += "; a version whose data is no longer on the unit can never be completed: `piosnap forget --version ID --store STORE` removes it"
		verb := "remain"
		if *dryRun {
			verb = "would remain"
		}
		return withCode(exitDamaged, fmt.Errorf("versions in store %s %s incomplete (listed above): %s", strings.Join(incomplete, ", "), verb, how))
	}
	return storesVerdict(failed, len(stores))
}

func printRepair(w io.Writer, r repairResult) {
	rep := r.Report
	if rep == nil {
		fmt.Fprintf(w, "store %s: repair failed: %s\n", r.Store, r.Error)
		return
	}
	fmt.Fprintf(w, "store %s: %s read, %d damaged or missing\n", r.Store, count(rep.PacksRead, "pack"), len(rep.Damaged))
	for _, d := range rep.Damaged {
		fmt.Fprintf(w, "  DAMAGED %s: %s\n", d.Pack, d.Reason)
	}
	for _, o := range rep.IndexDamaged {
		fmt.Fprintf(w, "  DAMAGED %s: replaced by an index read from the packs' own headers\n", o)
	}
	if rep.PacksIndexed > 0 {
		fmt.Fprintf(w, "  %s no sound index object named indexed again from their headers\n", count(rep.PacksIndexed, "pack"))
	}
	changes := len(rep.Damaged)+len(rep.IndexDamaged) > 0 || rep.BlobsSalvaged+rep.BlobsFetched+rep.BlobsLost > 0
	if changes {
		would := ""
		if rep.DryRun {
			would = "would be "
		}
		fetched := ""
		if r.From != "" {
			fetched = fmt.Sprintf(", %d %sfetched from store %s", rep.BlobsFetched, would, r.From)
		}
		fmt.Fprintf(w, "  blobs: %d %ssalvaged%s, %d %slost\n", rep.BlobsSalvaged, would, fetched, rep.BlobsLost, would)
		if !rep.DryRun {
			fmt.Fprintf(w, "  %s written, %s removed\n", count(rep.PacksWritten, "new pack"), count(rep.PacksDeleted, "damaged pack"))
		}
	}
	for _, v := range rep.Incomplete {
		fmt.Fprintf(w, "  INCOMPLETE version %s: uses lost blobs\n", v)
	}
	switch {
	case r.Error != "":
		fmt.Fprintf(w, "store %s: repair failed: %s\n", r.Store, r.Error)
	case !changes:
		fmt.Fprintf(w, "store %s: no damage found, nothing to repair\n", r.Store)
	case rep.DryRun:
		fmt.Fprintf(w, "store %s: dry run, nothing changed\n", r.Store)
	case len(rep.Incomplete) > 0:
		fmt.Fprintf(w, "store %s: repaired; %s still incomplete\n", r.Store, count(len(rep.Incomplete), "version"))
	default:
		fmt.Fprintf(w, "store %s: repaired, every version is complete\n", r.Store)
	}
}
