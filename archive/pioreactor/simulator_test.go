package pioreactor_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
)

// startCluster runs a simulated leader1 + worker1 + worker2 cluster.
func startCluster(t *testing.T, mod func(*simulator.Options)) *simulator.Cluster {
	t.Helper()
	opts := simulator.Options{Dir: t.TempDir(), Leader: "leader1", Workers: []string{"worker1", "worker2"},
		DBSize: 256 << 10, RebootDelay: 50 * time.Millisecond, RebootDowntime: 300 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := simulator.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func simClient(t *testing.T, cl *simulator.Cluster, mod func(*pioreactor.Config)) *pioreactor.Client {
	t.Helper()
	cfg := pioreactor.Config{Leader: cl.LeaderURL(), LeaderName: "leader1", Addresses: cl.Addresses(), Timeout: time.Minute}
	if mod != nil {
		mod(&cfg)
	}
	c, err := pioreactor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// download reads a whole export and opens it as a ZIP.
func download(t *testing.T, ex *pioreactor.Export) ([]byte, *zip.Reader) {
	t.Helper()
	defer ex.Body.Close()
	b, err := io.ReadAll(ex.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Size >= 0 && int64(len(b)) != ex.Size {
		t.Fatalf("read %d bytes, Content-Length said %d", len(b), ex.Size)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("export is not a zip: %v", err)
	}
	return b, zr
}

// lastMetadata returns the last entry named name, as Python's ZipFile.read does.
func lastMetadata(t *testing.T, zr *zip.Reader, name string) []byte {
	t.Helper()
	var f *zip.File
	for _, e := range zr.File {
		if e.Name == name {
			f = e
		}
	}
	if f == nil {
		t.Fatalf("no %s in archive", name)
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSimulatorExports(t *testing.T) {
	cl := startCluster(t, nil)
	c := simClient(t, cl, nil)
	ctx := ctxT(t)

	units, err := c.Units(ctx)
	if err != nil || !slices.Equal(units, []string{"leader1", "worker1", "worker2"}) {
		t.Fatalf("Units = %v, %v", units, err)
	}

	ex, err := c.ExportCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Layout != pioreactor.LayoutAggregate {
		t.Fatalf("cluster layout %v", ex.Layout)
	}
	_, zr := download(t, ex)
	for _, u := range units {
		m, err := pioreactor.ParseMetadata(lastMetadata(t, zr, u+"/"+pioreactor.MetadataFile))
		if err != nil || m.Name != u || m.LeaderHostname != "leader1" || m.IsLeader != (u == "leader1") {
			t.Fatalf("metadata of %s: %+v, %v", u, m, err)
		}
	}

	ex, err = c.ExportUnit(ctx, "worker1")
	if err != nil {
		t.Fatal(err)
	}
	if ex.Layout != pioreactor.LayoutSingle || ex.Filename != "worker1_dot_pioreactor.zip" {
		t.Fatalf("unit export layout %v filename %q", ex.Layout, ex.Filename)
	}
	_, zr = download(t, ex)
	raw := lastMetadata(t, zr, pioreactor.MetadataFile)
	m, err := pioreactor.ParseMetadata(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Marshal(), raw) {
		t.Fatalf("Marshal does not reproduce the unit's metadata:\n got %s\nwant %s", m.Marshal(), raw)
	}
	if at, err := m.ExportedAt(); err != nil || time.Since(at) > time.Minute {
		t.Fatalf("ExportedAt = %v, %v", at, err)
	}

	h, err := c.Health(ctx, "worker2")
	if err != nil || h.Status != "ok" || h.Unit != "worker2" {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	if err := c.Probe(ctx, "worker2"); err != nil {
		t.Fatalf("Probe of a healthy unit: %v", err)
	}
}

func TestSimulatorBlockedUnits(t *testing.T) {
	cl := startCluster(t, nil)
	c := simClient(t, cl, nil)
	ctx := ctxT(t)
	if err := cl.Unit("worker2").SetSentinel(true); err != nil {
		t.Fatal(err)
	}
	if err := cl.Unit("worker1").SetOffline(true); err != nil {
		t.Fatal(err)
	}
	w1 := c.UnitAddress("worker1")

	_, err := c.ExportUnit(ctx, "worker2")
	checkKind(t, err, pioreactor.ErrSentinel, "worker2 refuses export: remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on worker2")
	checkKind(t, c.Probe(ctx, "worker2"), pioreactor.ErrSentinel, "")
	_, err = c.ImportDirect(ctx, "worker2", strings.NewReader("x"), 1, nil)
	checkKind(t, err, pioreactor.ErrSentinel, "worker2 refuses import: remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on worker2")
	_, err = c.Import(ctx, "worker2", strings.NewReader("x"), 1, nil)
	checkKind(t, err, pioreactor.ErrLeaderMasked, "")

	_, err = c.ExportUnit(ctx, "worker1")
	checkKind(t, err, pioreactor.ErrUnreachable, "")
	if !strings.HasPrefix(err.Error(), "worker1 unreachable at "+w1+": ") {
		t.Fatalf("message %q", err)
	}
	checkKind(t, c.Probe(ctx, "worker1"), pioreactor.ErrUnreachable, "")

	// The leader silently leaves both out of the cluster archive.
	ex, err := c.ExportCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, zr := download(t, ex)
	for _, f := range zr.File {
		if !strings.HasPrefix(f.Name, "leader1/") {
			t.Fatalf("unexpected entry %s", f.Name)
		}
	}
}

func TestSimulatorImportRoundTrip(t *testing.T) {
	cl := startCluster(t, nil)
	c := simClient(t, cl, nil)
	ctx := ctxT(t)
	ex, err := c.ExportUnit(ctx, "worker1")
	if err != nil {
		t.Fatal(err)
	}
	archive, _ := download(t, ex)

	// An archive of worker1 is refused by worker2, with the unit's reason.
	_, err = c.ImportDirect(ctx, "worker2", bytes.NewReader(archive), int64(len(archive)), nil)
	checkKind(t, err, pioreactor.ErrWrongUnit, "worker2 rejects the archive: Archive prepared for worker1, cannot import into worker2; import an archive exported from worker2")

	var sent int64
	task, err := c.Import(ctx, "worker1", bytes.NewReader(archive), int64(len(archive)), func(n int64) { sent = n })
	if err != nil {
		t.Fatal(err)
	}
	if sent != int64(len(archive)) || task.TaskID == "" || task.Unit != "worker1" {
		t.Fatalf("task %+v after sending %d of %d bytes", task, sent, len(archive))
	}
	out, err := c.WaitImport(ctx, "worker1", task, pioreactor.WaitOptions{PollInterval: 20 * time.Millisecond, ComeBackTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Rebooted || out.Health.Unit != "worker1" {
		t.Fatalf("outcome %+v", out)
	}
	if n := cl.Unit("worker1").Imports(); n != 1 {
		t.Fatalf("simulator counted %d imports", n)
	}
	if n := cl.Unit("worker1").Reboots(); n != 1 {
		t.Fatalf("simulator counted %d reboots", n)
	}
}

func TestSimulatorImportLockAndFailure(t *testing.T) {
	cl := startCluster(t, nil)
	c := simClient(t, cl, nil)
	ctx := ctxT(t)
	ex, err := c.ExportUnit(ctx, "worker2")
	if err != nil {
		t.Fatal(err)
	}
	archive, _ := download(t, ex)
	fast := pioreactor.WaitOptions{PollInterval: 20 * time.Millisecond, ComeBackTimeout: time.Minute}

	cl.Unit("worker2").FailNextImport("Failed to backup existing DOT_PIOREACTOR")
	task, err := c.ImportDirect(ctx, "worker2", bytes.NewReader(archive), int64(len(archive)), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WaitImport(ctx, "worker2", task, fast)
	checkKind(t, err, pioreactor.ErrImportFailed, "")
	if !strings.Contains(err.Error(), "Failed to backup existing DOT_PIOREACTOR") {
		t.Fatalf("message %q lacks the unit's reason", err)
	}

	// The first import holds the unit's lock until the second is refused.
	cl.Unit("worker2").SetImportDelay(time.Hour)
	first, err := c.ImportDirect(ctx, "worker2", bytes.NewReader(archive), int64(len(archive)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var second *pioreactor.Task
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		second, err = c.ImportDirect(ctx, "worker2", bytes.NewReader(archive), int64(len(archive)), nil)
		if errors.Is(err, pioreactor.ErrImportLocked) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkKind(t, err, pioreactor.ErrImportLocked, "")
	if second == nil || second.RetryAfter <= 0 {
		t.Fatalf("locked reply without RetryAfter: %+v", second)
	}
	cl.Unit("worker2").SetImportDelay(0)
	if _, err := c.WaitImport(ctx, "worker2", first, fast); err != nil {
		t.Fatal(err)
	}
}

func TestSimulatorLeaderTimeoutAndAuth(t *testing.T) {
	cl := startCluster(t, func(o *simulator.Options) {
		o.ExportTimeout = 200 * time.Millisecond
		o.BasicAuth = &[2]string{"pioreactor", "pw-123"}
	})
	ctx := ctxT(t)

	anon := simClient(t, cl, nil)
	_, err := anon.Units(ctx)
	checkKind(t, err, pioreactor.ErrUnauthorized, "leader1 requires HTTP Basic credentials: set user and password_file under [pioreactor] in piosnap's configuration (or the password in $PIOSNAP_PIOREACTOR_PASSWORD)")

	c := simClient(t, cl, func(cfg *pioreactor.Config) { cfg.User, cfg.Password = "pioreactor", "pw-123" })
	cl.Unit("worker1").SetExportDelay(time.Second)
	_, err = c.ExportCluster(ctx)
	checkKind(t, err, pioreactor.ErrLeaderTimeout, "")
	// The fallback the error suggests works.
	ex, err := c.ExportUnit(ctx, "worker2")
	if err != nil {
		t.Fatal(err)
	}
	download(t, ex)
}

func checkKind(t *testing.T, err, kind error, msg string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
	if msg != "" && err.Error() != msg {
		t.Fatalf("message\n got: %s\nwant: %s", err, msg)
	}
}
