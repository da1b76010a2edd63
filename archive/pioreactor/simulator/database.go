package simulator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// tickInterval is the simulated time between two readings of one unit.
const tickInterval = 5 * time.Second

// seedStart is the simulated time of the first reading.
var seedStart = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

const schema = `
CREATE TABLE IF NOT EXISTS experiments (experiment TEXT PRIMARY KEY, created_at TEXT NOT NULL, description TEXT, media_used TEXT, organism_used TEXT, delta_hours REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS workers (pioreactor_unit TEXT PRIMARY KEY, added_at TEXT NOT NULL, is_active INTEGER NOT NULL DEFAULT 1, model_name TEXT, model_version TEXT);
CREATE TABLE IF NOT EXISTS experiment_worker_assignments (pioreactor_unit TEXT NOT NULL, experiment TEXT NOT NULL, assigned_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS od_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, od_reading REAL NOT NULL, angle INTEGER NOT NULL, channel INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS od_readings_filtered (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, normalized_od_reading REAL NOT NULL);
CREATE TABLE IF NOT EXISTS temperature_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, temperature_c REAL NOT NULL);
CREATE TABLE IF NOT EXISTS logs (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, message TEXT NOT NULL, source TEXT NOT NULL, level TEXT, task TEXT);
CREATE INDEX IF NOT EXISTS od_readings_ix ON od_readings (experiment, pioreactor_unit, channel, timestamp);
CREATE INDEX IF NOT EXISTS od_readings_filtered_ix ON od_readings_filtered (experiment, pioreactor_unit, timestamp);
CREATE INDEX IF NOT EXISTS temperature_readings_ix ON temperature_readings (experiment, pioreactor_unit, timestamp);
CREATE INDEX IF NOT EXISTS logs_exp_timestamp_ix ON logs (experiment, timestamp DESC);
CREATE INDEX IF NOT EXISTS logs_exp_level_timestamp_ix ON logs (experiment, level, timestamp DESC);
CREATE INDEX IF NOT EXISTS logs_unit_timestamp_ix ON logs (pioreactor_unit, timestamp DESC);
CREATE INDEX IF NOT EXISTS logs_level_timestamp_ix ON logs (level, timestamp DESC);
`

// SeedDatabase creates (or extends) a Pioreactor-like leader database at
// path: the experiments, workers and readings tables, indexed the way
// Pioreactor indexes them, with rows appended as if every unit reported
// every five seconds, until the file holds at least size bytes. Units run
// several experiments side by side, each unit switching to a new one every
// 30 simulated hours (see [experimentOf]). Rows are inserted in large transactions with journaling off;
// the file is left in WAL mode, checkpointed, so the main file holds all data.
func SeedDatabase(ctx context.Context, path, leader string, workers []string, size int64) error {
	db, err := openSeeding(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema in %s: %w", path, err)
	}
	units := append([]string{leader}, workers...)
	if err := seedStatic(ctx, db, leader, workers); err != nil {
		return fmt.Errorf("seed tables of %s: %w", path, err)
	}
	_, err = fill(ctx, db, path, units, size)
	return err
}

// GrowDatabase appends readings and logs to the leader's database until its
// file is at least n bytes larger, so it grows at the end as real appends do.
func (c *Cluster) GrowDatabase(ctx context.Context, n int64) error {
	c.dbMu.Lock()
	defer c.dbMu.Unlock()
	path := c.DatabasePath()
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("grow database: %w", err)
	}
	db, err := openSeeding(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	used, err := usedSize(ctx, db)
	if err != nil {
		return fmt.Errorf("size of %s: %w", path, err)
	}
	_, err = fill(ctx, db, path, c.order, max(used, fi.Size())+n)
	return err
}

// DatabasePath is the leader's storage/pioreactor.sqlite.
func (c *Cluster) DatabasePath() string {
	return c.Leader().dir + "/storage/pioreactor.sqlite"
}

func openSeeding(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	for _, p := range []string{"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA cache_size=-65536", "PRAGMA temp_store=MEMORY"} {
		if _, err := db.ExecContext(ctx, p); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s on %s: %w", p, path, err)
		}
	}
	return db, nil
}

func seedStatic(ctx context.Context, db *sql.DB, leader string, workers []string) error {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM workers").Scan(&n); err != nil || n > 0 {
		return err
	}
	for _, w := range workers {
		if w == leader {
			continue
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO workers VALUES (?, ?, 1, 'pioreactor_40ml', '1.5')", w, workerAddedAt); err != nil {
			return err
		}
	}
	return nil
}

// batchBytes is roughly how much data one transaction appends.
const batchBytes = 32 << 20

// fill appends readings until the pages in use (the file less its free
// pages) take at least target bytes, then leaves the file in WAL mode,
// checkpointed. It returns the number of rows appended.
func fill(ctx context.Context, db *sql.DB, path string, units []string, target int64) (int64, error) {
	rows, err := appendRows(ctx, db, path, units, target)
	if err != nil {
		return rows, err
	}
	return rows, settle(ctx, db, path)
}

