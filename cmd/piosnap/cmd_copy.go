package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
)

// copyResult is the output of `piosnap copy --json`.
type copyResult struct {
	From   string            `json:"from"`
	To     string            `json:"to"`
	Report *store.CopyReport `json:"report"`
}

func cmdCopy(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("copy", "--from STORE --to STORE [--host H]... [--json]")
	from := fs.String("from", "", "the store to copy from (required)")
	to := fs.String("to", "", "the store to copy to (required)")
	var hosts stringList
	fs.Var(&hosts, "host", "copy only this unit's versions (repeatable; default: every host)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usageErrorf("--from and --to are required: name two stores of the configuration")
	}
	if *from == *to {
		return usageErrorf("--from and --to both name store %q: name two different stores", *from)
	}
	for _, name := range []string{*from, *to} {
		if _, err := a.cfg.Store(name); err != nil {
			return usageErrorf("%v", err)
		}
	}
	src, err := a.openStores(ctx, *from)
	if err != nil {
		return err
	}
	dst, err := a.openStores(ctx, *to)
	if err != nil {
		return err
	}
	unlock, err := a.lockAll(ctx, dst, "copy")
	if err != nil {
		return err
	}
	defer unlock()
	var filter func(*store.Version) bool
	if len(hosts) > 0 {
		filter = func(v *store.Version) bool { return slices.Contains(hosts, v.Host) }
	}
	rep, err := store.CopyVersions(ctx, src[0].Repo, dst[0].Repo, filter)
	if rep != nil && ctx.Err() == nil {
		if *asJSON {
			if jerr := writeJSON(a.env.Stdout, copyResult{From: *from, To: *to, Report: rep}); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			printCopyReport(a.env.Stdout, *from, *to, rep)
		}
	}
	if err != nil {
		if rep != nil && len(rep.Failed) > 0 && len(rep.Copied) > 0 {
			return withCode(exitPartial, err)
		}
		return err
	}
	return nil
}

func printCopyReport(w io.Writer, from, to string, rep *store.CopyReport) {
	fmt.Fprintf(w, "copy %s -> %s: %s copied, %d already there\n", from, to, count(len(rep.Copied), "version"), rep.Present)
	fmt.Fprintf(w, "  %d blobs sent (%s), %d blobs already there\n", rep.Chunks, web.HumanBytes(rep.Bytes), rep.ChunksPresent)
	ids := make([]string, 0, len(rep.Failed))
	for id := range rep.Failed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "  FAILED  version %.8s: %s\n", id, rep.Failed[id])
	}
}
