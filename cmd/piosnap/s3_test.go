package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
	"github.com/piosnap/piosnap/store"
	localstore "github.com/piosnap/piosnap/store/local"
	"github.com/piosnap/piosnap/store/s3"
	"github.com/piosnap/piosnap/store/storetest"
)

// s3Harness is a real MinIO server and a simulated cluster, and runs Main
// against configurations that name them. Credentials reach piosnap only
// through Env.Getenv, as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
type s3Harness struct {
	t       testing.TB
	minio   *storetest.MinIO
	cluster *simulator.Cluster
	dir     string
	env     map[string]string
}

func newS3Harness(t testing.TB, dbSize int64, workers ...string) *s3Harness {
	t.Helper()
	m := storetest.StartMinIO(t)
	dir := t.TempDir()
	c, err := simulator.Start(context.Background(), simulator.Options{Dir: filepath.Join(dir, "cluster"), Workers: workers, DBSize: dbSize})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &s3Harness{t: t, minio: m, cluster: c, dir: dir, env: map[string]string{
		"AWS_ACCESS_KEY_ID": m.AccessKey, "AWS_SECRET_ACCESS_KEY": m.SecretKey,
	}}
}

// s3Store is the TOML of an s3 store on the harness's MinIO.
func (h *s3Harness) s3Store(name, bucket, prefix string) string {
	return s3StoreAt(h.minio.Endpoint, name, bucket, prefix)
}

// s3StoreAt is the TOML of an s3 store on the server at endpoint.
func s3StoreAt(endpoint, name, bucket, prefix string) string {
	return fmt.Sprintf("[[store]]\nname = %q\ntype = \"s3\"\nendpoint = %q\nbucket = %q\nprefix = %q\ntls = false\n\n",
		name, endpoint, bucket, prefix)
}

// localStore is the TOML of a local store under the harness's directory.
func (h *s3Harness) localStore(name string) string {
	return fmt.Sprintf("[[store]]\nname = %q\ntype = \"local\"\npath = %q\n\n", name, h.localPath(name))
}

func (h *s3Harness) localPath(name string) string { return filepath.Join(h.dir, "repo-"+name) }

