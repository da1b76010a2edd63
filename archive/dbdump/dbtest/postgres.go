package dbtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Postgres is a running PostgreSQL test server with a database "cells"
// owned by user "pydio", reached over a Unix socket with passwords.
type Postgres struct {
	// SocketDir holds the server's socket.
	SocketDir string
	// PassFile is a pgpass file with the passwords of postgres and pydio,
	// mode 0600.
	PassFile string

	t    testing.TB
	bin  string
	cred *syscall.Credential
	cmd  *exec.Cmd
}

// pgBin returns the newest /usr/lib/postgresql/*/bin, or "".
func pgBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if fileExists(filepath.Join(dirs[i], "initdb")) && fileExists(filepath.Join(dirs[i], "postgres")) {
			return dirs[i]
		}
	}
	return ""
}

// StartPostgres starts a server and stops it at the end of the test.
// PostgreSQL refuses to run as root, so as root the server runs as the
// "postgres" user. Without PostgreSQL it skips the test, or fails it when
// $CI is set.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := pgBin()
	if bin == "" || find("pg_dump") == "" || find("psql") == "" {
		msg := "PostgreSQL is not installed: apt-get install -y postgresql"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "piosnap-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &Postgres{SocketDir: dir, t: t, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(dir, "pw")
	p.writeOwned(pw, "super-pw\n")
	data := filepath.Join(dir, "data")
	if out, err := p.command("initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pw).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.cmd = p.command("postgres", "-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "fsync=off")
	logf, _ := os.Create(filepath.Join(dir, "log"))
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(p.stop)
	p.PassFile = filepath.Join(dir, "pgpass")
	if err := os.WriteFile(p.PassFile, []byte("*:*:*:postgres:super-pw\n*:*:*:pydio:pydio-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := p.query("postgres", "SELECT 1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("postgres did not come up within 2 minutes:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Exec("postgres", "CREATE ROLE pydio LOGIN CREATEDB PASSWORD 'pydio-pw'")
	p.Exec("postgres", "CREATE DATABASE cells OWNER pydio")
	return p
}

func (p *Postgres) writeOwned(path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		p.t.Fatal(err)
	}
	if p.cred != nil {
		if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *Postgres) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, prog), args...)
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	cmd.Dir = p.SocketDir
	return cmd
}

func (p *Postgres) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func (p *Postgres) query(db, sql string) (string, error) {
	cmd := exec.Command(find("psql"), "--no-psqlrc", "--no-password", "--host="+p.SocketDir, "--username=postgres", "--dbname="+db, "-tA", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSFILE="+p.PassFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Exec runs SQL as the superuser in database db and returns its output
// (unaligned, no headers); an error fails the test.
func (p *Postgres) Exec(db, sql string) string {
	p.t.Helper()
	out, err := p.query(db, sql)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}
