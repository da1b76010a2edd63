package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountFS mounts a file system on dir for the test (tmpfs of the given
// size, or, with size "", a read-only bind mount of dir onto itself) and
// unmounts it at the end. Mounting needs root; without it the test is
// skipped, except under CI, which runs as root and must not skip.
func mountFS(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) error {
		out, err := exec.Command("mount", args...).CombinedOutput()
		if err != nil {
			return errors.New(strings.TrimSpace(string(out)) + ": " + err.Error())
		}
		return nil
	}
	var err error
	if size != "" {
		err = run("-t", "tmpfs", "-o", "size="+size, "tmpfs", dir)
	} else if err = run("--bind", dir, dir); err == nil {
		if err = run("-o", "remount,bind,ro", dir); err != nil {
			_ = exec.Command("umount", dir).Run()
		}
	}
	if err != nil {
		msg := "mount on " + dir + " (needs root): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fillFS writes a file into dir until its file system is full, leaving
// about keep bytes free.
func fillFS(t *testing.T, dir string, keep int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	free := int64(st.Bavail) * int64(st.Bsize)
	buf := make([]byte, 4096)
	for free-keep >= int64(len(buf)) {
		n, err := f.Write(buf)
		free -= int64(n)
		if err != nil {
			break // full already
		}
	}
	if keep == 0 {
		for {
			if _, err := f.Write(buf[:1]); err != nil {
				break
			}
		}
	}
}

// backupReport runs `backup --json` and returns its exit code and report.
func (h *s3Harness) backupReport(cfg string) (int, backupJSON, string) {
	h.t.Helper()
	code, out, errOut := h.main(context.Background(), cfg, "backup", "--json")
	var rep backupJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		h.t.Fatalf("backup --json (exit %d): %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
	}
	return code, rep, errOut
}

// backupJSON is `backup --json` as a script reads it.
type backupJSON struct {
	Hosts []struct {
		Host   string `json:"host"`
		Error  string `json:"error"`
		Stores []struct {
			Store       string `json:"store"`
			Version     string `json:"version"`
			StoredBytes int64  `json:"stored_bytes"`
			Error       string `json:"error"`
		} `json:"stores"`
	} `json:"hosts"`
}

// storeOutcome returns, per host, the version or error the store got.
func (r backupJSON) storeOutcome(name string) (versions, errs map[string]string) {
	versions, errs = map[string]string{}, map[string]string{}
	for _, h := range r.Hosts {
		for _, s := range h.Stores {
			if s.Store != name {
				continue
			}
			if s.Error != "" {
				errs[h.Host] = s.Error
			} else {
				versions[h.Host] = s.Version
			}
		}
	}
	return versions, errs
}

// A local repository on a full or read-only file system must not cost the
// S3 store its versions: every host is stored there, the local store is
// reported failed, and the run exits 3.
func TestBackupLocalStoreUnwritable(t *testing.T) {
	h := newS3Harness(t, 4<<20, "worker1", "worker2")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"disk full", func(t *testing.T, dir string) { fillFS(t, dir, 0) }, "no space left on device"},
		{"read-only", func(t *testing.T, dir string) { mountFS(t, dir, "") }, "read-only file system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			name := strings.ReplaceAll(tc.name, " ", "-")
			dir := h.localPath(name)
			mountFS(t, dir, "4m")
			cfg := h.config(name, h.localStore(name), h.s3Store("offsite", "unwritable", name))
			h.mustMain(cfg, "init", "--create-bucket")
			tc.setup(t, dir)
			code, rep, errOut := h.backupReport(cfg)
			if code != exitPartial {
				t.Fatalf("exit %d, want %d (partial)\nstderr:\n%s", code, exitPartial, errOut)
			}
			versions, errs := rep.storeOutcome("offsite")
			if len(versions) != 3 || len(errs) != 0 {
				t.Errorf("offsite got versions for %v, errors %v; want all 3 hosts", versions, errs)
			}
			versions, errs = rep.storeOutcome(name)
			if len(versions) != 0 || len(errs) != 3 {
				t.Errorf("local store: versions %v, errors %v; want an error for each of the 3 hosts", versions, errs)
			}
			for host, e := range errs {
				if !strings.Contains(e, tc.want) {
					t.Errorf("%s: local store error %q does not say %q", host, e, tc.want)
				}
			}
			if rows := h.list(cfg, "--store", "offsite"); len(rows) != 3 {
				t.Errorf("offsite lists %d versions, want 3", len(rows))
			}
		})
	}
}