func appendRows(ctx context.Context, db *sql.DB, path string, units []string, target int64) (int64, error) {
	last, err := lastTick(ctx, db)
	if err != nil {
		return 0, fmt.Errorf("read last reading of %s: %w", path, err)
	}
	g := newRowGen(last, units)
	for {
		size, err := usedSize(ctx, db)
		if err != nil {
			return g.rows, fmt.Errorf("size of %s: %w", path, err)
		}
		if size >= target {
			return g.rows, nil
		}
		if err := g.batch(ctx, db, min(target-size, batchBytes)); err != nil {
			return g.rows, fmt.Errorf("append rows to %s: %w", path, err)
		}
	}
}

// settle switches the database to WAL mode, as Pioreactor runs it, and
// checkpoints it so that the main file holds all data.
func settle(ctx context.Context, db *sql.DB, path string) error {
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		return fmt.Errorf("switch %s to WAL: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return nil
}

// usedSize is the size of the database's pages that hold data: the file
// less its free pages.
func usedSize(ctx context.Context, db *sql.DB) (int64, error) {
	var pages, free, pageSize int64
	if err := db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return 0, err
	}
	if err := db.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return 0, err
	}
	if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return 0, err
	}
	return (pages - free) * pageSize, nil
}

func lastTick(ctx context.Context, db *sql.DB) (time.Time, error) {
	var ts string
	err := db.QueryRowContext(ctx, "SELECT timestamp FROM od_readings ORDER BY rowid DESC LIMIT 1").Scan(&ts)
	if errors.Is(err, sql.ErrNoRows) {
		return seedStart, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse("2006-01-02T15:04:05.000Z", ts)
}

// Experiments: units are split into experimentGroups groups (by their
// position in name order); each group runs one experiment at a time and
// starts the next every experimentPeriod, the groups staggered, so several
// experiments are always running. Names start with an organism, so a new
// experiment sorts anywhere among the old ones in an index on experiment.
const (
	experimentPeriod = 30 * time.Hour
	experimentGroups = 3
)

var (
	organisms = []string{"ecoli-mg1655", "yeast-by4741", "pputida-kt2440", "bsubtilis-168", "vnatriegens", "synechocystis"}
	protocols = []string{"chemostat", "turbidostat", "growth-curve", "morbidostat", "light-dark", "glucose-pulse"}
)

// experimentOf names the experiment that the unit at position i (in name
// order) runs at simulated time t, and returns when it started and ends.
func experimentOf(i int, t time.Time) (name string, start, end time.Time) {
	g := i % experimentGroups
	offset := time.Duration(g) * experimentPeriod / experimentGroups
	epoch := int64((t.Sub(seedStart) + offset) / experimentPeriod)
	start = seedStart.Add(time.Duration(epoch)*experimentPeriod - offset)
	n := uint64(epoch)*experimentGroups + uint64(g)
	h := (n + 1) * 0x9E3779B97F4A7C15 >> 40
	name = fmt.Sprintf("%s-%s-%03d", organisms[h%uint64(len(organisms))], protocols[(h/8)%uint64(len(protocols))], n)
	return name, start, start.Add(experimentPeriod)
}

// rowGen produces plausible readings: a logistic OD curve with noise,
// temperature around 30 °C, and chatty logs, mostly DEBUG.
type rowGen struct {
	t     time.Time
	units []string // sorted
	exp   []string // each unit's current experiment
	until []time.Time
	rng   *rand.Rand
	sb    strings.Builder
	rows  int64 // rows appended so far
}

func newRowGen(last time.Time, units []string) *rowGen {
	units = slices.Sorted(slices.Values(units))
	return &rowGen{t: last, units: units, exp: make([]string, len(units)), until: make([]time.Time, len(units)),
		rng: rand.New(rand.NewPCG(uint64(last.Unix()), 7))}
}

// experiment returns the experiment unit i runs now, registering it and
// the unit's assignment when the unit starts a new one.
func (g *rowGen) experiment(ctx context.Context, tx *sql.Tx, i int) (string, error) {
	if g.exp[i] != "" && g.t.Before(g.until[i]) {
		return g.exp[i], nil
	}
	name, start, end := experimentOf(i, g.t)
	org, _, _ := strings.Cut(name, "-")
	if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO experiments VALUES (?, ?, ?, 'M9 + 0.4% glucose', ?, 0)",
		name, utcTimestamp(start), "Growth of "+org+" under "+name[len(org)+1:]+".", org); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM experiment_worker_assignments WHERE pioreactor_unit = ?", g.units[i]); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO experiment_worker_assignments VALUES (?, ?, ?)", g.units[i], name, utcTimestamp(start)); err != nil {
		return "", err
	}
	g.exp[i], g.until[i] = name, end
	return name, nil
}

