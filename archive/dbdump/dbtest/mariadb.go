// Package dbtest starts a private MariaDB server for tests: its own data
// directory and socket, no network, stopped when the test ends.
package dbtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MariaDB is a running test server with a database "cells" (utf8mb4_bin,
// as Pydio Cells wants it) and a user "pydio" that has every right on it.
type MariaDB struct {
	// Dir holds the data directory, the socket and the option files.
	Dir string
	// Socket is the server's Unix socket.
	Socket string
	// RootOptions is an option file ([client] user root over the socket).
	RootOptions string
	// AppOptions is an option file for user pydio, password included,
	// mode 0600.
	AppOptions string
	// Password is pydio's password.
	Password string

	t   testing.TB
	cmd *exec.Cmd
}

// find returns the path of a MariaDB program, or "".
func find(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start starts a server and stops it at the end of the test. Without
// MariaDB installed it skips the test, or fails it when $CI is set.
func Start(t testing.TB) *MariaDB {
	t.Helper()
	server, install := find("mariadbd"), find("mariadb-install-db")
	if server == "" || install == "" || find("mariadb") == "" || find("mariadb-dump") == "" {
		msg := "MariaDB is not installed: run scripts/test-deps.sh (apt-get install -y mariadb-server mariadb-client)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// A short directory: a Unix socket path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "piosnap-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m := &MariaDB{Dir: dir, Socket: filepath.Join(dir, "sock"), Password: "s3cret-pw", t: t}
	user := "--user=mysql"
	if os.Geteuid() == 0 {
		user = "--user=root"
	}
	data := filepath.Join(dir, "data")
	// A tmpdir of its own: a starting server deletes every "#sql" file in
	// its tmpdir, so servers of tests running at once in a shared /tmp
	// deleted each other's temporary tables (the bootstrap then failed
	// with "Unknown table 'mysql.tmp_proxies_priv'").
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(install, user, "--datadir="+data, "--tmpdir="+tmp, "--auth-root-authentication-method=socket", "--skip-test-db").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	var log bytes.Buffer
	m.cmd = exec.Command(server, "--no-defaults", user, "--datadir="+data, "--tmpdir="+tmp, "--socket="+m.Socket,
		"--skip-networking", "--pid-file="+filepath.Join(dir, "pid"), "--log-error="+filepath.Join(dir, "err.log"))
	m.cmd.Stdout, m.cmd.Stderr = &log, &log
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	t.Cleanup(m.stop)
	m.RootOptions = filepath.Join(dir, "root.cnf")
	m.write(m.RootOptions, fmt.Sprintf("[client]\nuser=%s\nsocket=%s\n", currentUser(), m.Socket))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := m.query("SELECT 1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			errlog, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			t.Fatalf("mariadbd did not come up within 2 minutes:\n%s\n%s", log.String(), errlog)
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.Exec("CREATE DATABASE cells CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	m.Exec("CREATE USER 'pydio'@'localhost' IDENTIFIED BY '" + m.Password + "'")
	m.Exec("GRANT ALL ON cells.* TO 'pydio'@'localhost'")
	m.AppOptions = filepath.Join(dir, "pydio.cnf")
	m.write(m.AppOptions, fmt.Sprintf("[client]\nuser=pydio\npassword=%s\nsocket=%s\n", m.Password, m.Socket))
	return m
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	return os.Getenv("USER")
}

func (m *MariaDB) write(path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		m.t.Fatal(err)
	}
}

func (m *MariaDB) stop() {
	if m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
}

func (m *MariaDB) query(sql string) (string, error) {
	out, err := exec.Command(find("mariadb"), "--defaults-extra-file="+m.RootOptions, "--batch", "--skip-column-names", "-e", sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Exec runs SQL as root and returns its output (tab-separated, no column
// names); an error fails the test.
func (m *MariaDB) Exec(sql string) string {
	m.t.Helper()
	out, err := m.query(sql)
	if err != nil {
		m.t.Fatal(err)
	}
	return out
}

// Client is a command line that runs the mariadb client as pydio on the
// cells database; append "-e", SQL.
func (m *MariaDB) Client() []string {
	return []string{find("mariadb"), "--defaults-extra-file=" + m.AppOptions, "cells"}
}
