package simulator

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// Night is one simulated night in the life of a leader database, as
// [AgeDatabase] and [Cluster.AgeNight] apply it. A real leader's database
// changes in three ways between two nightly backups, and a night does all
// three, in this order:
//
//   - Appends: the running experiments' readings and logs, Growth of the
//     data, with the rows pioreactor_unit_activity_data's triggers add.
//     Every table is indexed on (experiment, pioreactor_unit, ...) or
//     (level, timestamp DESC) and several experiments run at once, so new
//     index entries land among older ones, not only at the end.
//   - Updates in place: Updates of all rows, picked uniformly at random
//     over the whole file, get a new value (a reading corrected, a log's
//     task renamed), changing a few bytes of table pages anywhere in the
//     file; half of them also get their timestamp corrected by up to ten
//     minutes, which moves their entries in the indexes on timestamp.
//     With the defaults, a night changes 6-16 % of the file's pages, as
//     issue 10 measured on a real-like leader database.
//   - Now and then (with probability DeleteChance) a deleted range: a
//     contiguous run of DeleteShare of one table's rows, among its older
//     rows, is deleted. Its pages go to SQLite's freelist and later
//     nights' appends reuse them, in the middle of the file.
//
// Everything is deterministic: the same database aged with the same Seed
// and Number ends byte for byte the same.
type Night struct {
	// Seed and Number pick the rows a night updates and deletes. Use one
	// Seed for a series of nights and number them 1, 2, 3...
	Seed   uint64
	Number int
	// Growth is the share of the data (pages in use) appended as new
	// readings and logs. Zero means 0.01 (1 %); negative means none.
	Growth float64
	// Updates is the share of all rows updated in place. Zero means 0.001
	// (0.1 %); negative means none.
	Updates float64
	// DeleteChance is the probability that the night deletes a range of
	// rows. Zero means 0.1 (one night in ten); negative means never, and 1
	// or more every night.
	DeleteChance float64
	// DeleteShare is the share of one table's rows a deleted range holds.
	// Zero means 0.005 (0.5 %).
	DeleteShare float64
}

// Defaults of [Night]'s zero fields.
const (
	DefaultNightGrowth       = 0.01
	DefaultNightUpdates      = 0.001
	DefaultNightDeleteChance = 0.1
	DefaultNightDeleteShare  = 0.005
)

// NightReport says what a night did to the database.
type NightReport struct {
	// SizeBefore and SizeAfter are the file's sizes in bytes.
	SizeBefore, SizeAfter int64
	// Appended, Updated and Deleted count rows.
	Appended, Updated, Deleted int64
	// DeletedTable names the table a range was deleted from, or is empty.
	DeletedTable string
}

// agedTables are the tables a night updates and deletes from: each with
// the assignment that corrects one row's value from the argument ?1 the
// night's generator draws for it. An update also moves the row's
// timestamp by ?2 seconds when that is not zero (see clockFixShare).
var agedTables = []struct {
	name  string
	set   string
	value func(r *rand.Rand) any
}{
	{"od_readings", "od_reading = od_reading * ?1", scale},
	{"od_readings_filtered", "normalized_od_reading = normalized_od_reading * ?1", scale},
	{"growth_rates", "rate = rate * ?1", scale},
	{"pioreactor_unit_activity_data", "od_reading = od_reading * ?1", scale},
	{"temperature_readings", "temperature_c = ?1", func(r *rand.Rand) any { return 30 + r.NormFloat64()*0.05 }},
	{"stirring_rates", "measured_rpm = measured_rpm * ?1", scale},
	{"pwm_dcs", "channel_5 = channel_5 * ?1", scale},
	{"dosing_events", "volume_change_ml = volume_change_ml * ?1", scale},
	{"logs", "task = ?1", func(r *rand.Rand) any { return logTasks[r.IntN(len(logTasks))] }},
}

// updateSQL is the statement that updates one row of table by rowid (?3).
// OR IGNORE: a moved timestamp that collides with another row's in
// pioreactor_unit_activity_data's unique index leaves the row as it was.
func updateSQL(table, set string) string {
	return "UPDATE OR IGNORE " + table + " SET " + set +
		", timestamp = iif(?2 = 0, timestamp, strftime('%Y-%m-%dT%H:%M:%fZ', timestamp, printf('%+.3f seconds', ?2))) WHERE rowid = ?3"
}

// A share clockFixShare of a night's updates also corrects the row's
// timestamp, by up to clockFixMax either way, as when readings a unit
// took before its clock synced (a Raspberry Pi has no real-time clock)
// are put right: the row's entries move within every index on its
// timestamp, so such an update changes index leaf pages besides the
// table's.
const (
	clockFixShare = 0.5
	clockFixMax   = 10 * time.Minute
)

// scale draws the factor a corrected reading is multiplied by.
func scale(r *rand.Rand) any { return 1 + r.NormFloat64()*0.01 }

