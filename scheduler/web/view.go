package web

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/store"
)

// statusDoc is the part of `piosnap status --json` the pages show.
type statusDoc struct {
	Now    time.Time `json:"now"`
	Daemon struct {
		Running bool       `json:"running"`
		State   string     `json:"state"`
		NextRun *time.Time `json:"next_run"`
		Problem string     `json:"problem"`
	} `json:"daemon"`
	LastRun *struct {
		RunID  string    `json:"run_id"`
		Time   time.Time `json:"time"`
		Result string    `json:"result"`
		Error  string    `json:"error"`
		Hosts  []struct {
			Host   string `json:"host"`
			OK     bool   `json:"ok"`
			Error  string `json:"error"`
			Stores []struct {
				Store string `json:"store"`
				Error string `json:"error"`
			} `json:"stores"`
		} `json:"hosts"`
	} `json:"last_run"`
	StaleAfter float64 `json:"stale_after_seconds"`
	Hosts      []struct {
		Host       string    `json:"host"`
		Newest     time.Time `json:"newest"`
		AgeSeconds float64   `json:"age_seconds"`
		Stale      bool      `json:"stale"`
		Departed   bool      `json:"departed"`
		// StaleAfter, when set, is the host's own threshold (a source
		// on a schedule of its own).
		StaleAfter float64 `json:"stale_after_seconds"`
		Stores     []struct {
			Store      string    `json:"store"`
			Versions   int       `json:"versions"`
			Newest     time.Time `json:"newest"`
			AgeSeconds float64   `json:"age_seconds"`
			Stale      bool      `json:"stale"`
		} `json:"stores"`
	} `json:"hosts"`
	LeaderError string   `json:"leader_error"`
	StoreErrors []string `json:"store_errors"`
	// Verified and Stores are the daemon's readings of stored data and
	// the configured stores (verify_days).
	Verified []verifyRecord    `json:"verified"`
	Stores   []configuredStore `json:"stores"`
}

func parseStatus(b []byte) (*statusDoc, error) {
	var d statusDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	return &d, nil
}

// flag is a warning shown next to a unit, with its reason in plain words.
type flag struct {
	Label, Class, Reason string
}

// unitRow is one unit on the overview.
type unitRow struct {
	Host    string
	Newest  time.Time
	Age     string
	Flags   []flag
	Stores  []storeCell
	LastRun string // this unit's result in the last run
	Size    int64
	Chart   template.HTML
}

type storeCell struct {
	Store    string
	Versions int
	Newest   time.Time
	Age      string
	Stale    bool
}

// overview is the overview page's data.
type overview struct {
	Status *statusDoc
	Units  []unitRow
	// StaleAfter is status.stale_after in words.
	StaleAfter string
	// Readings are the daemon's readings of each store's data; Damaged
	// and Failed those that found damage and those that could not read
	// the store.
	Readings, Damaged, Failed []reading
}

// buildOverview joins the status document with the versions for the size
// charts; zone is the zone the pages show times in.
func buildOverview(st *statusDoc, vs []StoreVersions, zone *time.Location) *overview {
	ov := &overview{Status: st, StaleAfter: age(st.StaleAfter), Readings: readings(st, zone)}
	for _, r := range ov.Readings {
		if r.Damaged() {
			ov.Damaged = append(ov.Damaged, r)
		}
		if r.Failed != "" {
			ov.Failed = append(ov.Failed, r)
		}
	}
	damaged := damageFlags(ov.Readings, zone)
	byHost := uniqueVersions(vs)
	failed := map[string]string{}
	if lr := st.LastRun; lr != nil {
		for _, h := range lr.Hosts {
			switch {
			case h.Error != "":
				failed[h.Host] = h.Error
			case !h.OK:
				var errs []string
				for _, s := range h.Stores {
					if s.Error != "" {
						errs = append(errs, fmt.Sprintf("store %s: %s", s.Store, s.Error))
					}
				}
				failed[h.Host] = strings.Join(errs, "; ")
			}
		}
	}
	for _, h := range st.Hosts {
		row := unitRow{Host: h.Host, Newest: h.Newest, Age: age(h.AgeSeconds)}
		if h.Stale {
			reason := "no version in any store yet"
			if !h.Newest.IsZero() {
				reason = fmt.Sprintf("the newest version is %s old, more than stale_after (%s)", age(h.AgeSeconds), ov.StaleAfter)
				if h.StaleAfter > 0 {
					reason = fmt.Sprintf("the newest version is %s old, more than its own schedule allows (%s)", age(h.AgeSeconds), age(h.StaleAfter))
				}
			}
			if h.Departed {
				reason += "; expected, since the unit left the cluster"
			}
			row.Flags = append(row.Flags, flag{"STALE", "stale", reason})
		}
		row.Flags = append(row.Flags, damaged[h.Host]...)
		if h.Departed {
			row.Flags = append(row.Flags, flag{"departed", "departed", "the leader no longer lists this unit; its versions are kept"})
		}
		if e, ok := failed[h.Host]; ok {
			row.Flags = append(row.Flags, flag{"failing", "failing", "the last run could not back it up: " + e})
			row.LastRun = "failed"
		} else if st.LastRun != nil {
			for _, lh := range st.LastRun.Hosts {
				if lh.Host == h.Host {
					row.LastRun = "ok"
				}
			}
		}
		for _, s := range h.Stores {
			row.Stores = append(row.Stores, storeCell{Store: s.Store, Versions: s.Versions, Newest: s.Newest, Age: age(s.AgeSeconds), Stale: s.Stale})
		}
		if hv := byHost[h.Host]; len(hv) > 0 {
			row.Size = hv[0].v.Size
			row.Chart = sizeChart(hv)
		}
		ov.Units = append(ov.Units, row)
	}
	return ov
}

