package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/piosnap/piosnap/config"
)

func cmdConfig(ctx context.Context, a *app, args []string) error {
	if len(args) != 1 || (args[0] != "check" && args[0] != "example") {
		return usageErrorf("usage: piosnap config check | piosnap config example")
	}
	if args[0] == "example" {
		_, err := io.WriteString(a.env.Stdout, config.Example)
		return err
	}
	cfg, err := config.Load(a.configPath)
	if err != nil {
		return withCode(exitUsage, err)
	}
	fmt.Fprintf(a.env.Stdout, "%s: ok (%d stores, schedule %q in %s, leader %s)\n",
		a.configPath, len(cfg.Stores), cfg.Schedule, cfg.ZoneName(), cfg.Pioreactor.Leader)
	return nil
}

func cmdVersion(ctx context.Context, a *app, args []string) error {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintf(a.env.Stdout, "piosnap %s\n", v)
	return nil
}
