// Package dbdump dumps a database to a stream and loads such a dump back,
// with the database's own client programs: mariadb-dump or mysqldump,
// pg_dump, or any pair of commands.
//
// Passwords never appear on a command line. MariaDB and MySQL read them
// from an option file named with --defaults-extra-file (the file's path is
// on the command line, not its content); PostgreSQL from a pgpass file named
// by $PGPASSFILE. Either file may be a systemd credential, which systemd
// keeps readable by the service only. MYSQL_PWD is not used: although Linux
// shows a process's environment only to its owner and root, it is inherited
// by every child process and deprecated by MySQL.
package dbdump

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/piosnap/piosnap/archive/hooks"
)

// Engines.
const (
	MariaDB  = "mariadb"
	MySQL    = "mysql"
	Postgres = "postgres"
	Command  = "command"
)

// Options describe the database and how to reach it.
type Options struct {
	// Engine is MariaDB, MySQL, Postgres or Command.
	Engine string
	// Name is the database.
	Name string
	// OptionsFile is the option file (MariaDB/MySQL) or pgpass file
	// (PostgreSQL) holding the credentials; empty uses the client's own
	// defaults (e.g. root over the local socket).
	OptionsFile string
	// User, Host, Port and Socket are optional connection settings.
	User   string
	Host   string
	Port   int
	Socket string
	// Dump and Load are the commands of engine Command.
	Dump, Load []string
	// Timeout bounds the short statements a restore runs besides the load
	// (checking the connection, dropping the database). Zero means 1 minute.
	Timeout time.Duration
}

// DB dumps and loads one database.
type DB struct{ o Options }

// New checks the options and returns a DB. The option file must exist and
// be readable by its owner only.
func New(o Options) (*DB, error) {
	switch o.Engine {
	case MariaDB, MySQL, Postgres:
		if o.Name == "" {
			return nil, errors.New("database name is empty")
		}
	case Command:
		if len(o.Dump) == 0 || len(o.Load) == 0 {
			return nil, errors.New("engine command needs a dump and a load command")
		}
	default:
		return nil, fmt.Errorf("unknown database engine %q", o.Engine)
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	if o.OptionsFile != "" {
		fi, err := os.Stat(o.OptionsFile)
		if err != nil {
			return nil, fmt.Errorf("database credentials: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("database credentials %s are readable by others (mode %v): run `chmod 600 %s`", o.OptionsFile, fi.Mode().Perm(), o.OptionsFile)
		}
	}
	return &DB{o: o}, nil
}

// CredentialPath is where a systemd credential of that name lives, from
// $CREDENTIALS_DIRECTORY.
func CredentialPath(getenv func(string) string, name string) (string, error) {
	dir := getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return "", fmt.Errorf("credential %q: $CREDENTIALS_DIRECTORY is not set: pass the credential to the service with LoadCredential=%s:/path/to/file in its unit, or use options_file", name, name)
	}
	return filepath.Join(dir, name), nil
}

// Engine returns the engine.
func (d *DB) Engine() string { return d.o.Engine }

// Name returns the database name.
func (d *DB) Name() string { return d.o.Name }

// EntryName is the name of the dump's entry in a version.
func (d *DB) EntryName() string {
	ext := ".sql"
	if d.o.Engine == Command {
		ext = ".dump"
	}
	return "piosnap-database/" + d.o.Name + ext
}

// trailers are what a complete dump ends with; a dump without it was cut
// short even if its program exited 0.
var trailers = map[string]string{
	MariaDB:  "-- Dump completed",
	MySQL:    "-- Dump completed",
	Postgres: "-- PostgreSQL database dump complete",
}

// Dump runs the dump program and hands its output to consume, which must
// read it to the end. The dump fails when the program exits non-zero (even
// after writing everything), when its output lacks the trailer a complete
// dump ends with, or when consume fails. MariaDB's sandbox-mode first line
// is left out, so the dump loads into any MariaDB or MySQL server.
func (d *DB) Dump(ctx context.Context, consume func(io.Reader) error) error {
	c := d.dumpCommand()
	argv := c.argv
	cmd := d.command(ctx, c)
	var stderr hooks.Tail
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dump database %s: %w%s", d.o.Name, err, installHint(err))
	}
	var end hooks.Tail
	r := io.TeeReader(StripSandbox(out), &end)
	cerr := consume(r)
	if cerr != nil {
		_ = cmd.Process.Kill()
	}
	_, _ = io.Copy(io.Discard, out)
	werr := cmd.Wait()
	what := fmt.Sprintf("dump database %s with %s", d.o.Name, argv[0])
	switch {
	case cerr != nil:
		return fmt.Errorf("%s: %w", what, cerr)
	case werr != nil:
		return fmt.Errorf("%s: %w%s", what, werr, stderr.Quote())
	}
	if t := trailers[d.o.Engine]; t != "" && !bytes.Contains(end.Bytes(), []byte(t)) {
		return fmt.Errorf("%s: the dump does not end with %q, so it is incomplete%s", what, t, stderr.Quote())
	}
	return nil
}

// Ping checks that the database can be reached with the credentials.
func (d *DB) Ping(ctx context.Context) error {
	switch d.o.Engine {
	case Command:
		return nil
	case Postgres:
		return d.run(ctx, d.psql(d.o.Name, "-c", "SELECT 1"))
	}
	return d.run(ctx, d.mysql("-e", "SELECT 1"))
}

