package simulator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// tickInterval is the simulated time between two readings of one unit.
const tickInterval = 5 * time.Second

// seedStart is the simulated start of the demo experiment.
var seedStart = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

const experiment = "demo-chemostat-2026"

const schema = `
CREATE TABLE IF NOT EXISTS experiments (experiment TEXT PRIMARY KEY, created_at TEXT NOT NULL, description TEXT, media_used TEXT, organism_used TEXT, delta_hours REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS workers (pioreactor_unit TEXT PRIMARY KEY, added_at TEXT NOT NULL, is_active INTEGER NOT NULL DEFAULT 1, model_name TEXT, model_version TEXT);
CREATE TABLE IF NOT EXISTS experiment_worker_assignments (pioreactor_unit TEXT NOT NULL, experiment TEXT NOT NULL, assigned_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS od_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, od_reading REAL NOT NULL, angle INTEGER NOT NULL, channel INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS od_readings_filtered (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, normalized_od_reading REAL NOT NULL);
CREATE TABLE IF NOT EXISTS temperature_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, temperature_c REAL NOT NULL);
CREATE TABLE IF NOT EXISTS logs (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, message TEXT NOT NULL, source TEXT NOT NULL, level TEXT, task TEXT);
`

// SeedDatabase creates (or extends) a Pioreactor-like leader database at
// path: the experiments, workers and readings tables with rows appended as
// if every unit reported every five seconds, until the file holds at least
// size bytes. Rows are inserted in large transactions with journaling off;
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
	return fill(ctx, db, path, units, size)
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
	return fill(ctx, db, path, c.order, fi.Size()+n)
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
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM experiments").Scan(&n); err != nil || n > 0 {
		return err
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, 0)", experiment,
		utcTimestamp(seedStart), "Chemostat at D=0.2/h, growth curves for the strain panel.", "M9 + 0.4% glucose", "E. coli MG1655"); err != nil {
		return err
	}
	for _, w := range append([]string{leader}, workers...) {
		if w != leader {
			if _, err := db.ExecContext(ctx, "INSERT INTO workers VALUES (?, ?, 1, 'pioreactor_40ml', '1.5')", w, workerAddedAt); err != nil {
				return err
			}
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO experiment_worker_assignments VALUES (?, ?, ?)", w, experiment, utcTimestamp(seedStart)); err != nil {
			return err
		}
	}
	return nil
}

// batchBytes is roughly how much data one transaction appends.
const batchBytes = 32 << 20

func fill(ctx context.Context, db *sql.DB, path string, units []string, target int64) error {
	last, err := lastTick(ctx, db)
	if err != nil {
		return fmt.Errorf("read last reading of %s: %w", path, err)
	}
	g := newRowGen(last, units)
	for {
		size, err := fileSize(ctx, db)
		if err != nil {
			return fmt.Errorf("size of %s: %w", path, err)
		}
		if size >= target {
			break
		}
		if err := g.batch(ctx, db, min(target-size, batchBytes)); err != nil {
			return fmt.Errorf("append rows to %s: %w", path, err)
		}
	}
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		return fmt.Errorf("switch %s to WAL: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return nil
}

func fileSize(ctx context.Context, db *sql.DB) (int64, error) {
	var pages, pageSize int64
	if err := db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return 0, err
	}
	if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return 0, err
	}
	return pages * pageSize, nil
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

// rowGen produces plausible readings: a logistic OD curve with noise,
// temperature around 30 °C, and chatty DEBUG/INFO logs.
type rowGen struct {
	t     time.Time
	units []string
	rng   *rand.Rand
	sb    strings.Builder
}

func newRowGen(last time.Time, units []string) *rowGen {
	return &rowGen{t: last, units: units, rng: rand.New(rand.NewPCG(uint64(last.Unix()), 7))}
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
		hours := g.t.Sub(seedStart).Hours()
		for _, u := range g.units {
			v := 0.05 + 1.2/(1+math.Exp(-0.4*(hours-12))) + g.rng.NormFloat64()*0.003
			if _, err := od.ExecContext(ctx, experiment, u, ts, v, 90, 2); err != nil {
				return err
			}
			if _, err := od.ExecContext(ctx, experiment, u, ts, v*0.62, 135, 1); err != nil {
				return err
			}
			if _, err := odf.ExecContext(ctx, experiment, u, ts, v/0.05); err != nil {
				return err
			}
			if _, err := temp.ExecContext(ctx, experiment, u, ts, 30+g.rng.NormFloat64()*0.05); err != nil {
				return err
			}
			msg := g.logMessage(u, v)
			if _, err := logs.ExecContext(ctx, experiment, u, ts, msg, "app", "DEBUG", "od_reading"); err != nil {
				return err
			}
			written += int64(len(msg)) + 4*80
		}
	}
	return tx.Commit()
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