// storedVersion is a version with the stores that hold it.
type storedVersion struct {
	v      *store.Version
	stores []string
}

// uniqueVersions groups versions by host, newest first, one per ID with
// every store that has it.
func uniqueVersions(vs []StoreVersions) map[string][]*storedVersion {
	byID := map[string]*storedVersion{}
	var all []*storedVersion
	for _, s := range vs {
		for _, v := range s.Versions {
			if sv := byID[v.ID]; sv != nil {
				sv.stores = append(sv.stores, s.Store)
				continue
			}
			sv := &storedVersion{v: v, stores: []string{s.Store}}
			byID[v.ID] = sv
			all = append(all, sv)
		}
	}
	slices.SortStableFunc(all, func(a, b *storedVersion) int {
		if c := b.v.Time.Compare(a.v.Time); c != 0 {
			return c
		}
		return strings.Compare(a.v.ID, b.v.ID)
	})
	out := map[string][]*storedVersion{}
	for _, sv := range all {
		out[sv.v.Host] = append(out[sv.v.Host], sv)
	}
	return out
}

// chartPoints bounds the points of a size chart.
const chartPoints = 120

// sizeChart draws a unit's size over time as an inline SVG; hv is newest
// first.
func sizeChart(hv []*storedVersion) template.HTML {
	const w, h, pad = 300.0, 64.0, 2.0
	pts := make([]*store.Version, 0, len(hv))
	for i := len(hv) - 1; i >= 0; i-- {
		pts = append(pts, hv[i].v)
	}
	if len(pts) > chartPoints {
		thin := make([]*store.Version, 0, chartPoints)
		for i := range chartPoints {
			thin = append(thin, pts[i*(len(pts)-1)/(chartPoints-1)])
		}
		pts = thin
	}
	t0, t1 := pts[0].Time, pts[len(pts)-1].Time
	var lo, hi int64 = math.MaxInt64, 0
	for _, v := range pts {
		lo, hi = min(lo, v.Size), max(hi, v.Size)
	}
	x := func(t time.Time) float64 {
		if !t1.After(t0) {
			return w / 2
		}
		return pad + (w-2*pad)*float64(t.Sub(t0))/float64(t1.Sub(t0))
	}
	y := func(n int64) float64 {
		if hi == lo {
			return h / 2
		}
		return h - pad - (h-2*pad)*float64(n-lo)/float64(hi-lo)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" preserveAspectRatio="none" role="img" aria-label="size from %s to %s, between %s and %s">`,
		w, h, t0.Format("2006-01-02"), t1.Format("2006-01-02"), HumanBytes(lo), HumanBytes(hi))
	fmt.Fprintf(&b, `<title>size from %s (%s) to %s (%s)</title>`, HumanBytes(pts[0].Size), t0.Format("2006-01-02"), HumanBytes(pts[len(pts)-1].Size), t1.Format("2006-01-02"))
	b.WriteString(`<polyline fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" points="`)
	for i, v := range pts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x(v.Time), y(v.Size))
	}
	b.WriteString(`"/>`)
	if len(pts) == 1 {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="currentColor"/>`, x(t0), y(pts[0].Size))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // only numbers and formatted dates and sizes
}

// versionRow is one version on a unit's page.
type versionRow struct {
	ID, Short string
	Time      time.Time
	Kind      string
	Note      string
	Size      int64
	Entries   int
	Stores    []string
	Change    change
	// Dir: a directory source's version, downloaded as a tar and
	// restored on the server.
	Dir bool
	// Store is the store its download and restore links use: the first
	// of Stores the daemon's readings found it sound in. Damaged lists
	// the stores they found damage of it in, and DamagedNote says so.
	Store       string
	Damaged     []string
	DamagedNote string
}

// change is what a version changed since the unit's previous version.
type change struct {
	First                   bool
	Added, Removed, Changed []string
	// Bytes is the size of the added and changed files; Delta the change
	// of the total size.
	Bytes, Delta int64
}

// Same reports whether nothing changed.
func (c change) Same() bool { return len(c.Added)+len(c.Removed)+len(c.Changed) == 0 }

// diffVersions compares v with the unit's previous version prev.
func diffVersions(prev, v *store.Version) change {
	if prev == nil {
		return change{First: true, Bytes: v.Size, Delta: v.Size}
	}
	old := make(map[string]*store.Entry, len(prev.Entries))
	for i := range prev.Entries {
		old[prev.Entries[i].Name] = &prev.Entries[i]
	}
	c := change{Delta: v.Size - prev.Size}
	seen := make(map[string]bool, len(v.Entries))
	for i := range v.Entries {
		e := &v.Entries[i]
		seen[e.Name] = true
		if e.IsDir() {
			continue
		}
		o, ok := old[e.Name]
		switch {
		case !ok:
			c.Added = append(c.Added, e.Name)
			c.Bytes += e.Size
		case o.Size != e.Size || o.CRC32 != e.CRC32:
			c.Changed = append(c.Changed, e.Name)
			c.Bytes += e.Size
		}
	}
	for _, e := range prev.Entries {
		if !seen[e.Name] && !e.IsDir() {
			c.Removed = append(c.Removed, e.Name)
		}
	}
	return c
}

// dayGroup is the versions of one calendar day.
type dayGroup struct {
	Day      string
	Versions []versionRow
}

// unitVersions lists host's versions newest first with their changes,
// grouped by day in zone; page counts from 0, perPage per page.
func unitVersions(hv []*storedVersion, zone *time.Location, page, perPage int) (days []dayGroup, more bool) {
	start := page * perPage
	if start >= len(hv) {
		return nil, false
	}
	end := min(start+perPage, len(hv))
	for i := start; i < end; i++ {
		sv := hv[i]
		var prev *store.Version
		if i+1 < len(hv) {
			prev = hv[i+1].v
		}
		row := versionRow{
			ID: sv.v.ID, Short: sv.v.ShortID(), Time: sv.v.Time, Kind: sv.v.Kind, Note: sv.v.Note,
			Size: sv.v.Size, Entries: len(sv.v.Entries), Stores: sv.stores, Store: sv.stores[0], Change: diffVersions(prev, sv.v),
			Dir: sv.v.Source == dirSourceKind,
		}
		day := sv.v.Time.In(zone).Format("Monday 2 January 2006")
		if len(days) == 0 || days[len(days)-1].Day != day {
			days = append(days, dayGroup{Day: day})
		}
		days[len(days)-1].Versions = append(days[len(days)-1].Versions, row)
	}
	return days, end < len(hv)
}

// HumanBytes formats a byte count with binary units (1.5 MiB), as the
// pages show sizes.
func HumanBytes(n int64) string {
	const unit = 1024
	neg := n < 0
	if neg {
		n = -n
	}
	var s string
	if n < unit {
		s = fmt.Sprintf("%d B", n)
	} else {
		div, exp := int64(unit), 0
		for m := n / unit; m >= unit; m /= unit {
			div *= unit
			exp++
		}
		s = fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
	}
	if neg {
		return "−" + s
	}
	return s
}

// age formats seconds as a short duration in words.
func age(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 72*time.Hour && int(d.Minutes())%60 == 0:
		return fmt.Sprintf("%d h", int(d.Hours()))
	case d < 72*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// kindLabel names a version kind for people.
func kindLabel(kind string) string {
	switch kind {
	case store.KindBackup:
		return "backup"
	case store.KindSafety:
		return "safety (before a restore)"
	case store.KindImport:
		return "imported"
	}
	return kind
}
