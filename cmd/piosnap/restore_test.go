package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// restoreRig is a simulated cluster, a local repository and a configuration
// pointing at both.
type restoreRig struct {
	t       *testing.T
	cluster *simulator.Cluster
	dir     string
	cfgPath string
	repoDir string
}

type rigOptions struct {
	rebootDowntime time.Duration
	rebootTimeout  string
	exportTimeout  string
}

func newRestoreRig(t *testing.T, o rigOptions) *restoreRig {
	t.Helper()
	if o.rebootDowntime == 0 {
		o.rebootDowntime = 1500 * time.Millisecond // longer than WaitImport's poll interval, so a poll sees the unit down
	}
	if o.rebootTimeout == "" {
		o.rebootTimeout = "2m"
	}
	if o.exportTimeout == "" {
		o.exportTimeout = "1m"
	}
	dir := t.TempDir()
	cluster, err := simulator.Start(context.Background(), simulator.Options{
		Dir: filepath.Join(dir, "cluster"), Workers: []string{"worker1", "worker2"}, DBSize: 256 << 10,
		RebootDelay: 50 * time.Millisecond, RebootDowntime: o.rebootDowntime,
	})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { cluster.Close() })
	r := &restoreRig{t: t, cluster: cluster, dir: dir, repoDir: filepath.Join(dir, "repo")}
	r.cfgPath = r.writeConfig("piosnap.toml", o.exportTimeout, o.rebootTimeout)
	r.mustRun("init")
	return r
}

func (r *restoreRig) writeConfig(name, exportTimeout, rebootTimeout string) string {
	r.t.Helper()
	var addr strings.Builder
	for unit, ad := range r.cluster.Addresses() {
		fmt.Fprintf(&addr, "%s = %q\n", unit, ad)
	}
	text := fmt.Sprintf(`zone = "UTC"
lock_wait = "10s"

[log]
level = "warn"

[pioreactor]
leader = %q
pull = "broadcast"
timeout = "1m"
export_timeout = %q
reboot_timeout = %q

[pioreactor.addresses]
%s
[[store]]
name = "local"
type = "local"
path = %q
`, r.cluster.LeaderURL(), exportTimeout, rebootTimeout, addr.String(), r.repoDir)
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// run runs piosnap with the rig's configuration and returns the exit code
// and what it wrote to stdout and stderr.
func (r *restoreRig) run(args ...string) (code int, stdout, stderr string) {
	return r.runConfig(r.cfgPath, args...)
}

func (r *restoreRig) runConfig(cfg string, args ...string) (code int, stdout, stderr string) {
	var out, errw bytes.Buffer
	code = Main(context.Background(), append([]string{"-c", cfg}, args...), Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errw,
		Getenv: func(string) string { return "" },
	})
	return code, out.String(), errw.String()
}

