package main

import (
	"archive/zip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// cmdDemo runs piosnap end to end against a simulated cluster: the first
// thing a new user runs. It needs no configuration and touches nothing
// outside its temporary directory.
func cmdDemo(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("demo", "[--dir DIR] [--workers N] [--db-size MiB]")
	dir := fs.String("dir", "", "keep the demo's cluster, repository and config in DIR (default: a temporary directory, removed afterwards)")
	workers := fs.Int("workers", 2, "number of simulated workers besides the leader")
	dbMiB := fs.Int("db-size", 16, "size of the leader's SQLite database in MiB")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	out := a.env.Stdout
	a.log = newLogger(a.env.Stderr, a.env.Getenv, "auto", "warn") // the demo narrates itself
	root := *dir
	if root == "" {
		tmp, err := os.MkdirTemp("", "piosnap-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		root = tmp
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, "\n== "+format+"\n", args...) }

	say("Starting a simulated Pioreactor cluster (leader1 + %d workers, %d MiB database)", *workers, *dbMiB)
	var names []string
	for i := 1; i <= *workers; i++ {
		names = append(names, fmt.Sprintf("worker%d", i))
	}
	cluster, err := simulator.Start(ctx, simulator.Options{Dir: filepath.Join(root, "cluster"), Workers: names, DBSize: int64(*dbMiB) << 20})
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	defer cluster.Close()
	fmt.Fprintf(out, "leader at %s\n", cluster.LeaderURL())

	repoDir := filepath.Join(root, "repo")
	var addr strings.Builder
	for unit, ad := range cluster.Addresses() {
		fmt.Fprintf(&addr, "%s = %q\n", unit, ad)
	}
	cfgText := fmt.Sprintf(`# Written by piosnap demo.
zone = "UTC"
schedule = "@daily"
lock_wait = "10s"

[pioreactor]
leader = %q
pull = "broadcast"

[pioreactor.addresses]
%s
[[store]]
name = "local"
type = "local"
path = %q

[store.retention]
keep_daily = 7
keep_weekly = 4
`, cluster.LeaderURL(), addr.String(), repoDir)
	cellsCfg, err := demoCellsConfig(root)
	if err != nil {
		return err
	}
	cfgText += cellsCfg
	cfgPath := filepath.Join(root, "piosnap.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return err
	}
	cfg, err := config.Parse(cfgText)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	a.cfg, a.configPath = cfg, cfgPath
	b, err := local.Create(repoDir)
	if err != nil {
		return err
	}
	if _, err := store.Init(ctx, b); err != nil {
		return err
	}
	fmt.Fprintf(out, "repository at %s, config at %s\n", repoDir, cfgPath)

	say("First backup: every unit's ~/.pioreactor is pulled, split per host and stored; the Cells folder and its database dump too")
	if err := cmdBackup(ctx, a, nil); err != nil {
		return err
	}

	say("Changing the cluster: a new calibration on worker1, 1 MiB more rows in the leader's database")
	if len(names) > 0 {
		if err := cluster.Unit(names[0]).WriteCalibration("od90", "demo", "curve_data_: [0.1, 0.5, 0.02]\n"); err != nil {
			return err
		}
	}
	if err := cluster.GrowDatabase(ctx, 1<<20); err != nil {
		return err
	}

	say("Second backup: only the new data is stored (see 'new')")
	if err := cmdBackup(ctx, a, nil); err != nil {
		return err
	}

	say("The versions now in the repository")
	if err := cmdList(ctx, a, nil); err != nil {
		return err
	}

	host := "leader1"
	if len(names) > 0 {
		host = names[0]
	}
	zipPath := filepath.Join(root, host+"_dot_pioreactor.zip")
	say("Exporting %s's latest version as a ZIP Pioreactor's import accepts", host)
	if err := cmdExport(ctx, a, []string{"--host", host, "--at", "latest", "-o", zipPath}); err != nil {
		return err
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("reopen export: %w", err)
	}
	fmt.Fprintf(out, "%s holds %d entries, for example:\n", filepath.Base(zipPath), len(zr.File))
	for i, f := range zr.File {
		if i == 6 {
			fmt.Fprintln(out, "  …")
			break
		}
		fmt.Fprintf(out, "  %s\n", f.Name)
	}
	zr.Close()

	say("Verifying the repository (every chunk read back and its hash checked)")
	if err := cmdCheck(ctx, a, []string{"--read-data"}); err != nil {
		return err
	}

	if err := demoCells(ctx, a, root, say); err != nil {
		return err
	}

	say("What happened")
	fmt.Fprintf(out, `Two backups of a %d-unit cluster were taken; the second stored only what changed.
Each version can be listed, exported as a ZIP, or restored onto its unit with
"piosnap restore --host %s --at 2026-05-01".

Next steps on your leader:
  piosnap config example > /etc/piosnap/piosnap.toml   # then edit it
  piosnap init && piosnap backup && piosnap list
See README.md for the daemon, retention, S3 off-site copies and restores.
`, len(names)+1, host)
	if *dir != "" {
		fmt.Fprintf(out, "\nThe demo's files are kept in %s (use -c %s with other commands while a simulator runs).\n", root, cfgPath)
	}
	return nil
}