func (g *rowGen) batch(ctx context.Context, db *sql.DB, want int64) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	od, err := tx.PrepareContext(ctx, "INSERT INTO od_readings VALUES (?, ?, ?, ?, ?, ?)")
	if err != nil {
		return err
	}
	odf, err := tx.PrepareContext(ctx, "INSERT INTO od_readings_filtered VALUES (?, ?, ?, ?)")
	if err != nil {
		return err
	}
	temp, err := tx.PrepareContext(ctx, "INSERT INTO temperature_readings VALUES (?, ?, ?, ?)")
	if err != nil {
		return err
	}
	logs, err := tx.PrepareContext(ctx, "INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return err
	}
	var written int64
	for written < want {
		g.t = g.t.Add(tickInterval)
		ts := utcTimestamp(g.t)
		for i, u := range g.units {
			exp, err := g.experiment(ctx, tx, i)
			if err != nil {
				return err
			}
			hours := g.t.Sub(g.until[i].Add(-experimentPeriod)).Hours()
			v := 0.05 + 1.2/(1+math.Exp(-0.4*(hours-12))) + g.rng.NormFloat64()*0.003
			if _, err := od.ExecContext(ctx, exp, u, ts, v, 90, 2); err != nil {
				return err
			}
			if _, err := od.ExecContext(ctx, exp, u, ts, v*0.62, 135, 1); err != nil {
				return err
			}
			if _, err := odf.ExecContext(ctx, exp, u, ts, v/0.05); err != nil {
				return err
			}
			if _, err := temp.ExecContext(ctx, exp, u, ts, 30+g.rng.NormFloat64()*0.05); err != nil {
				return err
			}
			g.rows += 4
			written += readingsBytes
			if g.rng.IntN(logEvery) != 0 {
				continue
			}
			msg := g.logMessage(u, v)
			if _, err := logs.ExecContext(ctx, exp, u, ts, msg, "app", g.logLevel(), "od_reading"); err != nil {
				return err
			}
			g.rows++
			written += int64(len(msg)) + logOverhead
		}
	}
	return tx.Commit()
}

// A unit logs a line on one tick in logEvery, so that readings, not logs,
// hold most rows, as in a real leader's database. readingsBytes and
// logOverhead are what a tick's four readings and a log line add to the
// file besides the message, rows and index entries, measured; they err on
// the high side, and appendRows tops up what a batch falls short of.
const (
	logEvery      = 6
	readingsBytes = 4 * 150
	logOverhead   = 350
)

// logLevel picks a level as a running unit's logs show them: mostly DEBUG.
func (g *rowGen) logLevel() string {
	switch n := g.rng.IntN(400); {
	case n == 0:
		return "ERROR"
	case n < 8:
		return "WARNING"
	case n < 60:
		return "INFO"
	default:
		return "DEBUG"
	}
}

var logWords = strings.Fields(`stirring od_reading dosing_automation temperature_automation pump media waste alt_media
rpm duty_cycle target measured adc channel voltage offset gain photodiode reference led intensity
update published setting changed started stopped ready sleeping disconnected lost connection retry
chemostat turbidostat pid_morbidostat thermostat heater pwm hz volume ml seconds throughput growth_rate`)

// logMessage builds a DEBUG line of roughly 600 to 900 bytes, the kind the
// od_reading and automation jobs emit, compressible like real logs.
func (g *rowGen) logMessage(unit string, od float64) string {
	g.sb.Reset()
	fmt.Fprintf(&g.sb, "[%s] od_reading: ADC readings {'2': %.6f, '1': %.6f}; ", unit, od*0.12, od*0.07)
	n := 90 + g.rng.IntN(40)
	for i := range n {
		if i > 0 {
			g.sb.WriteByte(' ')
		}
		g.sb.WriteString(logWords[g.rng.IntN(len(logWords))])
		if g.rng.IntN(6) == 0 {
			fmt.Fprintf(&g.sb, "=%d", g.rng.IntN(5000))
		}
	}
	return g.sb.String()
}

// seedMetadataDB writes the small key-value cache every unit keeps in
// storage/local_persistent_pioreactor_metadata.sqlite.
func seedMetadataDB(ctx context.Context, path, unit string) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	stmts := []string{
		"CREATE TABLE IF NOT EXISTS active_calibrations (key TEXT PRIMARY KEY, value BLOB)",
		"CREATE TABLE IF NOT EXISTS pwm_dc (key TEXT PRIMARY KEY, value BLOB)",
		"INSERT OR REPLACE INTO active_calibrations VALUES ('od90', 'od90-cal-2026-06-12'), ('media_pump', 'media-pump-2026-05-30'), ('waste_pump', 'waste-pump-2026-05-30'), ('stirring', 'stirring-cal-2026-04-02')",
		"INSERT OR REPLACE INTO pwm_dc VALUES ('1', '0.0'), ('5', '0.0')",
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("seed %s for %s: %w", path, unit, err)
		}
	}
	return nil
}