func (r *restoreRig) mustRun(args ...string) string {
	r.t.Helper()
	code, out, errs := r.run(args...)
	if code != exitOK {
		r.t.Fatalf("piosnap %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
	}
	return out
}

// versions lists the repository's versions as `list --json` shows them.
func (r *restoreRig) versions() []listedVersion {
	r.t.Helper()
	var vs []listedVersion
	if err := json.Unmarshal([]byte(r.mustRun("list", "--json")), &vs); err != nil {
		r.t.Fatal(err)
	}
	return vs
}

// held returns the IDs of the versions under a live hold.
func (r *restoreRig) held() map[string]bool {
	r.t.Helper()
	ctx := context.Background()
	b, err := local.Open(r.repoDir)
	if err != nil {
		r.t.Fatal(err)
	}
	repo, err := store.Open(ctx, b)
	if err != nil {
		r.t.Fatal(err)
	}
	h, err := repo.HeldVersions(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// readTree reads every regular file under dir, by slash-separated path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// compareTrees checks that got holds exactly want's files byte for byte,
// except the metadata file an import leaves behind and config.ini, which
// must hold the same settings.
func compareTrees(t *testing.T, want, got map[string][]byte) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case name == pioreactor.MetadataFile:
		case !ok:
			t.Errorf("%s missing after the restore", name)
		case name == "config.ini":
			if d := restore.CompareConfig(string(w), string(g)); len(d) > 0 {
				t.Errorf("config.ini settings differ: %v", d)
			}
		case !bytes.Equal(w, g):
			t.Errorf("%s differs after the restore", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok && name != pioreactor.MetadataFile {
			t.Errorf("%s is extra after the restore", name)
		}
	}
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

// TestRestoreAndUndo restores a backup over a changed unit, verifies it,
// then restores the safety snapshot and gets the changed files back byte
// for byte.
func TestRestoreAndUndo(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, rigOptions{})
	w1 := r.cluster.Unit("worker1")
	before := readTree(t, w1.Dir())
	r.mustRun("backup", "--host", "worker1")

	if err := w1.WriteCalibration("od90", "after-backup", "curve_data_: [1, 2]\n"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w1.Dir(), "unit_config.ini"), []byte("[stirring.config]\ntarget_rpm=900\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := readTree(t, w1.Dir())

	code, out, errs := r.run("restore", "--host", "worker1", "--at", "latest", "--yes")
	if code != exitOK {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
	}
	mustContain(t, "stdout", out, "version ", "safety snapshot of worker1 taken", "uploaded ", "rebooted", "restored and verified")
	if got := w1.Imports(); got != 1 {
		t.Errorf("worker1 ran %d imports, want 1", got)
	}
	compareTrees(t, before, readTree(t, w1.Dir()))

	var safety *listedVersion
	vs := r.versions()
	for i := range vs {
		if vs[i].Kind == store.KindSafety {
			safety = &vs[i]
		}
	}
	if safety == nil {
		t.Fatalf("no safety version listed: %+v", vs)
	}
	if safety.Host != "worker1" || !strings.HasPrefix(safety.Note, "before restore of version ") {
		t.Errorf("safety version = %+v, want host worker1 and a note naming the restored version", safety)
	}
	mustContain(t, "list", r.mustRun("list"), "safety (before a restore)")
	mustContain(t, "stdout", out, "piosnap restore --host worker1 --version "+safety.ShortID)

	// Undo: restore the safety snapshot (without a second safety snapshot),
	// this time as a DEFLATE archive.
	code, out, errs = r.run("restore", "--host", "worker1", "--version", safety.ShortID, "--yes", "--no-safety-snapshot", "--compress")
	if code != exitOK {
		t.Fatalf("undo: exit %d\n%s\n%s", code, out, errs)
	}
	mustContain(t, "stdout", out, "every chunk checked", "restored and verified")
	mustContain(t, "stderr", errs, "no safety snapshot")
	compareTrees(t, changed, readTree(t, w1.Dir()))
	if n := len(r.versions()); n != 2 {
		t.Errorf("%d versions after the undo, want 2 (backup and one safety snapshot)", n)
	}
}

// TestRestoreRefused covers every refusal before the upload: nothing is
// imported and the exit code and message say why.
func TestRestoreRefused(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, rigOptions{})
	r.mustRun("backup")
	w1 := r.cluster.Unit("worker1")
	w1.SetExportDelay(0)
	slowExport := r.writeConfig("slow-export.toml", "1s", "20s")
	tests := []struct {
		name  string
		setup func() func()
		cfg   string
		args  []string
		code  int
		want  []string
	}{
		{name: "hostname mismatch", args: []string{"--host", "worker1", "--to", "worker2", "--yes"},
			code: exitUsage, want: []string{"clone worker1's configuration onto worker2", "pass --rewrite-hostname", "nothing was uploaded"}},
		{name: "not a terminal without --yes", args: []string{"--host", "worker1"},
			code: exitUsage, want: []string{"not a terminal", "pass --yes"}},
		{name: "sentinel present", args: []string{"--host", "worker1", "--yes"},
			setup: func() func() {
				if err := w1.SetSentinel(true); err != nil {
					t.Fatal(err)
				}
				return func() { _ = w1.SetSentinel(false) }
			},
			code: exitUsage, want: []string{"worker1 cannot take an import now", "DISALLOW_UI_FILE_SYSTEM", "nothing was uploaded"}},
		{name: "unit unreachable", args: []string{"--host", "worker1", "--yes"},
			setup: func() func() {
				if err := w1.SetOffline(true); err != nil {
					t.Fatal(err)
				}
				return func() { _ = w1.SetOffline(false) }
			},
			code: exitFailure, want: []string{"worker1 cannot take an import now", "unreachable", "nothing was uploaded"}},
		{name: "safety snapshot fails", cfg: slowExport, args: []string{"--host", "worker1", "--yes"},
			setup: func() func() {
				w1.SetExportDelay(3 * time.Second)
				return func() { w1.SetExportDelay(0) }
			},
			code: exitFailure, want: []string{"safety snapshot of worker1 failed", "--no-safety-snapshot", "nothing was uploaded"}},
		{name: "dry run", args: []string{"--host", "worker1", "--dry-run"},
			code: exitOK, want: []string{"every chunk checked", "worker1 answers", "dry run", "nothing was uploaded"}},
		{name: "unknown version", args: []string{"--host", "worker1", "--version", "ffffffff", "--yes"},
			code: exitFailure, want: []string{"ffffffff"}},
		{name: "no version that early", args: []string{"--host", "worker1", "--at", "2020-01-01", "--yes"},
			code: exitFailure, want: []string{"worker1"}},
		{name: "bad time", args: []string{"--host", "worker1", "--at", "someday", "--yes"},
			code: exitUsage, want: []string{"not understood"}},
		{name: "both --at and --version", args: []string{"--host", "worker1", "--at", "latest", "--version", "abcd"},
			code: exitUsage, want: []string{"exactly one of --version ID and --at TIME"}},
		{name: "no host", args: []string{"--yes"}, code: exitUsage, want: []string{"give --host H"}},
		{name: "rewrite without --to", args: []string{"--host", "worker1", "--rewrite-hostname", "--yes"},
			code: exitUsage, want: []string{"--rewrite-hostname needs --to"}},
		{name: "unknown store", args: []string{"--host", "worker1", "--store", "nope", "--yes"},
			code: exitUsage, want: []string{"nope"}},
		{name: "both encodings", args: []string{"--host", "worker1", "--compress", "--stored", "--yes"},
			code: exitUsage, want: []string{"at most one of --compress and --stored"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				defer tt.setup()()
			}
			cfg := tt.cfg
			if cfg == "" {
				cfg = r.cfgPath
			}
			nVersions := len(r.versions())
			code, out, errs := r.runConfig(cfg, append([]string{"restore"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
			mustContain(t, "output", out+errs, tt.want...)
			for _, u := range r.cluster.Units() {
				if n := r.cluster.Unit(u).Imports(); n != 0 {
					t.Errorf("%s ran %d imports, want none", u, n)
				}
			}
			if n := len(r.versions()); n != nVersions {
				t.Errorf("%d versions after a refused restore, want %d (no safety snapshot)", n, nVersions)
			}
		})
	}
}

// TestRestoreRewriteHostname clones worker1's version onto worker2.
func TestRestoreRewriteHostname(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, rigOptions{})
	w1, w2 := r.cluster.Unit("worker1"), r.cluster.Unit("worker2")
	if err := w1.WriteCalibration("od90", "only-on-worker1", "curve_data_: [3]\n"); err != nil {
		t.Fatal(err)
	}
	src := readTree(t, w1.Dir())
	r.mustRun("backup")
	code, out, errs := r.run("restore", "--host", "worker1", "--to", "worker2", "--rewrite-hostname", "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	mustContain(t, "stderr", errs, "WARNING: cloning worker1's configuration", "onto worker2")
	mustContain(t, "stdout", out, "safety snapshot of worker2 taken", "restored and verified: worker2 matches version")
	if w1.Imports() != 0 || w2.Imports() != 1 {
		t.Errorf("imports: worker1 %d, worker2 %d; want 0 and 1", w1.Imports(), w2.Imports())
	}
	compareTrees(t, src, readTree(t, w2.Dir()))
	raw, err := os.ReadFile(filepath.Join(w2.Dir(), pioreactor.MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pioreactor.ParseMetadata(raw)
	if err != nil || m.Name != "worker2" || m.IsLeader {
		t.Errorf("metadata imported into worker2 = %+v, %v; want name worker2, not leader", m, err)
	}
}

// TestRestoreImportFailed reports the unit's own message and how to undo.
func TestRestoreImportFailed(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, rigOptions{})
	r.mustRun("backup", "--host", "worker1")
	w1 := r.cluster.Unit("worker1")
	w1.FailNextImport("Failed to backup existing DOT_PIOREACTOR")
	code, out, errs := r.run("restore", "--host", "worker1", "--yes")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitFailure, out, errs)
	}
	mustContain(t, "stderr", errs, "import into worker1 failed: Failed to backup existing DOT_PIOREACTOR",
		"to go back to the state before the restore: piosnap restore --host worker1 --version ")
	if w1.Imports() != 0 || w1.Reboots() != 0 {
		t.Errorf("worker1: %d imports, %d reboots; want none", w1.Imports(), w1.Reboots())
	}
}

// TestRestoreImportLocked waits for another import to finish and for the
// reboot after it, or gives up clearly after --lock-wait.
func TestRestoreImportLocked(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, rigOptions{})
	r.mustRun("backup", "--host", "worker1")
	w1 := r.cluster.Unit("worker1")

	t.Run("waits", func(t *testing.T) {
		// The first import holds the unit's lock until the second restore
		// has seen it, whatever the machine's load.
		w1.SetImportDelay(time.Hour)
		defer w1.SetImportDelay(0)
		code, out, errs := r.run("restore", "--host", "worker1", "--yes", "--no-safety-snapshot", "--no-wait")
		if code != exitOK {
			t.Fatalf("first restore: exit %d\n%s\n%s", code, out, errs)
		}
		mustContain(t, "stdout", out, "not waiting (--no-wait)")
		type result struct {
			code int
			errs string
		}
		done := make(chan result, 1)
		stdout := &syncBuffer{}
		go func() {
			var errw bytes.Buffer
			code := Main(context.Background(), []string{"-c", r.cfgPath, "restore", "--host", "worker1", "--yes", "--no-safety-snapshot"}, Env{
				Stdin: strings.NewReader(""), Stdout: stdout, Stderr: &errw, Getenv: func(string) string { return "" },
			})
			done <- result{code, errw.String()}
		}()
		waitFor(t, hangTimeout, "the second restore to wait for the first import", func() bool {
			return strings.Contains(stdout.String(), "worker1 is running another import; waiting") || len(done) > 0
		})
		// While the second restore waits, its version is held against
		// retention.
		if len(r.held()) == 0 {
			t.Error("the version being restored is not held against retention while the restore waits")
		}
		w1.SetImportDelay(0)
		res := <-done
		code, out, errs = res.code, stdout.String(), res.errs
		if code != exitOK {
			t.Fatalf("second restore: exit %d\n%s\n%s", code, out, errs)
		}
		if held := r.held(); len(held) != 0 {
			t.Errorf("versions still held after the restore: %v", held)
		}
		mustContain(t, "stdout", out, "worker1 is running another import; waiting", "restored and verified")
		if n := w1.Imports(); n != 2 {
			t.Errorf("worker1 ran %d imports, want 2", n)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		if err := w1.WaitRebooted(context.Background()); err != nil {
			t.Fatal(err)
		}
		before := w1.Imports()
		w1.SetImportDelay(time.Hour)
		defer w1.SetImportDelay(0)
		code, out, errs := r.run("restore", "--host", "worker1", "--yes", "--no-safety-snapshot", "--no-wait")
		if code != exitOK {
			t.Fatalf("first restore: exit %d\n%s\n%s", code, out, errs)
		}
		code, out, errs = r.run("restore", "--host", "worker1", "--yes", "--lock-wait", "1s")
		if code != exitFailure {
			t.Fatalf("exit %d, want %d\n%s\n%s", code, exitFailure, out, errs)
		}
		mustContain(t, "stderr", errs, "worker1 is still running another import after 1s", "raise --lock-wait", "nothing was uploaded")
		if n := w1.Imports(); n != before {
			t.Errorf("worker1 ran %d imports, want %d", n, before)
		}
	})
}

// TestRestoreNoComeback: the unit reboots and stays away longer than
// reboot_timeout.
func TestRestoreNoComeback(t *testing.T) {
	t.Parallel()
	// reboot_timeout also bounds the wait for the unit to go down, which a
	// loaded machine can stretch past 1 s; 5 s leaves room for that.
	r := newRestoreRig(t, rigOptions{rebootDowntime: time.Hour, rebootTimeout: "5s"})
	r.mustRun("backup", "--host", "worker1")
	start := time.Now()
	code, out, errs := r.run("restore", "--host", "worker1", "--yes")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitFailure, out, errs)
	}
	mustContain(t, "stderr", errs, "worker1 did not come back within 5s", "check its power and network",
		"to go back to the state before the restore: piosnap restore --host worker1 --version ")
	if el := time.Since(start); el > hangTimeout {
		t.Errorf("gave up after %s, want about reboot_timeout (the unit stays down an hour)", el)
	}
}

// TestRestoreAt picks the newest version at or before each --at form.
func TestRestoreAt(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, rigOptions{})
	r.mustRun("backup", "--host", "worker1")
	zipPath := filepath.Join(r.dir, "w1.zip")
	r.mustRun("export", "--host", "worker1", "--at", "latest", "-o", zipPath)
	r.mustRun("import", "--host", "worker1", "--time", "2026-05-01T10:00:00Z", zipPath)
	r.mustRun("import", "--host", "worker1", "--time", "2026-05-03T10:00:00Z", zipPath)
	ids := map[string]string{}
	var newest listedVersion
	for _, v := range r.versions() {
		ids[v.Time.UTC().Format("2006-01-02")] = v.ShortID
		if v.Time.After(newest.Time) {
			newest = v
		}
	}
	now := time.Now().UTC()
	tests := []struct {
		at   string
		want string
	}{
		{"2026-05-01", ids["2026-05-01"]},
		{"2026-05-02T23:59:00Z", ids["2026-05-01"]},
		{"2026-05-03 10:00", ids["2026-05-03"]},
		{"2026-05-03", ids["2026-05-03"]},
		{"latest", newest.ShortID},
	}
	if now.Sub(newest.Time) < time.Hour && now.After(time.Date(2026, 5, 7, 0, 0, 0, 0, time.UTC)) {
		tests = append(tests,
			struct{ at, want string }{"yesterday", ids["2026-05-03"]},
			struct{ at, want string }{"3d-ago", ids["2026-05-03"]})
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			code, out, errs := r.run("restore", "--host", "worker1", "--at", tt.at, "--dry-run")
			if code != exitOK {
				t.Fatalf("exit %d\n%s\n%s", code, out, errs)
			}
			first, _, _ := strings.Cut(out, "\n")
			if !strings.HasPrefix(first, "version "+tt.want+" of worker1") {
				t.Errorf("--at %s picked %q, want version %s", tt.at, first, tt.want)
			}
		})
	}
}

