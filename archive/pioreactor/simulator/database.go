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

// schema is the part of Pioreactor's leader schema (its create_tables.sql
// and create_triggers.sql) that a running cluster writes to: the readings
// tables, each with the index Pioreactor gives it, the logs and their four
// indexes, and pioreactor_unit_activity_data, which triggers fill from the
// readings (one row per unit and timestamp, later readings of the same
// timestamp merged into it). Pioreactor's foreign keys to experiments are
// declared as in the original; the generator does not enable them.
const schema = `
CREATE TABLE IF NOT EXISTS experiments (experiment TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, description TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS experiments_ix ON experiments (created_at, experiment, description);
CREATE TABLE IF NOT EXISTS workers (pioreactor_unit TEXT NOT NULL, added_at TEXT NOT NULL, model_name TEXT, model_version TEXT, is_active INTEGER DEFAULT 1 NOT NULL, UNIQUE (pioreactor_unit));
CREATE TABLE IF NOT EXISTS experiment_worker_assignments (pioreactor_unit TEXT NOT NULL, experiment TEXT NOT NULL, assigned_at TEXT NOT NULL, UNIQUE (pioreactor_unit),
  FOREIGN KEY (pioreactor_unit) REFERENCES workers (pioreactor_unit) ON DELETE CASCADE, FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS experiment_worker_assignments_experiment_ix ON experiment_worker_assignments (experiment);
CREATE TABLE IF NOT EXISTS experiment_worker_assignments_history (pioreactor_unit TEXT NOT NULL, experiment TEXT NOT NULL, assigned_at TEXT NOT NULL, unassigned_at TEXT, UNIQUE (pioreactor_unit, experiment, assigned_at));
CREATE INDEX IF NOT EXISTS experiment_worker_assignments_history_ix ON experiment_worker_assignments_history (experiment, pioreactor_unit, assigned_at, unassigned_at);
CREATE TABLE IF NOT EXISTS od_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, od_reading REAL NOT NULL, angle INTEGER NOT NULL,
  channel INTEGER CHECK (channel IN (1, 2, 3, 4)) NOT NULL, FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS od_readings_ix ON od_readings (experiment, pioreactor_unit, channel, timestamp);
CREATE TABLE IF NOT EXISTS od_readings_filtered (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, normalized_od_reading REAL NOT NULL,
  FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS od_readings_filtered_ix ON od_readings_filtered (experiment, pioreactor_unit, timestamp);
CREATE TABLE IF NOT EXISTS growth_rates (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, rate REAL NOT NULL,
  FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS growth_rates_ix ON growth_rates (experiment, pioreactor_unit, timestamp);
CREATE TABLE IF NOT EXISTS temperature_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, temperature_c REAL NOT NULL,
  FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS temperature_readings_ix ON temperature_readings (experiment, pioreactor_unit, timestamp);
CREATE TABLE IF NOT EXISTS stirring_rates (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, measured_rpm REAL NOT NULL,
  FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS stirring_rates_ix ON stirring_rates (experiment, pioreactor_unit);
CREATE TABLE IF NOT EXISTS pwm_dcs (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, channel_1 REAL, channel_2 REAL, channel_3 REAL, channel_4 REAL, channel_5 REAL,
  FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS pwm_dcs_ix ON pwm_dcs (experiment, pioreactor_unit);
CREATE TABLE IF NOT EXISTS dosing_events (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, event TEXT NOT NULL, volume_change_ml REAL NOT NULL, source_of_event TEXT,
  FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS dosing_events_ix ON dosing_events (experiment, pioreactor_unit);
CREATE TABLE IF NOT EXISTS logs (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, message TEXT NOT NULL, source TEXT NOT NULL, level TEXT, task TEXT,
  FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS logs_exp_timestamp_ix ON logs (experiment, timestamp DESC);
CREATE INDEX IF NOT EXISTS logs_exp_level_timestamp_ix ON logs (experiment, level, timestamp DESC);
CREATE INDEX IF NOT EXISTS logs_unit_timestamp_ix ON logs (pioreactor_unit, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_logs_level_timestamp_desc ON logs (level, timestamp DESC);
CREATE TABLE IF NOT EXISTS pioreactor_unit_activity_data (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, od_reading REAL, od_fused REAL,
  normalized_od_reading REAL, temperature_c REAL, growth_rate REAL, measured_rpm REAL, led_a_intensity_update REAL, led_b_intensity_update REAL, led_c_intensity_update REAL,
  led_d_intensity_update REAL, add_media_ml REAL, remove_waste_ml REAL, add_alt_media_ml REAL, FOREIGN KEY (experiment) REFERENCES experiments (experiment) ON DELETE CASCADE);
CREATE UNIQUE INDEX IF NOT EXISTS pioreactor_unit_activity_data_ix ON pioreactor_unit_activity_data (experiment, pioreactor_unit, timestamp);
CREATE TRIGGER IF NOT EXISTS update_pioreactor_unit_activity_data_from_od_readings AFTER INSERT ON od_readings BEGIN
  INSERT INTO pioreactor_unit_activity_data (pioreactor_unit, experiment, timestamp, od_reading) VALUES (new.pioreactor_unit, new.experiment, new.timestamp, new.od_reading)
  ON CONFLICT (experiment, pioreactor_unit, timestamp) DO UPDATE SET od_reading = excluded.od_reading; END;
CREATE TRIGGER IF NOT EXISTS update_pioreactor_unit_activity_data_from_od_readings_filtered AFTER INSERT ON od_readings_filtered BEGIN
  INSERT INTO pioreactor_unit_activity_data (pioreactor_unit, experiment, timestamp, normalized_od_reading) VALUES (new.pioreactor_unit, new.experiment, new.timestamp, new.normalized_od_reading)
  ON CONFLICT (experiment, pioreactor_unit, timestamp) DO UPDATE SET normalized_od_reading = excluded.normalized_od_reading; END;
CREATE TRIGGER IF NOT EXISTS update_pioreactor_unit_activity_data_from_growth_rates AFTER INSERT ON growth_rates BEGIN
  INSERT INTO pioreactor_unit_activity_data (pioreactor_unit, experiment, timestamp, growth_rate) VALUES (new.pioreactor_unit, new.experiment, new.timestamp, new.rate)
  ON CONFLICT (experiment, pioreactor_unit, timestamp) DO UPDATE SET growth_rate = excluded.growth_rate; END;
CREATE TRIGGER IF NOT EXISTS update_pioreactor_unit_activity_data_from_temperature_readings AFTER INSERT ON temperature_readings BEGIN
  INSERT INTO pioreactor_unit_activity_data (pioreactor_unit, experiment, timestamp, temperature_c) VALUES (new.pioreactor_unit, new.experiment, new.timestamp, new.temperature_c)
  ON CONFLICT (experiment, pioreactor_unit, timestamp) DO UPDATE SET temperature_c = excluded.temperature_c; END;
CREATE TRIGGER IF NOT EXISTS update_pioreactor_unit_activity_data_from_stirring_rates AFTER INSERT ON stirring_rates BEGIN
  INSERT INTO pioreactor_unit_activity_data (pioreactor_unit, experiment, timestamp, measured_rpm) VALUES (new.pioreactor_unit, new.experiment, new.timestamp, new.measured_rpm)
  ON CONFLICT (experiment, pioreactor_unit, timestamp) DO UPDATE SET measured_rpm = excluded.measured_rpm; END;
CREATE TRIGGER IF NOT EXISTS update_pioreactor_unit_activity_data_from_dosing_events AFTER INSERT ON dosing_events BEGIN
  INSERT INTO pioreactor_unit_activity_data (pioreactor_unit, experiment, timestamp, add_media_ml, remove_waste_ml, add_alt_media_ml) VALUES (new.pioreactor_unit, new.experiment, new.timestamp,
    CASE WHEN new.event = 'add_media' THEN new.volume_change_ml END, CASE WHEN new.event = 'remove_waste' THEN new.volume_change_ml END, CASE WHEN new.event = 'add_alt_media' THEN new.volume_change_ml END)
  ON CONFLICT (experiment, pioreactor_unit, timestamp) DO UPDATE SET add_media_ml = coalesce(excluded.add_media_ml, pioreactor_unit_activity_data.add_media_ml),
    remove_waste_ml = coalesce(excluded.remove_waste_ml, pioreactor_unit_activity_data.remove_waste_ml), add_alt_media_ml = coalesce(excluded.add_alt_media_ml, pioreactor_unit_activity_data.add_alt_media_ml); END;
`

