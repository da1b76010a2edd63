package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
)

// listedVersion is one row of `piosnap list --json`. Its fields are a stable
// interface (README.md, "JSON output").
type listedVersion struct {
	ID         string    `json:"id"`
	ShortID    string    `json:"short_id"`
	Store      string    `json:"store"`
	Host       string    `json:"host"`
	Time       time.Time `json:"time"`
	Zone       string    `json:"zone"`
	Kind       string    `json:"kind"`
	Size       int64     `json:"size_bytes"`
	Entries    int       `json:"entries"`
	AppVersion string    `json:"app_version"`
	Note       string    `json:"note"`
}

func cmdList(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("list", "[--host H] [--store S] [--json]")
	host := fs.String("host", "", "only this unit's versions")
	storeName := fs.String("store", "", "only this store (default: every store)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	stores, err := a.openReadable(ctx, optionalName(*storeName)...)
	if err != nil {
		return err
	}
	rows := []listedVersion{}
	var failed []error
	for _, s := range stores {
		if s.Err != nil {
			failed = append(failed, fmt.Errorf("store %q: %w", s.Name, s.Err))
			continue
		}
		vs, err := s.Repo.Versions(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = append(failed, fmt.Errorf("store %q: %w", s.Name, err))
			continue
		}
		for _, v := range vs {
			if *host != "" && v.Host != *host {
				continue
			}
			rows = append(rows, listedRow(s.Name, v))
		}
	}
	verdict := storesVerdict(failed, len(stores))
	if *asJSON {
		if err := writeJSON(a.env.Stdout, rows); err != nil {
			return err
		}
		return verdict
	}
	if len(rows) == 0 {
		if len(failed) == 0 {
			fmt.Fprintln(a.env.Stdout, "no versions yet: run `piosnap backup`")
		}
		return verdict
	}
	loc := a.cfg.Location()
	tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTORE\tHOST\tTIME\tKIND\tSIZE\tAPP")
	for _, r := range rows {
		kind := r.Kind
		if r.Kind == store.KindSafety {
			kind = "safety (before a restore)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ShortID, r.Store, r.Host, r.Time.In(loc).Format("2006-01-02 15:04:05 MST"), kind, web.HumanBytes(r.Size), r.AppVersion)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return verdict
}

// listedRow is v's row in store storeName.
func listedRow(storeName string, v *store.Version) listedVersion {
	return listedVersion{
		ID: v.ID, ShortID: v.ShortID(), Store: storeName, Host: v.Host, Time: v.Time, Zone: v.Zone,
		Kind: v.Kind, Size: v.Size, Entries: len(v.Entries), AppVersion: v.AppVersion, Note: v.Note,
	}
}
