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
	"strings"
	"syscall"

	"github.com/mattn/go-isatty"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler/web"
	"github.com/piosnap/piosnap/store"
)

// Exit codes. They are part of piosnap's interface (README.md, "Exit codes").
const (
	exitOK          = 0   // everything succeeded
	exitFailure     = 1   // the command failed; nothing or not everything was done
	exitUsage       = 2   // wrong command line or configuration
	exitPartial     = 3   // some hosts or stores failed, the others succeeded
	exitDamaged     = 4   // check found damage
	exitLocked      = 5   // another piosnap holds the repository
	exitInterrupted = 130 // stopped by a signal
)

// Env is what a command may touch of the process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// exitError carries an exit code with an error message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

func usageErrorf(format string, a ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, a...))
}

// app holds what every command needs.
type app struct {
	env        Env
	configPath string
	cfg        *config.Config
	log        *slog.Logger
	cmd        *command // the command being run
	help       bool     // the command line asks for help
	machine    machine  // the computer piosnap runs on
	// restoreEvents, when set, receives a restore's steps (the daemon's
	// web page sets it).
	restoreEvents func(web.Event)
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, a *app, args []string) error
	// noConfig: the command works without a configuration file.
	noConfig bool
}

func commands() []command {
	return []command{
		{name: "demo", summary: "try piosnap on a simulated cluster with a temporary repository", run: cmdDemo, noConfig: true},
		{name: "init", summary: "create the configured repositories (and, with --create-bucket, S3 buckets)", run: cmdInit},
		{name: "backup", summary: "take one backup of the cluster (and of every [[source]]) now", run: cmdBackup},
		{name: "list", summary: "list versions, newest first", run: cmdList},
		{name: "export", summary: "write a version as a ZIP that Pioreactor's import accepts (a tar for a directory source)", run: cmdExport},
		{name: "import", summary: "add a ZIP exported from the Pioreactor UI as a version", run: cmdImport},
		{name: "restore", summary: "restore a version onto its unit, or a directory source's folders and database", run: cmdRestore},
		{name: "check", summary: "verify the repositories (--read-data reads every chunk)", run: cmdCheck},
		{name: "repair", summary: "remove damaged packs: salvage their sound blobs, fetch lost ones --from another store", run: cmdRepair},
		{name: "forget", summary: "apply retention: delete old versions and the data only they used", run: cmdForget},
		{name: "copy", summary: "copy versions from one store to another", run: cmdCopy},
		{name: "run", summary: "run as a daemon, taking backups on the schedule", run: cmdRun},
		{name: "web", summary: "`web passwd` sets the password of the daemon's web page", run: cmdWeb},
		{name: "status", summary: "show the last runs, the next run and how fresh each host is", run: cmdStatus},
		{name: "config", summary: "`config check` validates the configuration; `config example` prints a commented one", run: cmdConfig, noConfig: true},
		{name: "version", summary: "print piosnap's version", run: cmdVersion, noConfig: true},
	}
}

