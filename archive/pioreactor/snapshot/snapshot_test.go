package snapshot

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

func startCluster(t *testing.T, workers ...string) *simulator.Cluster {
	t.Helper()
	// The leader's cap on a broadcast export stays the default (120 s): a
	// shorter one can run out under qemu on a loaded machine, and the run
	// then falls back to pulling each unit directly.
	c, err := simulator.Start(context.Background(), simulator.Options{Dir: t.TempDir(), Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func client(t *testing.T, c *simulator.Cluster) *pioreactor.Client {
	t.Helper()
	cl, err := pioreactor.New(pioreactor.Config{Leader: c.LeaderURL(), Addresses: c.Addresses(), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func newStore(t *testing.T, name string) Store {
	t.Helper()
	b, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Init(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return Store{Name: name, Repo: r}
}

// unitFiles reads a unit's directory the way its export sees it.
func unitFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() || rel == "storage/pioreactor.sqlite.backup" || rel == "DISALLOW_UI_FILE_SYSTEM" || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		b, err := os.ReadFile(path)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exportVersion(t *testing.T, repo *store.Repository, v *store.Version) ([]byte, map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := repo.WriteZip(context.Background(), &buf, v); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, _ := f.Open()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
	}
	return buf.Bytes(), out
}

func TestBackupTwiceExportAndImport(t *testing.T) {
	for _, pull := range []string{PullBroadcast, PullPerUnit} {
		t.Run(pull, func(t *testing.T) {
			ctx := context.Background()
			c := startCluster(t, "worker1", "worker2", "worker3")
			st := newStore(t, "local")
			opts := Options{Client: client(t, c), Pull: pull, Zone: "UTC"}

			rep, err := Run(ctx, opts, []Store{st}, nil)
			if err != nil || len(rep.Failed()) != 0 || len(rep.Hosts) != 4 {
				t.Fatalf("first run: %+v, %v", rep, err)
			}
			for _, h := range rep.Hosts {
				if h.Via != map[string]string{PullBroadcast: "broadcast", PullPerUnit: "direct"}[pull] {
					t.Errorf("%s pulled via %s", h.Host, h.Via)
				}
			}
			if err := c.Unit("worker2").WriteCalibration("od90", "c2", "curve: [1, 2, 3]\n"); err != nil {
				t.Fatal(err)
			}
			if err := c.GrowDatabase(ctx, 256<<10); err != nil {
				t.Fatal(err)
			}
			rep2, err := Run(ctx, opts, []Store{st}, nil)
			if err != nil || len(rep2.Failed()) != 0 {
				t.Fatalf("second run: %+v, %v", rep2, err)
			}
			vs, err := st.Repo.Versions(ctx)
			if err != nil || len(vs) != 8 {
				t.Fatalf("%d versions, %v; want 8", len(vs), err)
			}
			// The newest version of each host reproduces the unit byte for byte.
			seen := map[string]bool{}
			for _, v := range vs {
				if seen[v.Host] {
					continue
				}
				seen[v.Host] = true
				_, got := exportVersion(t, st.Repo, v)
				want := unitFiles(t, c.Unit(v.Host).Dir())
				for name, data := range want {
					if !bytes.Equal(got[name], data) {
						t.Errorf("%s: %s differs in the export (%d vs %d bytes)", v.Host, name, len(got[name]), len(data))
					}
				}
				if _, ok := got[pioreactor.MetadataFile]; !ok {
					t.Errorf("%s: export lacks the metadata", v.Host)
				}
				if v.AppVersion != "26.7.2" || v.Zone != "UTC" || v.Kind != store.KindBackup {
					t.Errorf("%s: version fields %+v", v.Host, v)
				}
			}
			if rep, err := st.Repo.Check(ctx, true); err != nil || !rep.OK() {
				t.Errorf("check: %+v %v", rep, err)
			}
			// The simulator's import accepts an exported version.
			w1, err := store.VersionAt(vs, "worker1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			data, _ := exportVersion(t, st.Repo, w1)
			task, err := opts.Client.Import(ctx, "worker1", bytes.NewReader(data), int64(len(data)), nil)
			if err != nil {
				t.Fatalf("import of an exported version refused: %v", err)
			}
			if _, err := opts.Client.WaitImport(ctx, "worker1", task, pioreactor.WaitOptions{PollInterval: 50 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFailingUnitsAreReportedByName(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, "worker1", "worker2", "worker3")
	if err := c.Unit("worker2").SetSentinel(true); err != nil {
		t.Fatal(err)
	}
	if err := c.Unit("worker3").SetOffline(true); err != nil {
		t.Fatal(err)
	}
	st := newStore(t, "local")
	rep, err := Run(ctx, Options{Client: client(t, c), Pull: PullBroadcast, Zone: "UTC"}, []Store{st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	failed := strings.Join(rep.Failed(), ",")
	if failed != "worker2,worker3" {
		t.Fatalf("failed = %q, want worker2,worker3; report %+v", failed, rep)
	}
	for _, h := range rep.Hosts {
		switch h.Host {
		case "worker2":
			if !errors.Is(h.Err(), pioreactor.ErrSentinel) || !strings.Contains(h.Error, "remove ~/.pioreactor/DISALLOW_UI_FILE_SYSTEM on worker2") {
				t.Errorf("worker2: %v", h.Err())
			}
		case "worker3":
			if !errors.Is(h.Err(), pioreactor.ErrUnreachable) || !strings.Contains(h.Error, "worker3 unreachable at "+c.Unit("worker3").Addr()) {
				t.Errorf("worker3: %v", h.Err())
			}
		default:
			if !h.OK() {
				t.Errorf("%s failed: %v", h.Host, h.Err())
			}
		}
	}
	vs, _ := st.Repo.Versions(ctx)
	if len(vs) != 2 {
		t.Errorf("%d versions, want 2 (leader1, worker1)", len(vs))
	}
}

func TestBroadcastTimeoutFallsBackToUnits(t *testing.T) {
	ctx := context.Background()
	c, err := simulator.Start(ctx, simulator.Options{Dir: t.TempDir(), Workers: []string{"worker1"}, ExportTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Leader().SetExportDelay(time.Second)
	st := newStore(t, "local")
	rep, err := Run(ctx, Options{Client: client(t, c), Pull: PullBroadcast, Zone: "UTC"}, []Store{st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed()) != 0 || !strings.Contains(rep.BroadcastError, "timed out") {
		t.Errorf("report %+v", rep)
	}
	for _, h := range rep.Hosts {
		if h.Via != "direct" {
			t.Errorf("%s via %s, want direct after the leader's timeout", h.Host, h.Via)
		}
	}
}

func TestSingleUnitClusterPassThrough(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t)
	st := newStore(t, "local")
	rep, err := Run(ctx, Options{Client: client(t, c), Pull: PullBroadcast, Zone: "UTC"}, []Store{st}, nil)
	if err != nil || len(rep.Hosts) != 1 || rep.Hosts[0].Host != "leader1" || !rep.Hosts[0].OK() || rep.Hosts[0].Via != "broadcast" {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

// A store that fails does not cost the others their version.
func TestFailingStoreDoesNotCostOthers(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, "worker1")
	good := newStore(t, "good")
	bad := newStore(t, "bad")
	// Make the bad store's pack directory unwritable.
	loc := bad.Repo.Location()
	if err := os.WriteFile(filepath.Join(loc, "packs"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, Options{Client: client(t, c), Pull: PullBroadcast, Zone: "UTC"}, []Store{good, bad}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed()) != 2 {
		t.Errorf("failed = %v, want both hosts (missing from the bad store)", rep.Failed())
	}
	for _, h := range rep.Hosts {
		if h.Stores[0].Error != "" || h.Stores[0].VersionID == "" || h.Stores[1].Error == "" {
			t.Errorf("%s: %+v", h.Host, h.Stores)
		}
	}
	vs, _ := good.Repo.Versions(ctx)
	if len(vs) != 2 {
		t.Errorf("good store has %d versions", len(vs))
	}
}

// TestHostNotInCluster checks that a named host the leader does not list is
// reported as such, not as the DNS failure pulling it would give, and that
// the other named hosts are still backed up.
func TestHostNotInCluster(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, "worker1")
	st := newStore(t, "local")
	rep, err := Run(ctx, Options{Client: client(t, c), Pull: PullBroadcast, Zone: "UTC"}, []Store{st}, []string{"worker1", "worker9"})
	if err != nil {
		t.Fatal(err)
	}
	if failed := strings.Join(rep.Failed(), ","); failed != "worker9" {
		t.Fatalf("failed = %q, want worker9", failed)
	}
	for _, h := range rep.Hosts {
		if h.Host == "worker9" && h.Error != "worker9 is not a unit of this cluster: the leader lists leader1, worker1; check the name" {
			t.Errorf("worker9: %q", h.Error)
		}
	}
	if vs, _ := st.Repo.Versions(ctx); len(vs) != 1 || vs[0].Host != "worker1" {
		t.Errorf("versions %v, want worker1's only", vs)
	}
}

// TestProgressCountsArchiveBytes checks that Options.Progress sees the bytes
// of every archive read, in both pull modes.
func TestProgressCountsArchiveBytes(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, "worker1")
	for _, pull := range []string{PullBroadcast, PullPerUnit} {
		var n atomic.Int64
		st := newStore(t, "local")
		rep, err := Run(ctx, Options{Client: client(t, c), Pull: pull, Zone: "UTC", Progress: func(k int64) { n.Add(k) }}, []Store{st}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, h := range rep.Hosts {
			size += h.Size
		}
		// The archives hold every byte of content, compressed: at least
		// some of it, and more than nothing.
		if n.Load() == 0 || len(rep.Failed()) != 0 {
			t.Errorf("%s: progress saw %d bytes for %d bytes of content; failed %v", pull, n.Load(), size, rep.Failed())
		}
	}
}
