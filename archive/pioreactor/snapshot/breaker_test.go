package snapshot

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/s3"
	"github.com/piosnap/piosnap/store/storetest"
)

// countingBackend is a real backend that counts the pack uploads it is
// asked for and calls onPut before the first one.
type countingBackend struct {
	store.Backend
	mu    sync.Mutex
	puts  int
	onPut func()
}

func (b *countingBackend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if strings.HasPrefix(name, "packs/") {
		b.mu.Lock()
		b.puts++
		if b.onPut != nil {
			b.onPut()
			b.onPut = nil
		}
		b.mu.Unlock()
	}
	return b.Backend.Put(ctx, name, r, size)
}

func (b *countingBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.puts
}

// Once a store has failed in a run (here: MinIO stopped as the first pack
// goes up), the hosts after it do not try it again: they fail there at once,
// naming the earlier failure, and the other store gets every host.
func TestDeadStoreIsNotRetriedHostAfterHost(t *testing.T) {
	ctx := context.Background()
	m := storetest.StartMinIO(t)
	b, err := s3.New(s3.Config{
		Endpoint: m.Endpoint, Bucket: "breaker", PathStyle: true, AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		Retry: s3.Retry{Attempts: 3, Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, Total: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	cb := &countingBackend{Backend: b}
	repo, err := store.Init(ctx, cb)
	if err != nil {
		t.Fatal(err)
	}
	cb.onPut = m.Stop
	c := startCluster(t, "worker1", "worker2")
	good := newStore(t, "local")
	rep, err := Run(ctx, Options{Client: client(t, c), Pull: PullPerUnit, Zone: "UTC"}, []Store{good, {Name: "offsite", Repo: repo}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hosts) != 3 {
		t.Fatalf("%d hosts reported, want 3", len(rep.Hosts))
	}
	if n := cb.count(); n != 1 {
		t.Errorf("%d pack uploads tried against the stopped server; want 1 (the first, which found it down)", n)
	}
	skipped := 0
	for _, h := range rep.Hosts {
		if h.Stores[0].VersionID == "" {
			t.Errorf("%s: local store got no version: %+v", h.Host, h.Stores[0])
		}
		if h.Stores[1].Error == "" {
			t.Errorf("%s: offsite reported no error", h.Host)
		}
		if strings.Contains(h.Stores[1].Error, "left out of the rest of this run") {
			skipped++
		}
	}
	if skipped != 2 {
		t.Errorf("%d hosts name the earlier failure, want 2: %+v", skipped, rep.Hosts)
	}
}
