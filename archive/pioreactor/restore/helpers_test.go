package restore_test

import (
	"context"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// rig is a simulated cluster and a local repository holding one version
// of worker1.
type rig struct {
	cluster *simulator.Cluster
	cl      *pioreactor.Client
	st      snapshot.Store
	v       *store.Version
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	c, err := simulator.Start(ctx, simulator.Options{
		Dir: t.TempDir(), Workers: []string{"worker1", "worker2"}, DBSize: 256 << 10,
		// Down longer than WaitImport's poll interval, so a poll sees the
		// reboot.
		RebootDelay: 50 * time.Millisecond, RebootDowntime: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl, err := pioreactor.New(pioreactor.Config{Leader: c.LeaderURL(), Addresses: c.Addresses(), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	b, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{cluster: c, cl: cl, st: snapshot.Store{Name: "local", Repo: repo}}
	rep, err := r.backup(ctx, "worker1", store.KindBackup, "")
	if err != nil || len(rep.Failed()) > 0 {
		t.Fatalf("backup: %+v, %v", rep, err)
	}
	vs, err := repo.Versions(ctx)
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions: %d, %v; want 1", len(vs), err)
	}
	r.v = vs[0]
	return r
}

// backup stores one version of unit.
func (r *rig) backup(ctx context.Context, unit, kind, note string) (*snapshot.Report, error) {
	return snapshot.Run(ctx, snapshot.Options{Client: r.cl, Pull: snapshot.PullPerUnit, Zone: "UTC", Kind: kind, Note: note}, []snapshot.Store{r.st}, []string{unit})
}
