package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler/daemon"
)

// A restore or an export from the command line avoids a store where the
// daemon's reading of stored data recorded the version damaged: without
// --store it reads the version from another store that holds it, and says
// so; --store naming the damaged store is obeyed, with a warning that
// names the commands to check and repair it.
func TestRestoreAvoidsRecordedDamage(t *testing.T) {
	r := newRestoreRig(t, rigOptions{})
	stateDir := filepath.Join(r.dir, "state")
	usb := filepath.Join(r.dir, "usb")
	text, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// verify_days = 1: the daemon reads all of a store after a run.
	cfg := fmt.Sprintf("state_dir = %q\n%sverify_days = 1\n\n[[store]]\nname = \"usb\"\ntype = \"local\"\npath = %q\nverify_days = 1\n", stateDir, text, usb)
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil { // piosnap run makes it
		t.Fatal(err)
	}
	r.mustRun("init", "--store", "usb")
	r.mustRun("backup", "--host", "worker1")
	damageOnlyPack(t, r.repoDir) // store local's, the first

	// Before the daemon has read the stores, nothing is recorded: the
	// first store is used, as always.
	if _, out, errs := r.run("restore", "--host", "worker1", "--dry-run"); !strings.Contains(out, "store local") || strings.Contains(errs, "recorded damaged") {
		t.Errorf("restore --dry-run before any reading:\n%s%s\nwant store local, and no word of damage", out, errs)
	}

	// A real run of the daemon, and its reading of both stores.
	loaded, err := config.Load(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{env: Env{Getenv: func(string) string { return "" }}, configPath: r.cfgPath, cfg: loaded, log: newLogger(&strings.Builder{}, func(string) string { return "" }, "text", "error")}
	d, err := newDaemon(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Job(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	sf, err := daemon.ReadStatusFile(filepath.Join(stateDir, daemon.StatusFileName))
	if err != nil {
		t.Fatal(err)
	}
	damaged := map[string]int{}
	for _, v := range sf.Verified {
		damaged[v.Store] = len(v.Problems)
	}
	if len(sf.Verified) != 2 || damaged["local"] == 0 || damaged["usb"] != 0 {
		t.Fatalf("recorded readings: %+v; want damage in store local only", sf.Verified)
	}

	code, out, errs := r.run("restore", "--host", "worker1", "--dry-run")
	if code != exitOK || !strings.Contains(out, "store usb") || !strings.Contains(out, "every check passed") {
		t.Errorf("restore --dry-run: exit %d\n%s%s\nwant a passing dry run from store usb", code, out, errs)
	}
	if !strings.Contains(errs, "is recorded damaged in store local") || !strings.Contains(errs, "reading it from store usb, which holds it undamaged") {
		t.Errorf("restore --dry-run does not say why it reads store usb:\n%s", errs)
	}

	// Export shares the choice.
	zip := filepath.Join(r.dir, "worker1.zip")
	if code, out, errs := r.run("export", "--host", "worker1", "-o", zip); code != exitOK || !strings.Contains(errs, "reading it from store usb") {
		t.Errorf("export: exit %d\n%s%s\nwant it read from store usb, and why", code, out, errs)
	}

	// --store local, on purpose: obeyed, with a warning; the dry run then
	// fails on the damaged pack and changes nothing.
	code, out, errs = r.run("restore", "--host", "worker1", "--dry-run", "--store", "local")
	if code == exitOK || !strings.Contains(out, "store local") {
		t.Errorf("restore --dry-run --store local: exit %d\n%s%s\nwant store local, failing on the damage", code, out, errs)
	}
	for _, want := range []string{"WARNING: version", "is recorded damaged in store local", "that store was named", "piosnap check --read-data --store local", "piosnap repair --store local"} {
		if !strings.Contains(errs, want) {
			t.Errorf("restore --dry-run --store local: the warning lacks %q:\n%s", want, errs)
		}
	}
}
