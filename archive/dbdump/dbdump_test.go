package dbdump_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/archive/dbdump"
	"github.com/piosnap/piosnap/archive/dbdump/dbtest"
)

func TestStripSandbox(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/*M!999999\\- enable the sandbox mode */\n-- MariaDB dump\nCREATE TABLE t;\n", "-- MariaDB dump\nCREATE TABLE t;\n"},
		{"-- MySQL dump\nCREATE TABLE t;\n", "-- MySQL dump\nCREATE TABLE t;\n"},
		{"/*M!999999\\- enable the sandbox mode */", ""},
		{"", ""},
		{"/*M!99", "/*M!99"},
	} {
		got, err := io.ReadAll(dbdump.StripSandbox(strings.NewReader(tc.in)))
		if err != nil || string(got) != tc.want {
			t.Errorf("StripSandbox(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func dump(t *testing.T, db *dbdump.DB) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	err := db.Dump(context.Background(), func(r io.Reader) error {
		_, err := io.Copy(&buf, r)
		return err
	})
	return buf.String(), err
}

// TestMariaDBRoundTrip dumps a real server's database with the app user's
// option file, drops it, and loads the dump back: rows, collation and the
// absence of the sandbox line (which mariadb-dump 10.11 writes) are checked.
func TestMariaDBRoundTrip(t *testing.T) {
	m := dbtest.Start(t)
	m.Exec("CREATE TABLE cells.idx (id INT PRIMARY KEY, parent INT, name VARCHAR(100), FOREIGN KEY (parent) REFERENCES cells.idx(id)) ENGINE=InnoDB")
	m.Exec("INSERT INTO cells.idx VALUES (1, NULL, 'root'), (2, 1, 'Ünïcode ✓'), (3, 2, 'leaf')")
	raw, err := exec.Command("mariadb-dump", "--defaults-extra-file="+m.AppOptions, "--databases", "cells").Output()
	if err != nil {
		t.Fatal(err)
	}
	db, err := dbdump.New(dbdump.Options{Engine: dbdump.MariaDB, Name: "cells", OptionsFile: m.AppOptions})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	text, err := dump(t, db)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	if strings.HasPrefix(string(raw), "/*M!999999") && strings.HasPrefix(text, "/*M!999999") {
		t.Errorf("the sandbox line was kept: %q", text[:60])
	}
	if strings.Contains(text, m.Password) {
		t.Error("the dump contains the password")
	}
	if !strings.Contains(text, "utf8mb4_bin") {
		t.Error("the dump does not recreate the database with utf8mb4_bin")
	}
	m.Exec("DELETE FROM cells.idx WHERE id = 3")
	m.Exec("CREATE TABLE cells.extra (x INT)")
	if err := db.Load(context.Background(), strings.NewReader(text)); err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := m.Exec("SELECT GROUP_CONCAT(name ORDER BY id SEPARATOR '|') FROM cells.idx"); got != "root|Ünïcode ✓|leaf" {
		t.Errorf("rows after load = %q", got)
	}
	if got := m.Exec("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'cells'"); got != "1" {
		t.Errorf("tables after load = %s, want 1: the load must replace the database, not merge into it", got)
	}
	// The raw dump, sandbox line and all, loads too: Load strips it.
	if err := db.Load(context.Background(), bytes.NewReader(raw)); err != nil {
		t.Fatalf("load of mariadb-dump's own output: %v", err)
	}
}

