// Package standin is a stand-in for a Pydio Cells server in tests and
// demos: it lays out a Cells-like working directory, and while it runs it
// holds exclusive flocks on its BoltDB-style files (as bbolt does), keeps
// rewriting them, appends to its log and, when given a database, inserts
// rows into it. SIGINT or SIGTERM stops it cleanly, like Cells under
// systemd's KillSignal=INT.
//
// Cells itself cannot be installed here (see the project's research notes),
// so the directory source's tests stop and start this program with their
// hooks.
package standin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PidFile is the file, in the working directory's parent, holding the
// running stand-in's process ID; it exists only while the locks are held.
func PidFile(dir string) string { return dir + ".pid" }

// Locked are the files the stand-in holds locks on, relative to its
// working directory.
var Locked = []string{
	"configs-versions.db",
	"services/pydio.grpc.docstore/docstore.db",
	"services/pydio.grpc.search/searchengine.bleve/store/root.bolt",
}

// Options configure a run.
type Options struct {
	// Dir is the working directory (CELLS_WORKING_DIR).
	Dir string
	// MySQL, when set, is a client command line (e.g. ["mariadb",
	// "--socket=/tmp/s", "cells"]) through which rows are inserted into
	// the table `activity` every Every.
	MySQL []string
	// Every is the write interval (default 20ms).
	Every time.Duration
}

// Layout creates the working directory's files if it does not exist yet.
func Layout(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "pydio.json")); err == nil {
		return nil
	}
	files := []struct {
		name    string
		mode    os.FileMode
		content string
	}{
		{"pydio.json", 0o600, `{"defaults":{"urlInternal":"http://localhost:8080"},"databases":{"default":{"dsn":"pydio:@unix(/run/mysqld/mysqld.sock)/cells"}}}` + "\n"},
		{"pydio-vault.json", 0o600, "{}\n"},
		{"cells-vault-key", 0o600, "0123456789abcdef0123456789abcdef\n"},
		{"configs-versions.db", 0o600, ""},
		{"services/pydio.grpc.docstore/docstore.db", 0o600, ""},
		{"services/pydio.grpc.search/searchengine.bleve/store/root.bolt", 0o600, ""},
		{"services/pydio.grpc.search/searchengine.bleve/index_meta.json", 0o644, `{"storage":"scorch"}` + "\n"},
		{"services/pydio.grpc.update/cells-4.4.0", 0o755, strings.Repeat("old binary\n", 1000)},
		{"data/pydiods1/welcome.txt", 0o644, "welcome to cells\n"},
		{"data/personal/admin/notes.md", 0o640, "# notes\n"},
		{"data/.minio.sys/format.json", 0o644, `{"version":"1"}` + "\n"},
		{"data/.minio.sys/tmp/part.1", 0o644, "half an upload\n"},
		{"logs/pydio.log", 0o644, ""},
		{"logs/pydio-2026-11-01T00-00-00.000.log", 0o644, "an old log\n"},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.content), f.mode); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "data/cellsdata"), 0o755); err != nil {
		return err
	}
	return os.Symlink("pydiods1/welcome.txt", filepath.Join(dir, "data/welcome-link"))
}

// Run lays out the tree, takes the locks, writes the pid file and then
// writes until ctx is cancelled. Every write leaves each locked file
// holding one counter value on every line: a copy taken in the middle of
// a write shows two values.
func Run(ctx context.Context, o Options) error {
	if o.Every == 0 {
		o.Every = 20 * time.Millisecond
	}
	if err := Layout(o.Dir); err != nil {
		return err
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, name := range Locked {
		f, err := os.OpenFile(filepath.Join(o.Dir, name), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		files = append(files, f)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return fmt.Errorf("%s is locked: another instance runs (%w)", name, err)
		}
	}
	log, err := os.OpenFile(filepath.Join(o.Dir, "logs/pydio.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	// The pid file appears whole (written aside, then renamed): a stop hook
	// that finds it must never read it empty.
	pid := PidFile(o.Dir)
	if err := os.WriteFile(pid+".tmp", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(pid+".tmp", pid); err != nil {
		return err
	}
	defer os.Remove(pid)
	fmt.Fprintf(log, "%s started\n", time.Now().Format(time.RFC3339Nano))
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(log, "%s stopped at %d\n", time.Now().Format(time.RFC3339Nano), n)
			return nil
		case <-tick.C:
		}
		n++
		line := fmt.Sprintf("%08d\n", n)
		for _, f := range files {
			if err := f.Truncate(0); err != nil {
				return err
			}
			for i := 0; i < 64; i++ {
				if _, err := f.WriteAt([]byte(line), int64(i*len(line))); err != nil {
					return err
				}
				if i == 32 {
					time.Sleep(time.Millisecond) // a copy now would be torn
				}
			}
		}
		fmt.Fprintf(log, "%s write %d\n", time.Now().Format(time.RFC3339Nano), n)
		if len(o.MySQL) > 0 && n%5 == 1 {
			sql := fmt.Sprintf("INSERT INTO activity (note) VALUES ('write %d')", n)
			argv := append(append([]string(nil), o.MySQL...), "-e", sql)
			if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil && ctx.Err() == nil {
				fmt.Fprintf(log, "database write failed: %v: %s\n", err, out)
			}
		}
	}
}

// Main runs the stand-in with options from the environment
// (STANDIN_DIR, STANDIN_MYSQL as a space-separated command line) until
// SIGINT or SIGTERM, and exits. Tests re-execute their own binary with
// these variables set.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := Options{Dir: os.Getenv("STANDIN_DIR")}
	if m := os.Getenv("STANDIN_MYSQL"); m != "" {
		o.MySQL = strings.Fields(m)
	}
	if o.Dir == "" {
		fmt.Fprintln(os.Stderr, "standin: STANDIN_DIR is not set")
		os.Exit(2)
	}
	if err := Run(ctx, o); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