func TestConfirm(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"y\n", true}, {"yes\n", true}, {" YES \r\n", true}, {"Y", true},
		{"n\n", false}, {"\n", false}, {"", false}, {"yes please\n", false},
	}
	for _, tt := range tests {
		var prompt bytes.Buffer
		got, err := confirm(strings.NewReader(tt.in), &prompt, "Restore? [y/N] ")
		if err != nil || got != tt.want {
			t.Errorf("confirm(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if prompt.String() != "Restore? [y/N] " {
			t.Errorf("prompt written = %q", prompt.String())
		}
	}
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, on: true, unit: "worker1", total: 2048}
	p.update(1024)
	p.update(2048)
	p.finish()
	mustContain(t, "progress", buf.String(), "uploading to worker1", " 50%", "100%", "2.0 KiB of 2.0 KiB")
	var off bytes.Buffer
	q := newProgress(&off, "worker1", 10)
	q.update(10)
	q.finish()
	if off.Len() != 0 {
		t.Errorf("progress off a terminal wrote %q", off.String())
	}
}

// TestRestoreDamagedRepository restores a version one of whose chunks is
// damaged: a dry run finds it before anything is sent, and a restore stops
// its upload short, so the unit receives no whole archive and imports
// nothing.
func TestRestoreDamagedRepository(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, rigOptions{})
	r.mustRun("backup", "--host", "worker1")
	ctx := context.Background()
	b, err := local.Open(r.repoDir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := repo.Versions(ctx)
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions = %d, %v", len(vs), err)
	}
	// Damage a frame of page-tree nodes (a pack's header, at its end, says
	// where they are): the metadata stays readable, the database does not.
	var pack string
	_ = filepath.WalkDir(filepath.Join(r.repoDir, "packs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			pack = p
		}
		return err
	})
	data, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	hlen := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := dec.DecodeAll(data[len(data)-4-hlen:len(data)-4], nil)
	if err != nil {
		t.Fatal(err)
	}
	damaged := false
	for i := 0; i+49 <= len(hdr) && !damaged; i += 49 {
		if hdr[i] == 1 { // a tree node
			off, n := binary.LittleEndian.Uint32(hdr[i+33:]), binary.LittleEndian.Uint32(hdr[i+37:])
			copy(data[off+n/4:off+n/2], bytes.Repeat([]byte("damaged"), int(n)))
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("the pack holds no page-tree node")
	}
	if err := os.WriteFile(pack, data, 0o600); err != nil {
		t.Fatal(err)
	}
	last := filepath.Base(pack)
	w1 := r.cluster.Unit("worker1")
	for _, args := range [][]string{
		{"--dry-run"},
		{"--yes", "--compress"},
		{"--yes", "--no-safety-snapshot"},
		{"--yes"},
	} {
		code, out, errs := r.run(append([]string{"restore", "--host", "worker1"}, args...)...)
		if code != exitFailure {
			t.Fatalf("restore %v: exit %d, want %d\n%s\n%s", args, code, exitFailure, out, errs)
		}
		mustContain(t, "stderr", errs, last, "damaged", "check --read-data")
		if args[0] == "--dry-run" || slices.Contains(args, "--compress") {
			mustContain(t, "stderr", errs, "nothing was uploaded")
		} else {
			mustContain(t, "stderr", errs, "imported nothing")
		}
	}
	time.Sleep(500 * time.Millisecond) // an import, had one started, would have begun by now
	if w1.Imports() != 0 || w1.Reboots() != 0 {
		t.Errorf("worker1: %d imports, %d reboots; want none", w1.Imports(), w1.Reboots())
	}
}
