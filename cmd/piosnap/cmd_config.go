package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/store/s3"
)

// version is piosnap's version. Release builds set it with
// -ldflags '-X main.version=…' (see the Makefile); otherwise it comes from
// the module's build information.
var version = ""

// piosnapVersion returns the version piosnap reports and logs.
func piosnapVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func cmdConfig(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("config", "check | example")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "check" && pos[0] != "example") {
		return usageErrorf("usage: piosnap config check | piosnap config example")
	}
	if pos[0] == "example" {
		_, err := io.WriteString(a.env.Stdout, config.Example)
		return err
	}
	cfg, err := config.Load(a.configPath)
	if err != nil {
		// The error names the file already; no second "config" prefix.
		fmt.Fprintf(a.env.Stderr, "piosnap: %v\n", err)
		return withCode(exitUsage, errors.New(""))
	}
	fmt.Fprintf(a.env.Stdout, "%s: ok (%s)\n", a.configPath, configSummary(cfg))
	if w := a.machine.leaderDiskWarning(cfg); w != "" {
		fmt.Fprintf(a.env.Stdout, "warning: %s\n", w)
	}
	for _, w := range a.sourceWarnings(cfg) {
		fmt.Fprintf(a.env.Stdout, "warning: %s\n", w)
	}
	for _, s := range cfg.Stores {
		if s.Type != "s3" || s.CredentialsFile == "" {
			continue
		}
		// The same check as every run makes; the keys themselves may come
		// from the service's environment, so only the file is judged here.
		if _, warning, err := s3.LoadCredentials(a.env.Getenv, s.CredentialsFile); err == nil && warning != "" {
			fmt.Fprintf(a.env.Stdout, "warning: store %q: %s\n", s.Name, warning)
		}
	}
	return nil
}

func cmdVersion(ctx context.Context, a *app, args []string) error {
	fmt.Fprintf(a.env.Stdout, "piosnap %s\n", piosnapVersion())
	return nil
}

// configSummary says in a few words what cfg backs up, where and when: the
// number of stores, the schedule and zone, the cluster's leader (or that
// there is no cluster) and the sources.
func configSummary(cfg *config.Config) string {
	stores := count(len(cfg.Stores), "store")
	what := "no Pioreactor cluster"
	if cfg.PioreactorEnabled() {
		what = "leader " + cfg.Pioreactor.Leader
	}
	if len(cfg.Sources) > 0 {
		names := make([]string, len(cfg.Sources))
		for i, src := range cfg.Sources {
			names[i] = src.Name
		}
		what += ", sources " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, schedule %q in %s, %s", stores, cfg.Schedule, cfg.ZoneName(), what)
}