// SeedDatabase creates (or extends) a Pioreactor-like leader database at
// path: the tables a running cluster writes, with Pioreactor's own schema,
// indexes and triggers (see schema), and auto_vacuum set to INCREMENTAL as
// Pioreactor configures it. Rows are appended as a running unit writes
// them (see [rowGen]) until the file holds at least size bytes. The units
// run several experiments side by side, each unit switching to a new one
// every 30 simulated hours (see [experimentOf]). Rows are inserted in large transactions with journaling off;
// the file is left in WAL mode, checkpointed, so the main file holds all
// data.
func SeedDatabase(ctx context.Context, path, leader string, workers []string, size int64) error {
	db, err := openSeeding(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	// Pioreactor's sqlite_configuration.sql; auto_vacuum only takes effect
	// on a database without tables.
	if _, err := db.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		return fmt.Errorf("configure %s: %w", path, err)
	}
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
		if _, err := db.ExecContext(ctx, "INSERT INTO workers VALUES (?, ?, 'pioreactor_40ml', '1.5', 1)", w, workerAddedAt); err != nil {
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
	organisms = []string{"ecoli", "yeast", "pputida", "bsub", "vnat", "syneco"}
	protocols = []string{"chemostat", "turbidostat", "gcurve", "morbido", "lightdark", "pulse"}
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

// rowGen produces plausible readings at the rates a running Pioreactor
// writes them: every tick (5 s) an OD reading, its filtered value and a
// growth rate; every minute a temperature, a measured stirring rate and
// the PWM duty cycles; a dosing pair every 15 minutes; and now and then a
// short log line. The triggers fill pioreactor_unit_activity_data from
// them.
type rowGen struct {
	t     time.Time
	units []string // sorted
	exp   []string // each unit's current experiment
	until []time.Time
	rng   *rand.Rand
	sb    strings.Builder
	ticks int64 // ticks since the generator started
	rows  int64 // rows appended so far, the triggers' included
	stmts [len(genInserts)]*sql.Stmt
}

// genInserts are the statements a tick runs, in rowGen.stmts' order.
var genInserts = [...]string{
	"INSERT INTO od_readings VALUES (?, ?, ?, ?, ?, ?)",
	"INSERT INTO od_readings_filtered VALUES (?, ?, ?, ?)",
	"INSERT INTO growth_rates VALUES (?, ?, ?, ?)",
	"INSERT INTO temperature_readings VALUES (?, ?, ?, ?)",
	"INSERT INTO stirring_rates VALUES (?, ?, ?, ?)",
	"INSERT INTO pwm_dcs VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)",
	"INSERT INTO dosing_events VALUES (?, ?, ?, ?, ?, ?)",
	"INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)",
}

const (
	insOD = iota
	insFiltered
	insGrowth
	insTemp
	insStirring
	insPWM
	insDosing
	insLogs
)

// Ticks between a unit's rows of the slower tables.
const (
	minuteTicks = int64(time.Minute / tickInterval)
	dosingTicks = 15 * minuteTicks
	logEvery    = 9 // one tick in logEvery, at random, logs a line
)

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
	started := utcTimestamp(start)
	if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO experiments VALUES (?, ?, ?)",
		name, started, "Growth of "+org+" under "+name[len(org)+1:]+" in M9 + 0.4% glucose."); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE experiment_worker_assignments_history SET unassigned_at = ? WHERE pioreactor_unit = ? AND unassigned_at IS NULL",
		started, g.units[i]); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO experiment_worker_assignments_history VALUES (?, ?, ?, NULL)", g.units[i], name, started); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO experiment_worker_assignments VALUES (?, ?, ?)", g.units[i], name, started); err != nil {
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
	for i, q := range genInserts {
		if g.stmts[i], err = tx.PrepareContext(ctx, q); err != nil {
			return err
		}
	}
	var written int64
	for written < want {
		g.t = g.t.Add(tickInterval)
		g.ticks++
		for i := range g.units {
			n, err := g.tick(ctx, tx, i)
			if err != nil {
				return err
			}
			written += n
		}
	}
	return tx.Commit()
}