// A local backup that fails half-way, its disk filling up, leaves no
// damage: whatever it stored is unused, the report and check say so, and
// the next forget removes it.
func TestBackupLocalDiskFillsHalfWay(t *testing.T) {
	h := newS3Harness(t, 6<<20)
	dir := h.localPath("half")
	mountFS(t, dir, "2m")
	cfg := h.config("half", h.localStore("half"), h.s3Store("offsite", "half", ""))
	h.mustMain(cfg, "init", "--create-bucket")
	fillFS(t, dir, 512<<10)
	code, rep, errOut := h.backupReport(cfg)
	if code != exitPartial {
		t.Fatalf("exit %d, want %d\nstderr:\n%s", code, exitPartial, errOut)
	}
	_, errs := rep.storeOutcome("half")
	var stored int64
	for _, hr := range rep.Hosts {
		for _, s := range hr.Stores {
			if s.Store == "half" {
				stored += s.StoredBytes
			}
		}
	}
	// A pack that does not fit is not stored at all; packs stored before
	// it are unused until the next forget, and the report says so.
	e := errs["leader1"]
	if !strings.Contains(e, "no space left on device") || (stored > 0) != strings.Contains(e, "piosnap forget") {
		t.Errorf("local store error %q (%d bytes stored): want the cause, and that the next forget removes what was written if anything was", e, stored)
	}
	out := h.mustMain(cfg, "check", "--store", "half")
	if !strings.Contains(out, "no damage found") || (stored > 0) != strings.Contains(out, "unused") {
		t.Errorf("check after the failure (%d bytes stored):\n%s", stored, out)
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	h.mustMain(cfg, "forget", "--store", "half", "--keep-last", "3")
	if out := h.mustMain(cfg, "check", "--store", "half"); strings.Contains(out, "unused") {
		t.Errorf("check after forget still reports unused chunks:\n%s", out)
	}
	h.mustMain(cfg, "backup")
	if out := h.mustMain(cfg, "check", "--read-data"); strings.Count(out, "no damage found") != 2 {
		t.Errorf("check after the next backup:\n%s", out)
	}
}

// MinIO stopped in the middle of a backup into a local and an S3 store:
// the local store gets every host without waiting for the S3 backend's
// retry budget (8 attempts, which would log 7 retries), the S3 store is
// reported failed for each host, and the run exits 3.
func TestS3StoppedMidRunDoesNotHoldLocal(t *testing.T) {
	h := newS3Harness(t, 8<<20, "worker1", "worker2")
	cfg, g := h.pausedAfterPack("midrun", func(ep string) []string {
		return []string{h.localStore("local"), s3StoreAt(ep, "offsite", "midrun", "")}
	})
	var out, errOut s3Output
	done := make(chan int, 1)
	go func() { done <- h.mainTo(context.Background(), &out, &errOut, cfg, "backup", "--json") }()
	waitPaused(t, g, done)
	h.minio.Stop()
	g.Release()
	var code int
	select {
	case code = <-done:
	case <-time.After(10 * time.Minute):
		t.Fatal("the backup did not end")
	}
	h.minio.Start()
	if code != exitPartial {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitPartial, out.String(), errOut.String())
	}
	var rep backupJSON
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, out.String())
	}
	versions, errs := rep.storeOutcome("local")
	if len(versions) != 3 || len(errs) != 0 {
		t.Errorf("local store: versions %v, errors %v; want all 3 hosts", versions, errs)
	}
	versions, errs = rep.storeOutcome("offsite")
	if len(versions) != 0 || len(errs) != 3 {
		t.Errorf("offsite: versions %v, errors %v; want an error for each of the 3 hosts", versions, errs)
	}
	if e := errs["leader1"]; !strings.Contains(e, "stopped answering while the others waited") {
		t.Errorf("offsite's error for leader1 %q does not say why it was left out", e)
	}
	if n := strings.Count(errOut.String(), "retrying s3 request"); n == 0 || n >= 7 {
		t.Errorf("%d retries logged; want some, and fewer than the retry budget's 7:\n%s", n, errOut.String())
	}
	if rows := h.list(cfg, "--store", "local"); len(rows) != 3 {
		t.Errorf("local store lists %d versions, want 3", len(rows))
	}
	if out := h.mustMain(cfg, "check", "--read-data"); strings.Count(out, "no damage found") != 2 {
		t.Errorf("check --read-data after the run:\n%s", out)
	}
}