func TestMariaDBFailures(t *testing.T) {
	m := dbtest.Start(t)
	ctx := context.Background()
	wrong := filepath.Join(t.TempDir(), "wrong.cnf")
	if err := os.WriteFile(wrong, []byte("[client]\nuser=pydio\npassword=nope\nsocket="+m.Socket+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := dbdump.New(dbdump.Options{Engine: dbdump.MariaDB, Name: "cells", OptionsFile: wrong})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dump(t, db); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("dump with a wrong password: %v, want Access denied", err)
	} else if strings.Contains(err.Error(), "nope") {
		t.Errorf("the error shows the password: %v", err)
	}
	if err := db.Ping(ctx); err == nil {
		t.Error("ping with a wrong password succeeded")
	}
	good, _ := dbdump.New(dbdump.Options{Engine: dbdump.MariaDB, Name: "cells", OptionsFile: m.AppOptions})
	if err := good.Load(ctx, strings.NewReader("CREATE DATABASE cells;\nUSE cells;\nTHIS IS NOT SQL;\n")); err == nil {
		t.Error("loading a broken dump succeeded")
	}
	if err := os.Chmod(m.AppOptions, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := dbdump.New(dbdump.Options{Engine: dbdump.MariaDB, Name: "cells", OptionsFile: m.AppOptions}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable option file: %v, want a chmod hint", err)
	}
}

// TestCommandDump covers engine command: a dump that exits non-zero after
// writing everything fails, and a consumer's failure stops the dump.
func TestCommandDump(t *testing.T) {
	ok, err := dbdump.New(dbdump.Options{Engine: dbdump.Command, Dump: []string{"sh", "-c", "echo one; echo two"}, Load: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if text, err := dump(t, ok); err != nil || text != "one\ntwo\n" {
		t.Errorf("dump = %q, %v", text, err)
	}
	bad, _ := dbdump.New(dbdump.Options{Engine: dbdump.Command, Dump: []string{"sh", "-c", "echo all of it; echo disk full >&2; exit 3"}, Load: []string{"true"}})
	if _, err := dump(t, bad); err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("dump exiting 3 after writing: %v", err)
	}
	missing, _ := dbdump.New(dbdump.Options{Engine: dbdump.Command, Dump: []string{"piosnap-test-no-such-dump"}, Load: []string{"true"}})
	if _, err := dump(t, missing); err == nil || !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("a missing dump program: %v, want an install hint", err)
	}
	load, _ := dbdump.New(dbdump.Options{Engine: dbdump.Command, Dump: []string{"true"}, Load: []string{"sh", "-c", "cat > /dev/null; exit 1"}})
	if err := load.Load(context.Background(), strings.NewReader("x")); err == nil {
		t.Error("a failing load command succeeded")
	}
}

func TestCredentialPath(t *testing.T) {
	env := map[string]string{"CREDENTIALS_DIRECTORY": "/run/credentials/piosnap.service"}
	p, err := dbdump.CredentialPath(func(k string) string { return env[k] }, "cells.cnf")
	if err != nil || p != "/run/credentials/piosnap.service/cells.cnf" {
		t.Errorf("CredentialPath = %q, %v", p, err)
	}
	if _, err := dbdump.CredentialPath(func(string) string { return "" }, "cells.cnf"); err == nil || !strings.Contains(err.Error(), "LoadCredential") {
		t.Errorf("without $CREDENTIALS_DIRECTORY: %v", err)
	}
}

// TestPostgresRoundTrip dumps a real PostgreSQL database as its owner
// with a pgpass file, changes it, and loads the dump back.
func TestPostgresRoundTrip(t *testing.T) {
	p := dbtest.StartPostgres(t)
	p.Exec("cells", "CREATE TABLE idx (id INT PRIMARY KEY, name TEXT); ALTER TABLE idx OWNER TO pydio; INSERT INTO idx VALUES (1, 'root'), (2, 'Ünïcode ✓')")
	db, err := dbdump.New(dbdump.Options{Engine: dbdump.Postgres, Name: "cells", User: "pydio", Socket: filepath.Join(p.SocketDir, ".s.PGSQL.5432"), OptionsFile: p.PassFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	text, err := dump(t, db)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	p.Exec("cells", "DELETE FROM idx WHERE id = 2; CREATE TABLE extra (x INT)")
	if err := db.Load(ctx, strings.NewReader(text)); err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := p.Exec("cells", "SELECT string_agg(name, '|' ORDER BY id) FROM idx"); got != "root|Ünïcode ✓" {
		t.Errorf("rows after load = %q", got)
	}
	if got := p.Exec("cells", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); got != "1" {
		t.Errorf("tables after load = %s, want 1", got)
	}
	if err := db.Load(ctx, strings.NewReader("SELECT 1;\nNOT SQL;\n")); err == nil {
		t.Error("a broken dump loaded")
	}
}