// tick appends unit i's rows of one tick and returns roughly how many
// bytes they add to the file.
func (g *rowGen) tick(ctx context.Context, tx *sql.Tx, i int) (int64, error) {
	exp, err := g.experiment(ctx, tx, i)
	if err != nil {
		return 0, err
	}
	u := g.units[i]
	ts := utcTimestamp(g.t)
	hours := g.t.Sub(g.until[i].Add(-experimentPeriod)).Hours()
	od := 0.05 + 1.2/(1+math.Exp(-0.4*(hours-12))) + g.rng.NormFloat64()*0.003
	rate := 0.4*(1-(od-0.05)/1.2) + g.rng.NormFloat64()*0.01
	exec := func(s int, args ...any) {
		if err == nil {
			_, err = g.stmts[s].ExecContext(ctx, args...)
		}
	}
	exec(insOD, exp, u, ts, od, 90, 2)
	exec(insFiltered, exp, u, ts, od/0.05)
	exec(insGrowth, exp, u, ts, rate)
	g.rows += 4 // three readings and their activity row
	written := int64(tickBytes)
	// The slower jobs run on their own clocks: their timestamps fall
	// between ticks and get rows of their own in the activity data.
	if phase := (g.ticks + int64(i)*7) % minuteTicks; phase == 0 {
		at := utcTimestamp(g.t.Add(1700 * time.Millisecond))
		exec(insTemp, exp, u, at, 30+g.rng.NormFloat64()*0.05)
		at = utcTimestamp(g.t.Add(3100 * time.Millisecond))
		exec(insStirring, exp, u, at, 500+g.rng.NormFloat64()*4)
		exec(insPWM, exp, u, at, 0, 0, 22+g.rng.NormFloat64(), 38+g.rng.NormFloat64()*2)
		g.rows += 5
		written += 5 * rowBytes
	}
	if (g.ticks+int64(i)*53)%dosingTicks == 0 {
		at := utcTimestamp(g.t.Add(2300 * time.Millisecond))
		exec(insDosing, exp, u, at, "remove_waste", 0.75, "chemostat")
		exec(insDosing, exp, u, at, "add_media", 0.5, "chemostat")
		g.rows += 3
		written += 3 * rowBytes
	}
	if g.rng.IntN(logEvery) == 0 {
		msg := g.logMessage(od)
		exec(insLogs, exp, u, ts, msg, "app", g.logLevel(), g.logTask())
		g.rows++
		written += int64(len(msg)) + logOverhead
	}
	return written, err
}

