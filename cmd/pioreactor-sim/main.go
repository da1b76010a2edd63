// Command pioreactor-sim runs a simulated Pioreactor cluster on loopback:
// one leader and N-1 workers, each an HTTP server on its own 127.0.0.1 port
// serving a seeded directory as its ~/.pioreactor, with the export/import
// API of Pioreactor 26.7.2. It prints the addresses and serves until
// interrupted.
//
// Usage:
//
//	pioreactor-sim --units 4 --db-size 200MiB
//	pioreactor-sim --db-size 300MiB --dir /tmp/sim --keep --age-nights 30
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pioreactor-sim:", err)
		os.Exit(1)
	}
}

// config holds the parsed command line.
type config struct {
	opts     simulator.Options
	units    int
	keep     bool
	dbSize   string
	tmpSize  string
	auth     string
	logLevel string
	nights   int
	seed     uint64
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("pioreactor-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: pioreactor-sim [flags]

Runs a simulated Pioreactor cluster (leader + workers) on 127.0.0.1, each unit
its own HTTP server serving a seeded ~/.pioreactor directory with the
26.7.2 export/import API. Prints the unit addresses, serves until Ctrl-C.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.opts.Dir, "dir", "", "root directory; each unit gets <dir>/<name>/.pioreactor (default: a new temporary directory, removed on exit unless --keep)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary root directory on exit")
	fs.IntVar(&cfg.units, "units", 4, "number of units INCLUDING the leader: 4 means the leader plus 3 workers (worker1..worker3)")
	fs.StringVar(&cfg.opts.Leader, "leader", simulator.DefaultLeader, "leader hostname")
	fs.StringVar(&cfg.dbSize, "db-size", "2MiB", "initial size of the leader's storage/pioreactor.sqlite, e.g. 500KiB, 200MiB, 2GiB, 1GB or plain bytes")
	fs.StringVar(&cfg.tmpSize, "tmp-size", "0", "capacity of each unit's /tmp, a tmpfs in RAM on current images (half the RAM by default, e.g. 1GiB on a 2 GB Pi); uploads, extractions and the import's copy of ~/.pioreactor that do not fit fail as on a real unit; 0 means unlimited")
	fs.StringVar(&cfg.opts.AppVersion, "app-version", simulator.DefaultAppVersion, "Pioreactor version written in export metadata")
	fs.DurationVar(&cfg.opts.ExportTimeout, "export-timeout", simulator.DefaultExportTimeout, "leader's overall cap on a fan-out export (answered with 500 when exceeded)")
	fs.DurationVar(&cfg.opts.ImportTimeout, "import-timeout", simulator.DefaultImportTimeout, "leader's timeout when it forwards an import to a unit")
	fs.DurationVar(&cfg.opts.UnitTimeout, "unit-timeout", simulator.DefaultUnitTimeout, "leader's per-socket timeout when it fetches a unit's archive")
	fs.DurationVar(&cfg.opts.RebootDelay, "reboot-delay", simulator.DefaultRebootDelay, "time between a successful import and the unit going down")
	fs.DurationVar(&cfg.opts.RebootDowntime, "reboot-downtime", simulator.DefaultRebootDowntime, "how long a rebooting unit refuses connections")
	fs.StringVar(&cfg.auth, "basic-auth", "", "require HTTP Basic auth on every route, as user:password")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.IntVar(&cfg.nights, "age-nights", 0, "before serving, age the leader's database this many nights like a real one (+1 % appended, 0.1 % of rows updated in place, now and then a deleted range)")
	fs.Uint64Var(&cfg.seed, "age-seed", 1, "seed of the nights --age-nights applies; the same seed and database give the same file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q; all options are flags, see --help", fs.Args())
	}
	if cfg.nights < 0 {
		return nil, fmt.Errorf("--age-nights %d: want 0 or more nights", cfg.nights)
	}
	if cfg.units < 1 {
		return nil, fmt.Errorf("--units %d: need at least 1 (the leader)", cfg.units)
	}
	for i := 1; i < cfg.units; i++ {
		cfg.opts.Workers = append(cfg.opts.Workers, "worker"+strconv.Itoa(i))
	}
	size, err := parseSize(cfg.dbSize)
	if err != nil {
		return nil, err
	}
	cfg.opts.DBSize = size
	if cfg.tmpSize != "0" {
		if cfg.opts.TmpSize, err = parseSize(cfg.tmpSize); err != nil {
			return nil, fmt.Errorf("--tmp-size: %w", err)
		}
	}
	if cfg.auth != "" {
		user, pass, ok := strings.Cut(cfg.auth, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("--basic-auth %q: want user:password", cfg.auth)
		}
		cfg.opts.BasicAuth = &[2]string{user, pass}
	}
	return cfg, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// parseSize reads sizes like "200MiB", "1.5GiB", "10MB" or "4096".
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), 1.0
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(num), strings.ToUpper(u.suffix)) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional unit such as KiB, MiB, GiB, KB, MB or GB", s)
	}
	return int64(v * mult), nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", cfg.logLevel)
	}
	cfg.opts.Logger = slog.New(tint.NewTextHandler(stderr, &tint.Options{Level: level, TimeFormat: time.TimeOnly, NoColor: !isTerminal(stderr)}))
	if cfg.opts.Dir == "" {
		dir, err := os.MkdirTemp("", "pioreactor-sim-")
		if err != nil {
			return fmt.Errorf("create temporary root: %w", err)
		}
		cfg.opts.Dir = dir
		if !cfg.keep {
			defer os.RemoveAll(dir)
		}
	}
	start := time.Now()
	c, err := simulator.Start(ctx, cfg.opts)
	if err != nil {
		return err
	}
	defer c.Close()
	cfg.opts.Logger.Info("seeded", "dir", cfg.opts.Dir, "db_bytes", cfg.opts.DBSize, "took", time.Since(start).Round(time.Millisecond))
	for night := 1; night <= cfg.nights; night++ {
		rep, err := c.AgeNight(ctx, simulator.Night{Seed: cfg.seed, Number: night})
		if err != nil {
			return fmt.Errorf("age night %d: %w", night, err)
		}
		cfg.opts.Logger.Info("aged the leader database", "night", night, "bytes", rep.SizeAfter, "appended_rows", rep.Appended,
			"updated_rows", rep.Updated, "deleted_rows", rep.Deleted, "deleted_from", rep.DeletedTable)
	}
	fmt.Fprintf(stdout, "leader %s %s\n", cfg.opts.Leader, c.LeaderURL())
	for _, name := range c.Units() {
		u := c.Unit(name)
		fmt.Fprintf(stdout, "unit %s %s %s\n", name, u.URL(), u.Dir())
	}
	<-ctx.Done()
	cfg.opts.Logger.Info("shutting down")
	return c.Close()
}
