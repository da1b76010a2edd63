package web

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/piosnap/piosnap/store"
)

// verifyRecord is the daemon's last reading of a store's data, as
// `piosnap status --json` prints it under "verified".
type verifyRecord struct {
	Store     string          `json:"store"`
	Part      string          `json:"part"`
	Time      time.Time       `json:"time"`
	PacksRead int             `json:"packs_read"`
	BlobsRead int             `json:"blobs_read"`
	Problems  []store.Problem `json:"problems"`
	Error     string          `json:"error"`
}

// configuredStore is a store of the configuration with its verify_days,
// as `piosnap status --json` prints it under "stores".
type configuredStore struct {
	Name       string `json:"name"`
	VerifyDays int    `json:"verify_days"`
}

// reading is what the pages say about the daemon's reading of one
// store's data (verify_days).
type reading struct {
	Store string
	// Off says the daemon does not read this store's data (verify_days
	// is 0).
	Off bool
	// Read says a reading is recorded: Time, Part, PacksRead, BlobsRead.
	Read                 bool
	Time                 time.Time
	Part                 string
	PacksRead, BlobsRead int
	// Failed is why the last reading could not read the store; it found
	// nothing then, neither damage nor its absence.
	Failed string
	// Damage is the damage found by the last readings (kept until its
	// part is read again or a repair removes it).
	Damage []damage
	// Next says when the next reading is due, in words.
	Next string
}

// Damaged reports whether the last readings found damage.
func (r reading) Damaged() bool { return len(r.Damage) > 0 }

// PartWords says the part read as "3 of 30".
func (r reading) PartWords() string {
	if n, t, ok := strings.Cut(r.Part, "/"); ok {
		return n + " of " + t
	}
	return r.Part
}

// damage is one damaged object and the versions it affects.
type damage struct {
	Object, Reason string
	Versions       []affected
}

// affected is a version damage affects: its short ID, host and time
// when the label names them (Label otherwise).
type affected struct {
	ID, Host string
	Time     time.Time
	Label    string
}

// versionLabelRE reads the labels store.Problem gives versions: "short ID
// (host YYYY-MM-DD HH:MM)".
var versionLabelRE = regexp.MustCompile(`^([0-9a-f]+) \((\S+) (\d{4}-\d{2}-\d{2} \d{2}:\d{2})\)$`)

func parseAffected(label string) affected {
	m := versionLabelRE.FindStringSubmatch(label)
	if m == nil {
		return affected{Label: label}
	}
	t, err := time.Parse("2006-01-02 15:04", m[3]) // versions are stored in UTC
	if err != nil {
		return affected{Label: label}
	}
	return affected{ID: m[1], Host: m[2], Time: t, Label: label}
}

// readings joins the configured stores with the daemon's last readings
// of their data, in the configuration's order; a reading of a store the
// configuration no longer has follows, so that no damage is hidden. The
// next reading is said in zone.
func readings(st *statusDoc, zone *time.Location) []reading {
	var out []reading
	recs := map[string]*verifyRecord{}
	for i := range st.Verified {
		recs[st.Verified[i].Store] = &st.Verified[i]
	}
	seen := map[string]bool{}
	for _, cs := range st.Stores {
		seen[cs.Name] = true
		out = append(out, newReading(st, cs.Name, cs.VerifyDays, recs[cs.Name], zone))
	}
	for i := range st.Verified {
		if r := &st.Verified[i]; !seen[r.Store] {
			out = append(out, newReading(st, r.Store, -1, r, zone))
		}
	}
	return out
}