// tickBytes, rowBytes and logOverhead are what a tick's readings, a row of
// the slower tables and a log line (besides its message) add to the file
// with their index entries and activity rows, measured; they err on the
// high side, and appendRows tops up what a batch falls short of.
const (
	tickBytes   = 600
	rowBytes    = 160
	logOverhead = 400
)

// logLevel picks a level as a running unit's logs show them.
func (g *rowGen) logLevel() string {
	switch n := g.rng.IntN(400); {
	case n == 0:
		return "ERROR"
	case n < 12:
		return "WARNING"
	case n < 160:
		return "INFO"
	default:
		return "DEBUG"
	}
}

var logTasks = []string{"od_reading", "stirring", "dosing_automation", "temperature_automation", "growth_rate_calculating", "monitor"}

func (g *rowGen) logTask() string { return logTasks[g.rng.IntN(len(logTasks))] }

var logWords = strings.Fields(`stirring od_reading dosing_automation temperature_automation pump media waste alt_media
rpm duty_cycle target measured adc channel voltage offset gain photodiode reference led intensity
update published setting changed started stopped ready sleeping disconnected lost connection retry
chemostat turbidostat pid_morbidostat thermostat heater pwm hz volume ml seconds throughput growth_rate`)

// logMessage builds a line of roughly 60 to 250 bytes, the kind the jobs
// publish to the logs topic.
func (g *rowGen) logMessage(od float64) string {
	g.sb.Reset()
	switch g.rng.IntN(3) {
	case 0:
		fmt.Fprintf(&g.sb, "ADC readings {'2': %.6f, '1': %.6f}", od*0.12, od*0.07)
	case 1:
		fmt.Fprintf(&g.sb, "Updated target_rpm from %d to %d.", 400+g.rng.IntN(300), 400+g.rng.IntN(300))
	default:
		fmt.Fprintf(&g.sb, "Calculated duty cycle %.2f%% for %.1f ml.", g.rng.Float64()*100, g.rng.Float64())
	}
	for range g.rng.IntN(24) {
		g.sb.WriteByte(' ')
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
