package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/piosnap/piosnap/archive/dir/standin"
)

// demoCellsConfig lays out a Pydio-Cells-like working directory under
// root and returns the [[source]] block that backs it up. Its "database"
// is a file that shell commands dump and load, so the demo needs no
// MariaDB; the hooks only note when they ran.
func demoCellsConfig(root string) (string, error) {
	work := filepath.Join(root, "cells")
	if err := standin.Layout(work); err != nil {
		return "", fmt.Errorf("demo cells folder: %w", err)
	}
	db := filepath.Join(root, "cells-db.sql")
	if err := os.WriteFile(db, []byte("-- demo database\nINSERT INTO idx_tree VALUES (1, '/welcome.txt');\n"), 0o600); err != nil {
		return "", err
	}
	hooks := filepath.Join(root, "cells-hooks.log")
	return fmt.Sprintf(`
# A Pydio Cells server: its working directory and its database, copied
# while it is stopped. Here the "database" is a file and the hooks only
# log; see README.md for a real install.
[[source]]
kind = "dir"
name = "cells"
paths = [%q]
excludes = ["data/.minio.sys/tmp", "services/pydio.grpc.update", "logs/*-[0-9][0-9][0-9][0-9]-*.log*"]
[source.hooks]
stop = ["sh", "-c", "echo stop >> %s"]
start = ["sh", "-c", "echo start >> %s"]
[source.database]
engine = "command"
name = "cells"
dump = ["cat", %q]
load = ["sh", "-c", "cat > %s"]
`, work, hooks, hooks, db, db), nil
}

// demoCells restores the directory source after a file was damaged.
func demoCells(ctx context.Context, a *app, root string, say func(string, ...any)) error {
	work := filepath.Join(root, "cells")
	welcome := filepath.Join(work, "data/pydiods1/welcome.txt")
	say("Pydio Cells: a user's file is overwritten by mistake; restoring the cells source")
	if err := os.WriteFile(welcome, []byte("oops\n"), 0o644); err != nil {
		return err
	}
	if err := cmdRestore(ctx, a, []string{"--host", "cells", "--yes"}); err != nil {
		return err
	}
	b, err := os.ReadFile(welcome)
	if err != nil {
		return err
	}
	hooks, _ := os.ReadFile(filepath.Join(root, "cells-hooks.log"))
	fmt.Fprintf(a.env.Stdout, "welcome.txt holds %q again; the hooks ran: %s\n", strings.TrimSpace(string(b)), strings.Join(strings.Fields(string(hooks)), ", "))
	return nil
}