// Load replaces the database with the dump read from r: it drops the
// database, then loads the dump, which creates it again. Foreign-key checks
// are off during a MariaDB/MySQL load, so table order does not matter.
func (d *DB) Load(ctx context.Context, r io.Reader) error {
	r = StripSandbox(r)
	switch d.o.Engine {
	case Command:
		return d.runLoad(ctx, r, cmdline{argv: d.o.Load})
	case Postgres:
		return d.runLoad(ctx, r, d.psql("postgres", "--set", "ON_ERROR_STOP=1"))
	}
	if err := d.run(ctx, d.mysql("-e", "DROP DATABASE IF EXISTS `"+d.o.Name+"`")); err != nil {
		return fmt.Errorf("drop database %s before loading the dump: %w", d.o.Name, err)
	}
	return d.runLoad(ctx, r, d.mysql("--init-command=SET foreign_key_checks=0"))
}

// cmdline is a command and the environment it needs besides piosnap's.
type cmdline struct{ argv, env []string }

func (d *DB) runLoad(ctx context.Context, r io.Reader, c cmdline) error {
	cmd := d.command(ctx, c)
	cmd.Stdin = r
	var stderr hooks.Tail
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("load dump into database %s with %s: %w%s%s", d.o.Name, c.argv[0], err, stderr.Quote(), installHint(err))
	}
	return nil
}

// run runs a short client command under the timeout.
func (d *DB) run(ctx context.Context, c cmdline) error {
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	cmd := d.command(ctx, c)
	argv := c.argv
	var out hooks.Tail
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: no answer within %s", argv[0], d.o.Timeout)
		}
		return fmt.Errorf("%s: %w%s%s", argv[0], err, out.Quote(), installHint(err))
	}
	return nil
}

// installHint says what to install when a client program is missing.
func installHint(err error) string {
	if !errors.Is(err, exec.ErrNotFound) {
		return ""
	}
	return " (install the database's client programs: apt-get install mariadb-client, or postgresql-client for PostgreSQL)"
}

func (d *DB) command(ctx context.Context, c cmdline) *exec.Cmd {
	return hooks.Command(ctx, c.argv, c.env)
}

func (d *DB) dumpCommand() cmdline {
	switch d.o.Engine {
	case Command:
		return cmdline{argv: d.o.Dump}
	case Postgres:
		c := d.pgArgs("pg_dump")
		c.argv = append(c.argv, "--clean", "--if-exists", "--create", "--dbname="+d.o.Name)
		return c
	}
	prog := "mysqldump"
	if d.o.Engine == MariaDB {
		prog = client("mariadb-dump", "mysqldump")
	}
	return cmdline{argv: append(d.myArgs(prog), "--single-transaction", "--routines", "--triggers", "--hex-blob",
		"--default-character-set=utf8mb4", "--databases", d.o.Name)}
}

func (d *DB) mysql(extra ...string) cmdline {
	prog := "mysql"
	if d.o.Engine == MariaDB {
		prog = client("mariadb", "mysql")
	}
	return cmdline{argv: append(append(d.myArgs(prog), "--batch", "--default-character-set=utf8mb4"), extra...)}
}

// myArgs starts a MariaDB/MySQL client command line; the option file must
// come first.
func (d *DB) myArgs(prog string) []string {
	argv := []string{prog}
	if d.o.OptionsFile != "" {
		argv = append(argv, "--defaults-extra-file="+d.o.OptionsFile)
	}
	if d.o.User != "" {
		argv = append(argv, "--user="+d.o.User)
	}
	if d.o.Host != "" {
		argv = append(argv, "--host="+d.o.Host)
	}
	if d.o.Port != 0 {
		argv = append(argv, "--port="+strconv.Itoa(d.o.Port))
	}
	if d.o.Socket != "" {
		argv = append(argv, "--socket="+d.o.Socket)
	}
	return argv
}

func (d *DB) psql(db string, extra ...string) cmdline {
	c := d.pgArgs("psql")
	c.argv = append(append(c.argv, "--no-psqlrc", "--quiet", "--dbname="+db), extra...)
	return c
}

func (d *DB) pgArgs(prog string) cmdline {
	var env []string
	argv := []string{prog, "--no-password"}
	host := d.o.Host
	if d.o.Socket != "" {
		host = filepath.Dir(d.o.Socket) // libpq takes the socket's folder
	}
	if host != "" {
		argv = append(argv, "--host="+host)
	}
	if d.o.Port != 0 {
		argv = append(argv, "--port="+strconv.Itoa(d.o.Port))
	}
	if d.o.User != "" {
		argv = append(argv, "--username="+d.o.User)
	}
	if d.o.OptionsFile != "" {
		env = append(env, "PGPASSFILE="+d.o.OptionsFile)
	}
	return cmdline{argv: argv, env: env}
}

// client returns the first program found on $PATH, or the first name.
func client(names ...string) string {
	for _, n := range names {
		if _, err := exec.LookPath(n); err == nil {
			return n
		}
	}
	return names[0]
}

// sandboxPrefix starts the line MariaDB 10.11+'s dump tools write first:
// `/*M!999999\- enable the sandbox mode */`. MySQL and older MariaDB clients
// stop at it with "Unknown command '\-'".
const sandboxPrefix = `/*M!999999\- enable the sandbox mode`

// StripSandbox returns r without MariaDB's sandbox-mode first line, if the
// stream starts with one; the rest passes through unchanged.
func StripSandbox(r io.Reader) io.Reader {
	br := bufio.NewReaderSize(r, 4096)
	head, _ := br.Peek(len(sandboxPrefix))
	if string(head) != sandboxPrefix {
		return br
	}
	if _, err := br.ReadString('\n'); err != nil {
		return io.MultiReader() // the whole input was that one line
	}
	return br
}