// Main runs piosnap with args (without the program name) and returns the
// exit code.
//
// Help is consistent everywhere: asked for (`piosnap help`, `-h`, `--help`,
// `piosnap help COMMAND`, `piosnap COMMAND -h`), it goes to standard output
// with exit code 0 and never needs a configuration; forced by a wrong command
// line, it goes to standard error with exit code 2.
func Main(ctx context.Context, args []string, env Env) int {
	a := &app{env: env, machine: thisMachine()}
	fs := flag.NewFlagSet("piosnap", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.StringVar(&a.configPath, "c", "", "")
	showVersion := fs.Bool("version", false, "")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(env.Stdout)
			return exitOK
		}
		printUsage(env.Stderr)
		return exitUsage
	}
	rest := fs.Args()
	if *showVersion {
		rest = []string{"version"}
	}
	if len(rest) == 0 {
		printUsage(env.Stderr)
		return exitUsage
	}
	if rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help" {
		if len(rest) < 2 {
			printUsage(env.Stdout)
			return exitOK
		}
		rest = []string{rest[1], "-h"} // `piosnap help restore`
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == rest[0] {
			cmd = &c
			break
		}
	}
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "piosnap: unknown command %q: run `piosnap help` for the list\n", rest[0])
		return exitUsage
	}
	a.cmd = cmd
	help, cfgFlag := scanArgs(rest[1:])
	a.help = help
	if cfgFlag != "" {
		a.configPath = cfgFlag
	}
	if a.configPath == "" {
		a.configPath = env.Getenv("PIOSNAP_CONFIG")
	}
	if a.configPath == "" {
		a.configPath = config.DefaultPath
	}
	a.log = newLogger(env.Stderr, env.Getenv, "auto", "info")
	if !cmd.noConfig && !help {
		cfg, err := config.Load(a.configPath)
		if err != nil {
			fmt.Fprintf(env.Stderr, "piosnap: %v\n", err)
			return exitUsage
		}
		a.cfg = cfg
		a.log = newLogger(env.Stderr, env.Getenv, cfg.Log.Format, cfg.Log.Level)
	}
	if cmd.name != "run" {
		// The daemon handles its own signals; every other command stops at
		// the first one, leaving nothing half-written visible.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	err := cmd.run(ctx, a, rest[1:])
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case ctx.Err() != nil:
		code = exitInterrupted
		err = errors.New("interrupted: nothing partial was made visible")
	case errors.Is(err, store.ErrLocked):
		code = exitLocked
	}
	if err.Error() != "" {
		fmt.Fprintf(env.Stderr, "piosnap %s: %v\n", cmd.name, err)
	}
	return code
}

// scanArgs looks through a command's arguments, before they are parsed, for
// a request for help and for -c (which may follow the command:
// `piosnap list -c x.toml`). Arguments after "--" are not flags.
func scanArgs(args []string) (help bool, configPath string) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return help, configPath
		case arg == "-h" || arg == "-help" || arg == "--help" || arg == "--h":
			help = true
		case arg == "-c" || arg == "--c":
			if i+1 < len(args) {
				configPath = args[i+1]
				i++
			}
		case strings.HasPrefix(arg, "-c=") || strings.HasPrefix(arg, "--c="):
			configPath = arg[strings.Index(arg, "=")+1:]
		}
	}
	return help, configPath
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "piosnap keeps deduplicated snapshots of a Pioreactor cluster and restores them.\n\n")
	fmt.Fprintf(w, "Usage: piosnap [-c CONFIG] COMMAND [flags]\n       piosnap help COMMAND | piosnap --version\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nThe configuration is read from -c (before or after the command), else $PIOSNAP_CONFIG,\nelse %s.\n", config.DefaultPath)
	fmt.Fprintf(w, "Run `piosnap COMMAND -h` for a command's flags. New here? Run `piosnap demo`.\n")
}

// newFlags returns a flag set for a subcommand. Commands that read the
// configuration accept -c among their flags too. Its usage goes to standard
// output when help was asked for, else (a wrong command line) to standard
// error.
func (a *app) newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("piosnap "+name, flag.ContinueOnError)
	fs.SetOutput(a.env.Stderr)
	if a.cmd == nil || !a.cmd.noConfig || a.cmd.name == "config" {
		fs.StringVar(&a.configPath, "c", a.configPath, "configuration file (default $PIOSNAP_CONFIG, else "+config.DefaultPath+")")
	}
	fs.Usage = func() {
		w := a.env.Stderr
		if a.help {
			w = a.env.Stdout
		}
		fmt.Fprintf(w, "Usage: %s\n", strings.TrimSpace("piosnap "+name+" "+usage))
		printFlags(w, fs)
	}
	return fs
}

// printFlags lists fs's flags as `--name ARG` and their descriptions. Unlike
// flag.PrintDefaults it takes no argument name from backquotes in a
// description, which may quote a command (`piosnap list`).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		arg, _ := flag.UnquoteUsage(&flag.Flag{Value: f.Value})
		if len(f.Name) > 1 {
			fmt.Fprintf(&b, "  --%s", f.Name)
		} else {
			fmt.Fprintf(&b, "  -%s", f.Name)
		}
		if arg != "" {
			fmt.Fprintf(&b, " %s", arg)
		}
		fmt.Fprintf(&b, "\n    \t%s", strings.ReplaceAll(f.Usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.Name != "c" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteByte('\n')
	})
	if b.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", b.String())
	}
}

// parseFlags parses args, allowing flags after positional arguments, and
// turns a parse error into a usage error.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, withCode(exitUsage, errors.New(""))
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