// AgeDatabase applies one [Night] to the Pioreactor leader database at
// path, a file [SeedDatabase] made. Rows are appended for the units the
// database's experiment_worker_assignments table names. The database must
// not be open elsewhere; it is left in WAL mode, checkpointed, so the main
// file holds all data, and a page-by-page comparison with a copy taken
// before shows exactly the pages the night changed.
func AgeDatabase(ctx context.Context, path string, n Night) (NightReport, error) {
	var rep NightReport
	fi, err := os.Stat(path)
	if err != nil {
		return rep, fmt.Errorf("age database: %w", err)
	}
	rep.SizeBefore = fi.Size()
	db, err := openSeeding(ctx, path)
	if err != nil {
		return rep, err
	}
	defer db.Close()
	units, err := assignedUnits(ctx, db)
	if err != nil {
		return rep, fmt.Errorf("age database %s: list units: %w", path, err)
	}
	if len(units) == 0 {
		return rep, fmt.Errorf("age database %s: no units in experiment_worker_assignments; make the database with SeedDatabase first", path)
	}
	rng := rand.New(rand.NewPCG(n.Seed, uint64(n.Number)))
	if g := orDefault(n.Growth, DefaultNightGrowth); g > 0 {
		used, err := usedSize(ctx, db)
		if err != nil {
			return rep, fmt.Errorf("age database %s: %w", path, err)
		}
		if rep.Appended, err = appendRows(ctx, db, path, units, used+int64(float64(used)*g)); err != nil {
			return rep, fmt.Errorf("age database: %w", err)
		}
	}
	counts, err := tableRows(ctx, db)
	if err != nil {
		return rep, fmt.Errorf("age database %s: count rows: %w", path, err)
	}
	if u := orDefault(n.Updates, DefaultNightUpdates); u > 0 {
		if rep.Updated, err = updateRows(ctx, db, rng, counts, u); err != nil {
			return rep, fmt.Errorf("age database %s: update rows: %w", path, err)
		}
	}
	if c := orDefault(n.DeleteChance, DefaultNightDeleteChance); c > 0 && rng.Float64() < c {
		share := n.DeleteShare
		if share <= 0 {
			share = DefaultNightDeleteShare
		}
		if rep.DeletedTable, rep.Deleted, err = deleteRange(ctx, db, rng, counts, share); err != nil {
			return rep, fmt.Errorf("age database %s: delete rows: %w", path, err)
		}
	}
	if err := settle(ctx, db, path); err != nil {
		return rep, err
	}
	if fi, err = os.Stat(path); err != nil {
		return rep, fmt.Errorf("age database: %w", err)
	}
	rep.SizeAfter = fi.Size()
	return rep, nil
}

// AgeNight applies one [Night] to the leader's database with
// [AgeDatabase], serialised with [Cluster.GrowDatabase]. Don't run it while
// an export of the leader is in progress: a real leader's writes would be
// in a WAL the export copies along, here they go straight to the main file.
func (c *Cluster) AgeNight(ctx context.Context, n Night) (NightReport, error) {
	c.dbMu.Lock()
	defer c.dbMu.Unlock()
	return AgeDatabase(ctx, c.DatabasePath(), n)
}

func orDefault(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

func assignedUnits(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT DISTINCT pioreactor_unit FROM experiment_worker_assignments")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var units []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	return units, rows.Err()
}

// tableRows returns the largest rowid of each of agedTables: rowids run
// from 1 to it, with gaps where ranges were deleted.
func tableRows(ctx context.Context, db *sql.DB) ([]int64, error) {
	counts := make([]int64, len(agedTables))
	for i, t := range agedTables {
		if err := db.QueryRowContext(ctx, "SELECT coalesce(max(rowid), 0) FROM "+t.name).Scan(&counts[i]); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// pick chooses a table with probability proportional to its rows.
func pick(rng *rand.Rand, counts []int64, total int64) int {
	r := rng.Int64N(total)
	for i, c := range counts {
		if r < c {
			return i
		}
		r -= c
	}
	return len(counts) - 1
}

// updateRows updates share of all rows, each picked uniformly at random
// among every table's rowids, in one transaction. A rowid a deleted range
// removed is drawn again, a bounded number of times.
func updateRows(ctx context.Context, db *sql.DB, rng *rand.Rand, counts []int64, share float64) (int64, error) {
	var total int64
	for _, c := range counts {
		total += c
	}
	want := int64(float64(total) * share)
	if want == 0 {
		return 0, nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	stmts := make([]*sql.Stmt, len(agedTables))
	for i, t := range agedTables {
		if stmts[i], err = tx.PrepareContext(ctx, updateSQL(t.name, t.set)); err != nil {
			return 0, err
		}
	}
	var done int64
	for try := int64(0); done < want && try < 4*want; try++ {
		i := pick(rng, counts, total)
		shift := 0.0
		if rng.Float64() < clockFixShare {
			shift = float64(1+rng.Int64N(clockFixMax.Milliseconds())) / 1000
			if rng.IntN(2) == 0 {
				shift = -shift
			}
		}
		res, err := stmts[i].ExecContext(ctx, agedTables[i].value(rng), shift, 1+rng.Int64N(counts[i]))
		if err != nil {
			return done, fmt.Errorf("%s: %w", agedTables[i].name, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, tx.Commit()
}

// deleteRange deletes a contiguous run of share of one table's rowids,
// starting somewhere in its oldest 80 %.
func deleteRange(ctx context.Context, db *sql.DB, rng *rand.Rand, counts []int64, share float64) (string, int64, error) {
	var total int64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return "", 0, nil
	}
	i := pick(rng, counts, total)
	n := max(1, int64(float64(counts[i])*share))
	from := 1 + rng.Int64N(max(1, counts[i]*8/10))
	name := agedTables[i].name
	res, err := db.ExecContext(ctx, "DELETE FROM "+name+" WHERE rowid >= ? AND rowid < ?", from, from+n)
	if err != nil {
		return name, 0, fmt.Errorf("%s: %w", name, err)
	}
	deleted, err := res.RowsAffected()
	return name, deleted, err
}
