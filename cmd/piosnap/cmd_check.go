package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/piosnap/piosnap/store"
)

// checkResult is one store's entry in `piosnap check --json`.
type checkResult struct {
	Store  string             `json:"store"`
	Report *store.CheckReport `json:"report"`
	Error  string             `json:"error"`
}

func cmdCheck(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("check", "[--read-data | --read-data-subset N/T] [--store S] [--json]")
	readData := fs.Bool("read-data", false, "read every chunk and verify its hash (slow: reads the whole repository)")
	subsetFlag := fs.String("read-data-subset", "", "read and verify part N of T of the packs, e.g. 1/7, then 2/7 the next day: the whole repository in T runs")
	storeName := fs.String("store", "", "check only this store")
	asJSON := fs.Bool("json", false, "print JSON")
	_, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var subset store.Subset
	switch {
	case *readData && *subsetFlag != "":
		return usageErrorf("--read-data reads every pack and --read-data-subset only some: give one of them")
	case *readData:
		subset = store.Subset{Part: 1, Of: 1}
	case *subsetFlag != "":
		if subset, err = store.ParseSubset(*subsetFlag); err != nil {
			return usageErrorf("--read-data-subset: %v", err)
		}
	}
	stores, err := a.openReadable(ctx, optionalName(*storeName)...)
	if err != nil {
		return err
	}
	results := []checkResult{}
	var damaged []string
	var failed []error
	for _, s := range stores {
		if s.Err != nil {
			results = append(results, checkResult{Store: s.Name, Error: s.Err.Error()})
			failed = append(failed, fmt.Errorf("store %q: %w", s.Name, s.Err))
			continue
		}
		rep, err := s.Repo.CheckReading(ctx, subset)
		if rep != nil {
			rep.Problems = append([]store.Problem{}, rep.Problems...)
			for i := range rep.Problems {
				rep.Problems[i].Versions = append([]string{}, rep.Problems[i].Versions...)
			}
		}
		r := checkResult{Store: s.Name, Report: rep}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.Error = err.Error()
			failed = append(failed, fmt.Errorf("store %q: %w", s.Name, err))
		} else if !rep.OK() {
			damaged = append(damaged, s.Name)
		}
		results = append(results, r)
	}
	if *asJSON {
		if err := writeJSON(a.env.Stdout, results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			if r.Error != "" {
				fmt.Fprintf(a.env.Stdout, "store %s: check failed: %s\n", r.Store, r.Error)
				continue
			}
			rep := r.Report
			read := ""
			switch {
			case *readData:
				read = fmt.Sprintf(", %d read and verified", rep.ChunksRead)
			case subset.Of > 0:
				read = fmt.Sprintf(", %d read and verified in %d of the packs (part %s)", rep.ChunksRead, rep.PacksRead, subset)
			}
			fmt.Fprintf(a.env.Stdout, "store %s: %s, %s in %s%s", r.Store, count(rep.Versions, "version"), count(rep.Chunks, "blob"), count(rep.Packs, "pack"), read)
			if rep.Unused > 0 || rep.UnindexedPacks > 0 {
				fmt.Fprintf(a.env.Stdout, ", %d blobs and %d packs unused (left by an interrupted run; the next forget removes them)", rep.Unused, rep.UnindexedPacks)
			}
			fmt.Fprintln(a.env.Stdout)
			if rep.OK() {
				fmt.Fprintf(a.env.Stdout, "store %s: no damage found\n", r.Store)
				continue
			}
			printProblems(a.env.Stdout, rep.Problems)
		}
	}
	if len(damaged) > 0 {
		return withCode(exitDamaged, fmt.Errorf("damage found in store %s: the versions listed above cannot be restored completely from it; %s", strings.Join(damaged, ", "), repairHint(damaged[0])))
	}
	return storesVerdict(failed, len(stores))
}

// shownAlike is how many problems with the same reason and versions
// printProblems lists one by one before it counts the rest.
const shownAlike = 3

// printProblems lists damage, each object with the versions it affects.
// Problems alike (the same reason and versions: the blobs of one lost
// pack, say) are listed once as a group, shownAlike objects and a count of
// the rest, so that a failing disk does not bury the versions under
// thousands of lines; --json lists every object.
func printProblems(w io.Writer, ps []store.Problem) {
	var groups [][]store.Problem
	at := make(map[string]int)
	for _, p := range ps {
		k := p.Reason + "\x00" + strings.Join(p.Versions, "\x00")
		i, ok := at[k]
		if !ok {
			i = len(groups)
			at[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], p)
	}
	for _, g := range groups {
		if len(g) <= shownAlike {
			for _, p := range g {
				fmt.Fprintf(w, "  DAMAGED %s: %s\n", p.Object, p.Reason)
				printVersions(w, p.Versions)
			}
			continue
		}
		for _, p := range g[:shownAlike] {
			fmt.Fprintf(w, "  DAMAGED %s: %s\n", p.Object, p.Reason)
		}
		more := "objects"
		if len(g)-shownAlike == 1 {
			more = "object"
		}
		fmt.Fprintf(w, "  DAMAGED %d more %s alike (--json lists them)\n", len(g)-shownAlike, more)
		printVersions(w, g[0].Versions)
	}
}

func printVersions(w io.Writer, vs []string) {
	for _, v := range vs {
		fmt.Fprintf(w, "    affects version %s\n", v)
	}
}

// repairHint names the fix for damage found in store name.
func repairHint(name string) string {
	return fmt.Sprintf("run `piosnap repair --store %s` to remove the damage (add `--from OTHERSTORE` to fetch lost data from another store), or restore the versions from another store", name)
}