// With MinIO down, every command that reads serves the local store at once
// and reports the S3 store unavailable (exit 3) after a short probe, not a
// minute of retries.
func TestS3DownReadsServeOtherStores(t *testing.T) {
	h := newS3Harness(t, 1<<20, "worker1")
	cfg := h.config("down", h.localStore("local"), h.s3Store("offsite", "down", ""))
	h.mustMain(cfg, "init", "--create-bucket")
	h.mustMain(cfg, "backup")
	h.minio.Stop()
	t.Cleanup(h.minio.Start) // the harness stops it again
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout
	}{
		{[]string{"list"}, exitPartial, "local  worker1"},
		{[]string{"list", "--json"}, exitPartial, `"store": "local"`},
		{[]string{"check"}, exitPartial, "store local: no damage found"},
		{[]string{"status"}, exitPartial, "worker1"},
		{[]string{"forget", "--dry-run", "--keep-last", "3"}, exitPartial, "store local: dry run"},
		{[]string{"forget", "--keep-last", "3"}, exitPartial, "store local: removed 0 versions"},
		{[]string{"export", "--host", "worker1", "--at", "latest", "-o", filepath.Join(t.TempDir(), "w.zip")}, exitOK, "store local"},
		{[]string{"restore", "--host", "worker1", "--dry-run"}, exitOK, "dry run: every check passed"},
	} {
		t.Run(strings.Join(tc.args[:min(2, len(tc.args))], " "), func(t *testing.T) {
			code, out, errOut := h.main(context.Background(), cfg, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d; stdout should contain %q\nstdout:\n%s\nstderr:\n%s", code, tc.code, tc.want, out, errOut)
			}
			if !strings.Contains(errOut, "offsite") {
				t.Errorf("stderr does not name the unavailable store:\n%s", errOut)
			}
			if n := strings.Count(errOut, "retrying s3 request"); n > 2 {
				t.Errorf("%d retries against the stopped server; the probe allows 2:\n%s", n, errOut)
			}
		})
	}
}

// `config check` warns about an S3 credentials file that group or others
// can read, as every run does, and is quiet once it is restricted.
func TestConfigCheckWarnsAboutOpenCredentials(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "s3.credentials")
	if err := os.WriteFile(creds, []byte("access_key = AKIAEXAMPLE\nsecret_key = verysecretkey\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(creds, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "piosnap.toml")
	text := "[pioreactor]\nleader = \"localhost\"\n\n[[store]]\nname = \"offsite\"\ntype = \"s3\"\nendpoint = \"127.0.0.1:9\"\nbucket = \"b\"\ncredentials_file = " + strconv.Quote(creds) + "\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "config", "check")
	if code != exitOK || !strings.Contains(out, `warning: store "offsite": S3 credentials file `+creds+" is readable by group or others") || !strings.Contains(out, "chmod 600") {
		t.Errorf("config check with a 0644 credentials file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if strings.Contains(out+errs, "verysecretkey") {
		t.Error("config check printed the secret key")
	}
	if err := os.Chmod(creds, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cliRun(t, cfg, "config", "check"); code != exitOK || strings.Contains(out, "credentials") {
		t.Errorf("config check with a 0600 credentials file: exit %d\n%s%s", code, out, errs)
	}
}

// BenchmarkS3DeadStore times a 3-host backup into a local and an S3 store:
// healthy, with MinIO stopped in the middle of the upload, and with MinIO
// down from the start; then `list` with MinIO down. Each store starts empty,
// so the whole cluster is uploaded. The database is 48 MiB unless
// $PIOSNAP_BENCH_DB_MIB says otherwise.
//
//	go test ./cmd/piosnap -run '^$' -bench S3DeadStore -benchtime 1x
func BenchmarkS3DeadStore(b *testing.B) {
	h := newS3Harness(b, benchDBSize(b, 48), "worker1", "worker2")
	var healthy, midRun, atStart, list time.Duration
	for i := 0; i < b.N; i++ {
		h.minio.Start()
		cfg := h.config(fmt.Sprintf("ok%d", i), h.localStore(fmt.Sprintf("ok%d", i)), h.s3Store("offsite", "dead", fmt.Sprintf("ok%d", i)))
		h.mustMain(cfg, "init", "--create-bucket")
		start := time.Now()
		h.mustMain(cfg, "backup")
		healthy += time.Since(start)

		cfg, g := h.pausedAfterPack(fmt.Sprintf("dead%d", i), func(ep string) []string {
			return []string{h.localStore(fmt.Sprintf("dead%d", i)), s3StoreAt(ep, "offsite", "dead", fmt.Sprintf("dead%d", i))}
		})
		var out, errOut s3Output
		done := make(chan int, 1)
		start = time.Now()
		go func() { done <- h.mainTo(context.Background(), &out, &errOut, cfg, "backup") }()
		waitPaused(b, g, done)
		h.minio.Stop()
		g.Release()
		if code := <-done; code != exitPartial {
			b.Fatalf("backup with MinIO stopped mid-run: exit %d\n%s", code, out.String())
		}
		midRun += time.Since(start)

		start = time.Now()
		if code, out, _ := h.main(context.Background(), cfg, "backup"); code != exitPartial {
			b.Fatalf("backup with MinIO down: exit %d\n%s", code, out)
		}
		atStart += time.Since(start)
		start = time.Now()
		if code, out, _ := h.main(context.Background(), cfg, "list"); code != exitPartial {
			b.Fatalf("list with MinIO down: exit %d\n%s", code, out)
		}
		list += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(healthy.Seconds()/n, "healthy-s")
	b.ReportMetric(midRun.Seconds()/n, "stopped-mid-run-s")
	b.ReportMetric(atStart.Seconds()/n, "down-at-start-s")
	b.ReportMetric(list.Seconds()/n, "list-down-s")
}