// newReading describes store name's reading; days is its verify_days, -1
// when unknown.
func newReading(st *statusDoc, name string, days int, rec *verifyRecord, zone *time.Location) reading {
	r := reading{Store: name, Off: days == 0}
	afterNext := "after the daemon's next run"
	if st.Daemon.NextRun != nil {
		afterNext += " (" + st.Daemon.NextRun.In(zone).Format("2006-01-02 15:04 MST") + ")"
	} else if !st.Daemon.Running {
		afterNext += ", once the daemon runs again"
	}
	if rec != nil {
		r.Read, r.Time, r.Part, r.PacksRead, r.BlobsRead, r.Failed = true, rec.Time, rec.Part, rec.PacksRead, rec.BlobsRead, rec.Error
		for _, p := range rec.Problems {
			d := damage{Object: p.Object, Reason: p.Reason}
			for _, v := range p.Versions {
				d.Versions = append(d.Versions, parseAffected(v))
			}
			// By unit, newest first, as the unit pages list them.
			slices.SortStableFunc(d.Versions, func(a, b affected) int {
				if c := strings.Compare(a.Host, b.Host); c != 0 {
					return c
				}
				return b.Time.Compare(a.Time)
			})
			r.Damage = append(r.Damage, d)
		}
	}
	switch {
	case r.Off:
		r.Next = "off: this store's verify_days is 0, so the daemon does not read its data back"
	case !r.Read:
		r.Next = "not read yet: the first part is read " + afterNext
	case r.Failed != "":
		r.Next = "tried again " + afterNext
	case sameDay(rec.Time, st.Now, zone):
		y, m, d := st.Now.In(zone).Date()
		r.Next = "the next part is read after the first run on " + time.Date(y, m, d+1, 0, 0, 0, 0, zone).Format("2006-01-02")
	default:
		r.Next = "the next part is read " + afterNext
	}
	return r
}

// sameDay reports whether a and b fall on the same calendar day in zone.
func sameDay(a, b time.Time, zone *time.Location) bool {
	ay, am, ad := a.In(zone).Date()
	by, bm, bd := b.In(zone).Date()
	return ay == by && am == bm && ad == bd
}

// damageFlags flags each unit whose versions the readings found damaged,
// by host; times are said in zone.
func damageFlags(rs []reading, zone *time.Location) map[string][]flag {
	out := map[string][]flag{}
	for _, r := range rs {
		byHost := map[string][]string{}
		for _, d := range r.Damage {
			for _, v := range d.Versions {
				label := v.ID + " (" + v.Time.In(zone).Format("2006-01-02 15:04 MST") + ")"
				if v.Host != "" && !slices.Contains(byHost[v.Host], label) {
					byHost[v.Host] = append(byHost[v.Host], label)
				}
			}
		}
		for host, vs := range byHost {
			out[host] = append(out[host], flag{"DAMAGED", "damaged", fmt.Sprintf(
				"store %s holds damaged data of %s %s: it cannot be restored completely from that store (see the warning at the top)",
				r.Store, plural(len(vs), "version", "versions"), strings.Join(vs, ", "))})
		}
	}
	return out
}

// plural picks the word for n things.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// damagedVersions maps the short IDs of the versions the readings found
// damaged to the stores they were found damaged in.
func damagedVersions(rs []reading) map[string][]string {
	out := map[string][]string{}
	for _, r := range rs {
		for _, d := range r.Damage {
			for _, v := range d.Versions {
				id := v.ID
				if id == "" {
					id = v.Label // a version whose manifest is damaged: its short ID alone
				}
				if !slices.Contains(out[id], r.Store) {
					out[id] = append(out[id], r.Store)
				}
			}
		}
	}
	return out
}

// markDamaged marks the versions of days found damaged in a store, and
// points their links at a store they were not found damaged in.
func markDamaged(days []dayGroup, damaged map[string][]string) {
	for i := range days {
		for j := range days[i].Versions {
			row := &days[i].Versions[j]
			var in []string
			for _, s := range row.Stores {
				if slices.Contains(damaged[row.Short], s) {
					in = append(in, s)
				}
			}
			if len(in) == 0 {
				continue
			}
			row.Damaged = in
			sound := slices.IndexFunc(row.Stores, func(s string) bool { return !slices.Contains(in, s) })
			if sound < 0 {
				row.DamagedNote = fmt.Sprintf("damaged in %s, every store that holds it: it cannot be restored completely (see the warning on the overview)", strings.Join(in, ", "))
				continue
			}
			row.Store = row.Stores[sound]
			row.DamagedNote = fmt.Sprintf("damaged in %s %s: download and restore use store %s", plural(len(in), "store", "stores"), strings.Join(in, ", "), row.Store)
		}
	}
}
