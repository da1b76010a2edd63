package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/archive/dbdump/dbtest"
)

// TestDirSourceMariaDB backs up a folder and a real MariaDB database whose
// credentials come from a systemd credential, then restores the database
// alone after a row was deleted.
func TestDirSourceMariaDB(t *testing.T) {
	m := dbtest.Start(t)
	m.Exec("CREATE TABLE cells.idx (id INT PRIMARY KEY, name VARCHAR(50))")
	m.Exec("INSERT INTO cells.idx VALUES (1, 'root'), (2, 'leaf')")
	tmp := t.TempDir()
	root := filepath.Join(tmp, "cells")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(tmp, "piosnap.toml")
	text := fmt.Sprintf(`[[store]]
path = %q
[[source]]
kind = "dir"
name = "cells"
paths = [%q]
[source.database]
engine = "mariadb"
name = "cells"
credential = %q
`, filepath.Join(tmp, "repo"), root, filepath.Base(m.AppOptions))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CREDENTIALS_DIRECTORY": filepath.Dir(m.AppOptions)}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), append([]string{"-c", cfg}, args...), Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
		return code, out.String(), errb.String()
	}
	if code, _, errs := run("init"); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := run("backup"); code != 0 {
		t.Fatalf("backup: %d\n%s\n%s", code, out, errs)
	}
	m.Exec("DELETE FROM cells.idx WHERE id = 2")
	code, out, errs := run("restore", "--host", "cells", "--db-only", "--yes")
	if code != 0 {
		t.Fatalf("restore --db-only: %d\n%s\n%s", code, out, errs)
	}
	if got := m.Exec("SELECT GROUP_CONCAT(name ORDER BY id) FROM cells.idx"); got != "root,leaf" {
		t.Errorf("rows after the restore: %q", got)
	}
	if strings.Contains(out+errs, m.Password) {
		t.Error("the password appears in piosnap's output")
	}
	// Without $CREDENTIALS_DIRECTORY the error says how to pass the credential.
	delete(env, "CREDENTIALS_DIRECTORY")
	if code, _, errs := run("backup"); code == 0 || !strings.Contains(errs, "LoadCredential") {
		t.Errorf("backup without the credential: %d %s", code, errs)
	}
}