// config writes a configuration with the given stores and returns its path.
// Each configuration gets its own state directory, as a new leader would.
func (h *s3Harness) config(name string, stores ...string) string {
	h.t.Helper()
	var addr strings.Builder
	for unit, a := range h.cluster.Addresses() {
		fmt.Fprintf(&addr, "%s = %q\n", unit, a)
	}
	text := fmt.Sprintf(`zone = "UTC"
state_dir = %q
lock_wait = "5s"

[pioreactor]
leader = %q
pull = "broadcast"

[pioreactor.addresses]
%s
%s
[log]
format = "text"
level = "info"
`, filepath.Join(h.dir, "state-"+name), h.cluster.LeaderURL(), addr.String(), strings.Join(stores, ""))
	p := filepath.Join(h.dir, name+".toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// s3Output is a goroutine-safe buffer for Main's output.
type s3Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *s3Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *s3Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// main runs piosnap with cfg and args and returns its exit code and output.
func (h *s3Harness) main(ctx context.Context, cfg string, args ...string) (code int, stdout, stderr string) {
	var out, errOut s3Output
	code = h.mainTo(ctx, &out, &errOut, cfg, args...)
	return code, out.String(), errOut.String()
}

func (h *s3Harness) mainTo(ctx context.Context, stdout, stderr io.Writer, cfg string, args ...string) int {
	env := h.env
	return Main(ctx, append([]string{"-c", cfg}, args...), Env{
		Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr,
		Getenv: func(k string) string { return env[k] },
	})
}

// mustMain runs piosnap and fails the test unless it exits 0.
func (h *s3Harness) mustMain(cfg string, args ...string) string {
	h.t.Helper()
	code, out, errOut := h.main(context.Background(), cfg, args...)
	if code != exitOK {
		h.t.Fatalf("piosnap %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// list returns `piosnap list --json`.
func (h *s3Harness) list(cfg string, args ...string) []listedVersion {
	h.t.Helper()
	out := h.mustMain(cfg, append([]string{"list", "--json"}, args...)...)
	var rows []listedVersion
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		h.t.Fatalf("list --json: %v\n%s", err, out)
	}
	return rows
}

// export writes host's latest version to a file and returns the ZIP's bytes.
func (h *s3Harness) export(cfg, host string, args ...string) []byte {
	h.t.Helper()
	p := filepath.Join(h.t.TempDir(), host+".zip")
	h.mustMain(cfg, append([]string{"export", "--host", host, "--at", "latest", "-o", p}, args...)...)
	b, err := os.ReadFile(p)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// bucket opens a backend on the harness's MinIO with a short retry policy,
// for looking at what piosnap wrote.
func (h *s3Harness) bucket(bucket, prefix string) *s3.Backend {
	h.t.Helper()
	b, err := s3.New(s3.Config{
		Endpoint: h.minio.Endpoint, Bucket: bucket, Prefix: prefix, PathStyle: true,
		AccessKey: h.minio.AccessKey, SecretKey: h.minio.SecretKey,
		Retry: s3.Retry{Attempts: 2, Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond, Total: time.Second},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// compareWithUnit checks that the exported ZIP holds every file of the unit's
// directory, byte for byte, as Pioreactor's own export would.
func compareWithUnit(t *testing.T, zipData []byte, u *simulator.Unit) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		t.Fatalf("export of %s is not a ZIP: %v", u.Name(), err)
	}
	inZip := map[string]*zip.File{}
	for _, f := range zr.File {
		inZip[f.Name] = f
	}
	n := 0
	err = filepath.WalkDir(u.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(u.Dir(), p)
		rel = filepath.ToSlash(rel)
		if rel == "storage/pioreactor.sqlite.backup" {
			return nil
		}
		f, ok := inZip[rel]
		if !ok {
			t.Errorf("export of %s lacks %s", u.Name(), rel)
			return nil
		}
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Errorf("export of %s: read %s: %v", u.Name(), rel, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("export of %s: %s differs from the unit's file (%d bytes, want %d)", u.Name(), rel, len(got), len(want))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("compared only %d files of %s; the simulator seeded more", n, u.Name())
	}
	if _, ok := inZip["pioreactor_export_metadata.json"]; !ok {
		t.Errorf("export of %s lacks pioreactor_export_metadata.json", u.Name())
	}
}

// TestS3EndToEnd runs the whole CLI with S3 as the only store: init creates
// the bucket, two backups with a change in between, list, export compared
// with the units' files, and check --read-data.
func TestS3EndToEnd(t *testing.T) {
	h := newS3Harness(t, 4<<20, "worker1")
	cfg := h.config("e2e", h.s3Store("offsite", "e2e", "lab1"))

	// Without --create-bucket, init says how to create the bucket.
	code, _, errOut := h.main(context.Background(), cfg, "init")
	if code != exitFailure || !strings.Contains(errOut, "--create-bucket") {
		t.Fatalf("init without bucket: exit %d, stderr %q; want exit 1 naming --create-bucket", code, errOut)
	}
	out := h.mustMain(cfg, "init", "--create-bucket")
	for _, want := range []string{"created bucket e2e", "created repository at s3://e2e/lab1"} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	if out := h.mustMain(cfg, "init", "--create-bucket"); !strings.Contains(out, "already initialised") {
		t.Errorf("second init: %q; want it to find the repository", out)
	}

	h.mustMain(cfg, "backup")
	first := h.list(cfg)
	if len(first) != 2 {
		t.Fatalf("after one backup, list shows %d versions, want 2 (leader1, worker1)", len(first))
	}

	if err := h.cluster.GrowDatabase(context.Background(), 256<<10); err != nil {
		t.Fatal(err)
	}
	if err := h.cluster.Unit("worker1").WriteCalibration("od90", "e2e", "curve_data_: [0.1, 0.5]\n"); err != nil {
		t.Fatal(err)
	}
	out = h.mustMain(cfg, "backup", "--json")
	var rep struct {
		Hosts []struct {
			Host   string
			Size   int64 `json:"size_bytes"`
			Stores []struct {
				Store  string
				Stored int64 `json:"stored_bytes"`
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, out)
	}
	for _, hr := range rep.Hosts {
		if len(hr.Stores) != 1 || hr.Stores[0].Store != "offsite" {
			t.Fatalf("host %s stores %+v; want one result for offsite", hr.Host, hr.Stores)
		}
		// The second run stores the change, not the whole unit again.
		if s := hr.Stores[0].Stored; s <= 0 || s >= hr.Size/2 {
			t.Errorf("second backup of %s stored %d bytes of %d; want only the change", hr.Host, s, hr.Size)
		}
	}
	all := h.list(cfg)
	if len(all) != 4 {
		t.Fatalf("after two backups, list shows %d versions, want 4", len(all))
	}
	for _, v := range all {
		if v.Store != "offsite" {
			t.Errorf("version %s in store %q, want offsite", v.ShortID, v.Store)
		}
	}
	for _, unit := range h.cluster.Units() {
		compareWithUnit(t, h.export(cfg, unit), h.cluster.Unit(unit))
	}
	if out := h.mustMain(cfg, "check", "--read-data"); !strings.Contains(out, "store offsite: no damage found") {
		t.Errorf("check --read-data: %s", out)
	}
}

// TestS3WrongCredentials: wrong keys fail with a message that says which
// key to fix and never shows the secret.
func TestS3WrongCredentials(t *testing.T) {
	h := newS3Harness(t, 1<<20)
	cfg := h.config("creds", h.s3Store("offsite", "creds", ""))
	h.mustMain(cfg, "init", "--create-bucket")
	const wrongSecret = "wrong-secret-Zq81xK"
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		want      string
		forbidden []string
	}{
		{"wrong secret key, list", map[string]string{"AWS_ACCESS_KEY_ID": h.minio.AccessKey, "AWS_SECRET_ACCESS_KEY": wrongSecret},
			[]string{"list"}, "check the secret key", []string{wrongSecret, h.minio.SecretKey}},
		{"wrong secret key, backup", map[string]string{"AWS_ACCESS_KEY_ID": h.minio.AccessKey, "AWS_SECRET_ACCESS_KEY": wrongSecret},
			[]string{"backup"}, "check the secret key", []string{wrongSecret, h.minio.SecretKey}},
		{"unknown access key", map[string]string{"AWS_ACCESS_KEY_ID": "nobody-here", "AWS_SECRET_ACCESS_KEY": h.minio.SecretKey},
			[]string{"list"}, "does not know the access key", []string{h.minio.SecretKey}},
		{"piosnap variables win", map[string]string{"PIOSNAP_S3_ACCESS_KEY": h.minio.AccessKey, "PIOSNAP_S3_SECRET_KEY": wrongSecret,
			"AWS_ACCESS_KEY_ID": h.minio.AccessKey, "AWS_SECRET_ACCESS_KEY": h.minio.SecretKey},
			[]string{"list"}, "PIOSNAP_S3_SECRET_KEY", []string{wrongSecret, h.minio.SecretKey}},
		{"no credentials", map[string]string{}, []string{"list"}, "no S3 credentials: set AWS_ACCESS_KEY_ID", nil},
		{"half set", map[string]string{"AWS_ACCESS_KEY_ID": h.minio.AccessKey}, []string{"list"}, "set both", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.env = tt.env
			code, out, errOut := h.main(context.Background(), cfg, tt.args...)
			if code != exitFailure {
				t.Errorf("exit %d, want %d", code, exitFailure)
			}
			if !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, `store "offsite"`) {
				t.Errorf("stderr %q; want it to name store offsite and say %q", errOut, tt.want)
			}
			for _, s := range tt.forbidden {
				if strings.Contains(out+errOut, s) {
					t.Errorf("output shows the secret %q:\n%s%s", s, out, errOut)
				}
			}
		})
	}
}

// TestS3TwoStoresCopyAndNewLeader: one backup writes a local and an s3
// store; copy to a fresh s3 store moves exactly the chunks it lacks; a new
// leader with only the s3 store's configuration lists and exports from the
// bucket alone.
func TestS3TwoStoresCopyAndNewLeader(t *testing.T) {
	h := newS3Harness(t, 4<<20, "worker1")
	local, offsite, fresh := h.localStore("local"), h.s3Store("offsite", "two", "offsite"), h.s3Store("fresh", "copy", "")
	cfg := h.config("two", local, offsite, fresh)
	h.mustMain(cfg, "init", "--create-bucket")

	out := h.mustMain(cfg, "backup", "--store", "local", "--store", "offsite")
	if n := strings.Count(out, " ok "); n != 4 {
		t.Errorf("backup reported %d ok lines, want 4 (2 hosts x 2 stores):\n%s", n, out)
	}
	byStore := map[string][]string{}
	for _, v := range h.list(cfg) {
		byStore[v.Store] = append(byStore[v.Store], v.ID)
	}
	for _, ids := range byStore {
		sort.Strings(ids)
	}
	if len(byStore["local"]) != 2 || !slices.Equal(byStore["local"], byStore["offsite"]) || len(byStore["fresh"]) != 0 {
		t.Fatalf("versions by store %v; want the same 2 in local and offsite, none in fresh", byStore)
	}

	copyOnce := func(args ...string) store.CopyReport {
		t.Helper()
		out := h.mustMain(cfg, append([]string{"copy", "--from", "local", "--to", "fresh", "--json"}, args...)...)
		var res copyResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("copy --json: %v\n%s", err, out)
		}
		return *res.Report
	}
	fb := h.bucket("copy", "")
	blobs0 := localBlobs(t, h.localPath("local"))
	// One host first, then the rest: together they send every blob once.
	worker := copyOnce("--host", "worker1")
	if len(worker.Copied) != 1 || worker.Present != 0 || worker.Chunks == 0 {
		t.Errorf("copy --host worker1: %+v; want worker1's one version", worker)
	}
	rep := copyOnce()
	if len(rep.Copied) != 1 || rep.Present != 1 {
		t.Errorf("first full copy: copied %v, %d present; want leader1's version copied, worker1's present", rep.Copied, rep.Present)
	}
	sentChunks, sentBytes := worker.Chunks+rep.Chunks, worker.Bytes+rep.Bytes
	if want := repoBytes(t, fb); sentChunks != len(blobs0) || sentBytes != want {
		t.Errorf("the two copies sent %d blobs, %d bytes; want all %d blobs once, %d bytes (what the bucket holds)", sentChunks, sentBytes, len(blobs0), want)
	}
	if got := repoBlobs(t, fb); !maps.Equal(got, blobs0) {
		t.Errorf("fresh bucket holds %d blobs, local %d; want the same set and sizes", len(got), len(blobs0))
	}

	// A change reaches only the local store; the next copy sends only it.
	if err := h.cluster.GrowDatabase(context.Background(), 512<<10); err != nil {
		t.Fatal(err)
	}
	h.mustMain(cfg, "backup", "--store", "local")
	blobs1 := localBlobs(t, h.localPath("local"))
	var newCount int
	for c := range blobs1 {
		if _, ok := blobs0[c]; !ok {
			newCount++
		}
	}
	before := repoBytes(t, fb)
	rep = copyOnce()
	if len(rep.Copied) != 2 || rep.Present != 2 {
		t.Errorf("second copy: copied %d, %d present; want 2 and 2", len(rep.Copied), rep.Present)
	}
	if want := repoBytes(t, fb) - before; rep.Chunks != newCount || rep.Bytes != want {
		t.Errorf("second copy sent %d blobs, %d bytes; want exactly the %d new blobs, %d bytes", rep.Chunks, rep.Bytes, newCount, want)
	}
	if rep = copyOnce(); len(rep.Copied) != 0 || rep.Chunks != 0 || rep.Present != 4 {
		t.Errorf("third copy: %+v; want nothing sent, 4 present", rep)
	}
	if out := h.mustMain(cfg, "copy", "--from", "local", "--to", "fresh"); !strings.Contains(out, "copy local -> fresh: 0 versions copied, 4 already there") {
		t.Errorf("copy text report: %q", out)
	}

	// A new leader: only the s3 store in its configuration, a fresh state
	// directory, no local repository.
	newLeader := h.config("new-leader", fresh)
	rows := h.list(newLeader)
	var ids []string
	for _, v := range rows {
		ids = append(ids, v.ID)
	}
	sort.Strings(ids)
	localRows := h.list(cfg, "--store", "local")
	var want []string
	for _, v := range localRows {
		want = append(want, v.ID)
	}
	sort.Strings(want)
	if !slices.Equal(ids, want) {
		t.Errorf("new leader lists %v, want the local store's %v", ids, want)
	}
	for _, unit := range h.cluster.Units() {
		fromBucket := h.export(newLeader, unit)
		if !bytes.Equal(fromBucket, h.export(cfg, unit, "--store", "local")) {
			t.Errorf("%s: the new leader's export differs from the local store's", unit)
		}
		compareWithUnit(t, fromBucket, h.cluster.Unit(unit))
	}
	// Restore works from the bucket alone too, and its safety snapshot
	// lands there.
	if err := h.cluster.Unit("worker1").WriteCalibration("od90", "after-copy", "curve_data_: [1, 2]\n"); err != nil {
		t.Fatal(err)
	}
	if out := h.mustMain(newLeader, "restore", "--host", "worker1", "--at", "latest", "--yes"); !strings.Contains(out, "restored and verified") {
		t.Errorf("restore on the new leader: %s", out)
	}
	safety := 0
	for _, v := range h.list(newLeader) {
		if v.Kind == store.KindSafety && v.Host == "worker1" {
			safety++
		}
	}
	if safety != 1 {
		t.Errorf("the new leader's store holds %d safety versions of worker1, want 1", safety)
	}
	if out := h.mustMain(newLeader, "check", "--read-data"); !strings.Contains(out, "store fresh: no damage found") {
		t.Errorf("check on the new leader: %s", out)
	}
}

// localBlobs lists the blobs of a local repository with their sizes.
func localBlobs(t *testing.T, dir string) map[store.ChunkID]int64 {
	t.Helper()
	b, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return repoBlobs(t, b)
}

// repoBlobs lists the blobs of the repository on b with their sizes.
func repoBlobs(t *testing.T, b store.Backend) map[store.ChunkID]int64 {
	t.Helper()
	r, err := store.Open(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Chunks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// repoBytes sums the sizes of the packs, index objects and manifests on b.
func repoBytes(t *testing.T, b store.Backend) int64 {
	t.Helper()
	var n int64
	for _, prefix := range []string{"packs/", "index/", "versions/"} {
		if err := b.List(context.Background(), prefix, func(_ string, size int64) error { n += size; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// pausedAfterPack starts a gate in front of the harness's MinIO and the
// returned configuration's s3 store behind it, with the gate set to hold
// every request once a pack has been stored. Call it before the run; after
// waitPaused, the run is paused in the middle: a pack is in the bucket,
// more of the run is to come and no version is visible yet, however fast
// or slow the machine is.
func (h *s3Harness) pausedAfterPack(name string, stores func(s3 string) []string) (cfg string, g *storetest.Gate) {
	h.t.Helper()
	g = storetest.StartGate(h.t, h.minio)
	cfg = h.config(name, stores(g.Endpoint)...)
	h.mustMain(cfg, "init", "--create-bucket")
	g.HoldAfter("/packs/")
	return cfg, g
}

// waitPaused waits until g holds a request of the run, and fails the test
// if the run ends first.
func waitPaused(t testing.TB, g *storetest.Gate, done <-chan int) {
	t.Helper()
	select {
	case <-g.Held():
	case code := <-done:
		t.Fatalf("the run ended (exit %d) before it stored a pack and went on", code)
	case <-time.After(2 * time.Minute):
		t.Fatal("the run stored no pack and went on within 2 minutes")
	}
}

// waitOutput waits until o contains s.
func waitOutput(t *testing.T, o *s3Output, s string) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %v; output so far:\n%s", s, hangTimeout, o)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestS3MinIOFaults stops MinIO while the leader's database is being
// stored. Stopped for good (the run is then interrupted, as systemd or an
// operator would), it leaves no visible version and the next run succeeds;
// restarted, the run recovers through retries. A gate in front of MinIO
// pauses each run after its first pack, so the fault always lands in the
// middle of the run (the whole upload takes about a second, which a loaded
// machine's scheduling can swallow).
func TestS3MinIOFaults(t *testing.T) {
	h := newS3Harness(t, 48<<20)
	t.Run("stopped", func(t *testing.T) {
		h.t = t
		cfg, g := h.pausedAfterPack("stopped", func(ep string) []string {
			return []string{s3StoreAt(ep, "offsite", "faults", "stopped")}
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errOut s3Output
		done := make(chan int, 1)
		go func() { done <- h.mainTo(ctx, &out, &errOut, cfg, "backup") }()
		waitPaused(t, g, done)
		h.minio.Stop()
		g.Release()
		waitOutput(t, &errOut, "retrying s3 request")
		cancel()
		h.minio.Start() // lets the interrupted run release its lock
		if code := <-done; code != exitInterrupted || !strings.Contains(errOut.String(), "nothing partial was made visible") {
			t.Fatalf("interrupted backup: exit %d, stderr:\n%s", code, errOut.String())
		}
		if rows := h.list(cfg); len(rows) != 0 {
			t.Fatalf("after the interrupted backup, list shows %d versions; want none", len(rows))
		}
		if out := h.mustMain(cfg, "list"); !strings.Contains(out, "no versions yet") {
			t.Errorf("list: %q", out)
		}
		h.mustMain(cfg, "backup")
		if rows := h.list(cfg); len(rows) != 1 {
			t.Fatalf("after the next backup, list shows %d versions; want 1", len(rows))
		}
		if out := h.mustMain(cfg, "check", "--read-data"); !strings.Contains(out, "store offsite: no damage found") {
			t.Errorf("check --read-data: %s", out)
		}
		compareWithUnit(t, h.export(cfg, "leader1"), h.cluster.Leader())
	})
	t.Run("bucket removed", func(t *testing.T) {
		// The s3 store fails for good in the middle of the run; the local
		// store still gets its version and the run reports the failure.
		h.t = t
		cfg, g := h.pausedAfterPack("removed", func(ep string) []string {
			return []string{h.localStore("local"), s3StoreAt(ep, "offsite", "removed", "")}
		})
		var out, errOut s3Output
		done := make(chan int, 1)
		go func() { done <- h.mainTo(context.Background(), &out, &errOut, cfg, "backup") }()
		waitPaused(t, g, done)
		mc, err := minio.New(h.minio.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(h.minio.AccessKey, h.minio.SecretKey, "")})
		if err != nil {
			t.Fatal(err)
		}
		if err := mc.RemoveBucketWithOptions(context.Background(), "removed", minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Fatal(err)
		}
		g.Release()
		code := <-done
		if code == exitOK {
			t.Fatalf("backup with a removed bucket: exit 0; want a failure report\n%s", out.String())
		}
		report := out.String()
		if !strings.Contains(report, "ok      store local") || !strings.Contains(report, "FAILED  store offsite") || !strings.Contains(report, "--create-bucket") {
			t.Errorf("backup report; want local ok and offsite FAILED naming --create-bucket:\n%s", report)
		}
		if rows := h.list(cfg, "--store", "local"); len(rows) != 1 {
			t.Errorf("local store holds %d versions; want 1", len(rows))
		}
		if out := h.mustMain(cfg, "check", "--read-data", "--store", "local"); !strings.Contains(out, "no damage found") {
			t.Errorf("check local: %s", out)
		}
	})
	t.Run("restarted", func(t *testing.T) {
		h.t = t
		cfg, g := h.pausedAfterPack("restarted", func(ep string) []string {
			return []string{s3StoreAt(ep, "offsite", "faults", "restarted")}
		})
		var out, errOut s3Output
		done := make(chan int, 1)
		go func() { done <- h.mainTo(context.Background(), &out, &errOut, cfg, "backup") }()
		waitPaused(t, g, done)
		h.minio.Stop()
		g.Release()
		waitOutput(t, &errOut, "retrying s3 request")
		// The retries wait at the gate while MinIO starts, so the run's
		// retry budget is not raced against how long a loaded machine
		// takes to start it.
		g.Hold()
		h.minio.Start()
		g.Release()
		if code := <-done; code != exitOK {
			t.Fatalf("backup across a MinIO restart: exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
		}
		if !strings.Contains(out.String(), "leader1") || !strings.Contains(out.String(), " ok ") {
			t.Errorf("backup report: %s", out.String())
		}
		if rows := h.list(cfg); len(rows) != 1 {
			t.Fatalf("list shows %d versions; want 1", len(rows))
		}
		if out := h.mustMain(cfg, "check", "--read-data"); !strings.Contains(out, "store offsite: no damage found") {
			t.Errorf("check --read-data: %s", out)
		}
		compareWithUnit(t, h.export(cfg, "leader1"), h.cluster.Leader())
	})
}

// benchDBSize is the leader database size for a benchmark:
// $PIOSNAP_BENCH_DB_MIB MiB, else def MiB.
func benchDBSize(b *testing.B, def int64) int64 {
	b.Helper()
	mib := def
	if v := os.Getenv("PIOSNAP_BENCH_DB_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("PIOSNAP_BENCH_DB_MIB=%q: want a positive number of MiB", v)
		}
		mib = n
	}
	return mib << 20
}

// bucketBytes sums the sizes of every object in b.
func bucketBytes(tb testing.TB, b *s3.Backend) int64 {
	tb.Helper()
	var n int64
	if err := b.List(context.Background(), "", func(_ string, size int64) error { n += size; return nil }); err != nil {
		tb.Fatal(err)
	}
	return n
}

func fileSize(tb testing.TB, p string) int64 {
	tb.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkS3NightlyChange measures what a nightly backup uploads to S3
// after the leader's database grew by 1%, next to the size of that growth.
// The database is 256 MiB unless $PIOSNAP_BENCH_DB_MIB says otherwise.
//
//	go test ./cmd/piosnap -run '^$' -bench S3NightlyChange -benchtime 5x
func BenchmarkS3NightlyChange(b *testing.B) {
	h := newS3Harness(b, benchDBSize(b, 256))
	cfg := h.config("nightly", h.s3Store("offsite", "nightly", ""))
	h.mustMain(cfg, "init", "--create-bucket")
	h.mustMain(cfg, "backup")
	bucket := h.bucket("nightly", "")
	db := h.cluster.DatabasePath()
	var uploaded, change int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		before := fileSize(b, db)
		if err := h.cluster.GrowDatabase(context.Background(), before/100); err != nil {
			b.Fatal(err)
		}
		change += fileSize(b, db) - before
		stored := bucketBytes(b, bucket)
		b.StartTimer()
		h.mustMain(cfg, "backup")
		b.StopTimer()
		uploaded += bucketBytes(b, bucket) - stored
		b.StartTimer()
	}
	b.ReportMetric(float64(change)/float64(b.N), "change-B/op")
	b.ReportMetric(float64(uploaded)/float64(b.N), "uploaded-B/op")
	b.ReportMetric(float64(uploaded)/float64(change), "uploaded/change")
	b.ReportMetric(float64(fileSize(b, db)), "db-B")
}

// BenchmarkS3BackupPeakRSS runs the real piosnap binary, built for the
// benchmark, as a child process that backs up a 1 GiB leader database
// ($PIOSNAP_BENCH_DB_MIB overrides) into an empty S3 prefix, and reports
// its peak resident set size (through GNU time, see runMeasured) and
// throughput. Seeding 1 GiB takes a minute or two.
//
//	go test ./cmd/piosnap -run '^$' -bench S3BackupPeakRSS -benchtime 1x -timeout 30m
func BenchmarkS3BackupPeakRSS(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "piosnap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	h := newS3Harness(b, benchDBSize(b, 1024))
	dbSize := fileSize(b, h.cluster.DatabasePath())
	var peak float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg := h.config(fmt.Sprintf("rss%d", i), h.s3Store("offsite", "rss", fmt.Sprintf("run%d", i)))
		h.mustMain(cfg, "init", "--create-bucket")
		env := []string{"AWS_ACCESS_KEY_ID=" + h.minio.AccessKey, "AWS_SECRET_ACCESS_KEY=" + h.minio.SecretKey, "TMPDIR=" + b.TempDir()}
		b.StartTimer()
		_, rss, err := runMeasured(b, env, bin, "-c", cfg, "backup")
		b.StopTimer()
		if err != nil {
			b.Fatalf("piosnap backup: %v", err)
		}
		peak = max(peak, rss)
		b.StartTimer()
	}
	b.ReportMetric(peak, "peak-RSS-MiB")
	b.ReportMetric(float64(dbSize)/(1<<20), "db-MiB")
	b.ReportMetric(float64(dbSize)*float64(b.N)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
}
