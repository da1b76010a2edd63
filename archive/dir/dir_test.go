package dir_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/dbdump"
	"github.com/piosnap/piosnap/archive/dbdump/dbtest"
	"github.com/piosnap/piosnap/archive/dir"
	"github.com/piosnap/piosnap/archive/dir/standin"
	"github.com/piosnap/piosnap/archive/hooks"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// TestMain turns the test binary into the Cells stand-in when the start
// hook runs it with STANDIN_DIR set.
func TestMain(m *testing.M) {
	if os.Getenv("STANDIN_DIR") != "" {
		standin.Main()
	}
	os.Exit(m.Run())
}

// hangBound bounds the stand-in's start and stop hooks: starting the test
// binary under qemu on a loaded machine can take seconds, so the bound only
// catches a hang.
const hangBound = 2 * time.Minute

// cellsExcludes are the excludes the README recommends for Cells.
var cellsExcludes = []string{"data/.minio.sys/tmp", "services/pydio.grpc.update", "logs/*-[0-9][0-9][0-9][0-9]-*.log*"}

type fixture struct {
	t    *testing.T
	root string // the working directory
	db   *dbtest.MariaDB
	repo *store.Repository
	src  *dir.Source
}

// newFixture lays out a Cells-like tree at <tmp>/cells, starts MariaDB
// (when withDB) with a table the stand-in writes to, and starts the
// stand-in through the source's start hook.
func newFixture(t *testing.T, withDB bool) *fixture {
	t.Helper()
	f := &fixture{t: t, root: filepath.Join(t.TempDir(), "cells")}
	if err := standin.Layout(f.root); err != nil {
		t.Fatal(err)
	}
	b, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if f.repo, err = store.Init(ctx, b); err != nil {
		t.Fatal(err)
	}
	lock, err := f.repo.Lock(ctx, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Unlock(context.Background()) })
	f.src = &dir.Source{
		Name: "cells", Paths: []string{f.root}, Excludes: cellsExcludes,
		Stop:            hooks.Hook{Name: "stop", Argv: f.stopHook(), Timeout: hangBound},
		Start:           hooks.Hook{Name: "start", Argv: f.startHook(""), Timeout: hangBound},
		RequireUnlocked: []string{"**/*.db", "**/*.bolt"},
	}
	if withDB {
		f.db = dbtest.Start(t)
		f.db.Exec("CREATE TABLE cells.activity (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100)) ENGINE=InnoDB")
		f.db.Exec("INSERT INTO cells.activity (note) VALUES ('before')")
		f.src.Start.Argv = f.startHook(strings.Join(f.db.Client(), " "))
		if f.src.DB, err = dbdump.New(dbdump.Options{Engine: dbdump.MariaDB, Name: "cells", OptionsFile: f.db.AppOptions}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.src.Start.Run(ctx); err != nil {
		t.Fatalf("start the stand-in: %v", err)
	}
	t.Cleanup(func() {
		_ = hooks.Hook{Name: "stop", Argv: f.stopHook(), Timeout: hangBound}.Run(context.Background())
	})
	return f
}

func (f *fixture) startHook(mysql string) []string {
	bin, err := os.Executable()
	if err != nil {
		f.t.Fatal(err)
	}
	// Under `make arm64`/`make armv7` the test binary is not native: run it
	// through the same emulator as `go test -exec` runs this one.
	exec := ""
	if wrap := os.Getenv("PIOSNAP_TEST_EXEC"); wrap != "" {
		exec = "'" + wrap + "' "
	}
	// Like `systemctl start`, starting a running stand-in does nothing: a
	// restore whose stop hook failed runs the start hook on a live one, and
	// a second instance would hide the first from the stop hook.
	pid := standin.PidFile(f.root)
	script := fmt.Sprintf(`[ -f '%s' ] && kill -0 "$(cat '%s')" 2>/dev/null && exit 0
STANDIN_DIR='%s' STANDIN_MYSQL='%s' setsid %s'%s' -test.run='^$' >>'%s.log' 2>&1 </dev/null &
i=0; while [ ! -f '%s' ]; do sleep 0.05; i=$((i+1)); if [ $i -gt 2400 ]; then cat '%s.log' >&2; exit 1; fi; done`,
		pid, pid, f.root, mysql, exec, bin, f.root, pid, f.root)
	return []string{"sh", "-c", script}
}

func (f *fixture) stopHook() []string {
	pid := standin.PidFile(f.root)
	script := fmt.Sprintf(`[ -f '%[1]s' ] || exit 0; kill -INT "$(cat '%[1]s')"; i=0; while [ -f '%[1]s' ]; do sleep 0.05; i=$((i+1)); if [ $i -gt 2400 ]; then exit 1; fi; done`, pid)
	return []string{"sh", "-c", script}
}

// running reports whether the stand-in runs (it holds its pid file).
func (f *fixture) running() bool {
	_, err := os.Stat(standin.PidFile(f.root))
	return err == nil
}

func (f *fixture) take() (*store.Version, *dir.Taken, error) {
	f.t.Helper()
	ctx := context.Background()
	w, err := store.NewWriter(ctx, f.repo)
	if err != nil {
		f.t.Fatal(err)
	}
	taken, err := dir.Take(ctx, w, f.src)
	if err != nil {
		return nil, nil, err
	}
	v := taken.Version
	v.Time, v.Zone, v.Kind = time.Now(), "UTC", store.KindBackup
	res := taken.Pending.Commit(ctx, v)
	if res[0].Err != nil {
		f.t.Fatal(res[0].Err)
	}
	return res[0].Version, taken, nil
}

func (f *fixture) versions() int {
	ids, err := f.repo.VersionIDs(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return len(ids)
}

func (f *fixture) content(v *store.Version, name string) string {
	f.t.Helper()
	for i := range v.Entries {
		if v.Entries[i].Name == name {
			b, err := io.ReadAll(f.repo.OpenEntry(context.Background(), &v.Entries[i]))
			if err != nil {
				f.t.Fatal(err)
			}
			return string(b)
		}
	}
	f.t.Fatalf("version has no entry %q", name)
	return ""
}

func entry(v *store.Version, name string) *store.Entry {
	for i := range v.Entries {
		if v.Entries[i].Name == name {
			return &v.Entries[i]
		}
	}
	return nil
}

// TestBackupStopsDumpsStarts backs up a running stand-in: it is stopped,
// the copy is consistent (every locked file holds one counter value, the
// one the stand-in wrote last before stopping), the dump holds its rows,
// excludes are honoured, metadata is kept, and it runs again afterwards.
func TestBackupStopsDumpsStarts(t *testing.T) {
	f := newFixture(t, true)
	// Let it write, to the database too.
	for deadline := time.Now().Add(20 * time.Second); f.db.Exec("SELECT COUNT(*) FROM cells.activity WHERE note = 'write 1'") != "1"; {
		if time.Now().After(deadline) {
			t.Fatal("the stand-in wrote nothing to the database within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	owned := filepath.Join(f.root, "data/pydiods1/welcome.txt")
	if err := os.Lchown(owned, 1234, 2345); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := os.Chtimes(owned, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(f.root, "data/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(f.root, "pydio-vault.json"), filepath.Join(f.root, "vault-hardlink.json")); err != nil {
		t.Fatal(err)
	}
	v, taken, err := f.take()
	if err != nil {
		t.Fatal(err)
	}
	if !f.running() {
		t.Error("the stand-in is not running after the backup")
	}
	if taken.Downtime <= 0 {
		t.Errorf("downtime = %v", taken.Downtime)
	}
	name := dir.EntryName(f.root)
	doc := f.content(v, name+"/services/pydio.grpc.docstore/docstore.db")
	lines := strings.Split(strings.TrimSpace(doc), "\n")
	if len(lines) != 64 {
		t.Fatalf("docstore.db in the version has %d lines, want 64: the copy is torn", len(lines))
	}
	for _, l := range lines {
		if l != lines[0] {
			t.Fatalf("docstore.db in the version mixes writes %s and %s: copied while the stand-in wrote", lines[0], l)
		}
	}
	logText := f.content(v, name+"/logs/pydio.log")
	if want := fmt.Sprintf("stopped at %d\n", mustAtoi(t, lines[0])); !strings.HasSuffix(logText, want) {
		t.Errorf("the version's log does not end with %q: the copy was not taken right after the stop\n%s", want, logText[max(0, len(logText)-200):])
	}
	dump := f.content(v, v.Database.Entry)
	if !strings.Contains(dump, "INSERT INTO `activity`") || !strings.Contains(dump, "'write 1'") {
		t.Errorf("the dump lacks the stand-in's rows:\n%s", dump)
	}
	for _, excluded := range []string{"/data/.minio.sys/tmp/", "/data/.minio.sys/tmp/part.1", "/services/pydio.grpc.update/", "/logs/pydio-2026-11-01T00-00-00.000.log", "/data/fifo", "/vault-hardlink.json"} {
		if entry(v, name+excluded) != nil {
			t.Errorf("%s is in the version", excluded)
		}
	}
	for _, kept := range []string{"/", "/data/.minio.sys/", "/data/.minio.sys/format.json", "/data/cellsdata/", "/pydio-vault.json", "/logs/pydio.log"} {
		if entry(v, strings.TrimSuffix(name+kept, "/")+map[bool]string{true: "/"}[strings.HasSuffix(kept, "/")]) == nil {
			t.Errorf("%s is missing from the version", kept)
		}
	}
	if len(taken.Skipped) != 2 {
		t.Errorf("skipped = %+v, want the FIFO and the hard link", taken.Skipped)
	}
	e := entry(v, name+"/data/pydiods1/welcome.txt")
	if e.Owner == nil || *e.Owner != (store.Owner{UID: 1234, GID: 2345}) || !e.Modified.Equal(mtime) || e.Mode != 0o644 {
		t.Errorf("welcome.txt = owner %+v mode %v mtime %v", e.Owner, e.Mode, e.Modified)
	}
	if l := entry(v, name+"/data/welcome-link"); l == nil || l.Link != "pydiods1/welcome.txt" || l.Mode&os.ModeSymlink == 0 {
		t.Errorf("symlink entry = %+v", l)
	}
	if k := entry(v, name+"/cells-vault-key"); k.Mode != 0o600 {
		t.Errorf("cells-vault-key mode = %v", k.Mode)
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBackupRefusesRunningApp: a stop hook that does not stop the
// application leaves the stand-in's locks held; the flock probe refuses
// the copy, no version is stored, and the start hook still runs.
func TestBackupRefusesRunningApp(t *testing.T) {
	f := newFixture(t, false)
	marker := filepath.Join(t.TempDir(), "started")
	f.src.Stop = hooks.Hook{Name: "stop", Argv: []string{"true"}, Timeout: time.Second}
	f.src.Start = hooks.Hook{Name: "start", Argv: []string{"touch", marker}, Timeout: time.Minute}
	_, _, err := f.take()
	if !errors.Is(err, dir.ErrLocked) || !strings.Contains(err.Error(), "nothing was copied") {
		t.Fatalf("err = %v, want a lock error saying nothing was copied", err)
	}
	if n := f.versions(); n != 0 {
		t.Errorf("%d versions stored", n)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("the start hook did not run after the refused copy")
	}
}

// TestDumpFailureLeavesNoVersion: the dump fails (wrong password); no
// version is stored and the application runs again.
func TestDumpFailureLeavesNoVersion(t *testing.T) {
	f := newFixture(t, true)
	wrong := filepath.Join(t.TempDir(), "wrong.cnf")
	if err := os.WriteFile(wrong, []byte("[client]\nuser=pydio\npassword=wrong\nsocket="+f.db.Socket+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.src.DB, err = dbdump.New(dbdump.Options{Engine: dbdump.MariaDB, Name: "cells", OptionsFile: wrong}); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.take()
	if err == nil || !strings.Contains(err.Error(), "no version stored") || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("err = %v", err)
	}
	if n := f.versions(); n != 0 {
		t.Errorf("%d versions stored", n)
	}
	chunks, _ := f.repo.Chunks(context.Background())
	if len(chunks) != 0 {
		t.Errorf("%d chunks left behind", len(chunks))
	}
	if !f.running() {
		t.Error("the stand-in is not running after the failed backup")
	}
	// A dump that writes everything and then exits non-zero fails too.
	f.src.DB, _ = dbdump.New(dbdump.Options{Engine: dbdump.Command, Name: "cells", Dump: []string{"sh", "-c", "echo '-- all of it'; exit 2"}, Load: []string{"true"}})
	if _, _, err := f.take(); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("dump exiting 2: err = %v", err)
	}
	if n := f.versions(); n != 0 || !f.running() {
		t.Errorf("after a dump exiting 2: %d versions, running %v", n, f.running())
	}
}

// TestHangingHookTimesOut: a stop hook that hangs is killed at its
// timeout and reported; start still runs; nothing is stored.
func TestHangingHookTimesOut(t *testing.T) {
	f := newFixture(t, false)
	marker := filepath.Join(t.TempDir(), "started")
	f.src.Stop = hooks.Hook{Name: "stop", Argv: []string{"sh", "-c", "echo stopping; sleep 600"}, Timeout: 2 * time.Second}
	f.src.Start = hooks.Hook{Name: "start", Argv: []string{"touch", marker}, Timeout: time.Minute}
	start := time.Now()
	_, _, err := f.take()
	if !errors.Is(err, hooks.ErrTimeout) || !strings.Contains(err.Error(), "did not finish within 2s") || !strings.Contains(err.Error(), "stopping") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 5*time.Minute {
		t.Errorf("took %v: the hung hook was not cut off", el)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("start did not run after the hung stop")
	}
	if n := f.versions(); n != 0 {
		t.Errorf("%d versions stored", n)
	}
	// A start hook that fails is loud, and the (good) copy is kept.
	f.src.Stop = hooks.Hook{Name: "stop", Argv: []string{"true"}}
	f.src.Start = hooks.Hook{Name: "start", Argv: []string{"sh", "-c", "echo cannot bind port >&2; exit 1"}}
	f.src.RequireUnlocked = nil
	_, taken, err := f.take()
	if err != nil || taken.StartErr == nil || !strings.Contains(taken.StartErr.Error(), "NOT running") || !strings.Contains(taken.StartErr.Error(), "cannot bind port") {
		t.Errorf("failing start: err %v, StartErr %v", err, taken.StartErr)
	}
}

// TestShutdownStillStarts: piosnap is asked to stop (its context is
// cancelled) while the application is down; the start hook still runs and
// nothing is stored.
func TestShutdownStillStarts(t *testing.T) {
	f := newFixture(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The ready check never passes; piosnap is stopped once it has run,
	// that is while the application is down.
	checked := filepath.Join(t.TempDir(), "checked")
	f.src.ReadyCheck = hooks.Hook{Name: "ready_check", Argv: []string{"sh", "-c", "touch '" + checked + "'; exit 1"}}
	w, err := store.NewWriter(ctx, f.repo)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := os.Stat(checked); err == nil {
				cancel()
				return
			}
			if ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err = dir.Take(ctx, w, f.src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !f.running() {
		t.Error("the stand-in was not started again after the shutdown")
	}
	if n := f.versions(); n != 0 {
		t.Errorf("%d versions stored", n)
	}
}
