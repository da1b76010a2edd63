package restore_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

func TestCheckVersion(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	traversing := *r.v
	traversing.Entries = append(append([]store.Entry(nil), r.v.Entries...), store.Entry{Name: "../outside", Mode: 0o644})
	absolute := *r.v
	absolute.Entries = append(append([]store.Entry(nil), r.v.Entries...), store.Entry{Name: "/etc/passwd", Mode: 0o644})
	tests := []struct {
		name     string
		v        *store.Version
		target   string
		rewrite  bool
		replaced bool
		err      string // a part of the error; "" for none
	}{
		{"onto its own unit", r.v, "worker1", false, false, ""},
		{"own unit, rewrite asked", r.v, "worker1", true, false, ""},
		{"onto another unit, rewritten", r.v, "worker2", true, true, ""},
		{"onto another unit, not rewritten", r.v, "worker2", false, false, "--rewrite-hostname"},
		{"traversing entry", &traversing, "worker1", false, false, "../outside"},
		{"absolute entry", &absolute, "worker1", false, false, "/etc/passwd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			replace, err := restore.CheckVersion(ctx, r.st.Repo, tt.v, tt.target, tt.rewrite)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one naming %q", err, tt.err)
			case (replace != nil) != tt.replaced:
				t.Fatalf("replacements %v, want some: %v", replace, tt.replaced)
			}
			if !tt.replaced {
				return
			}
			m, err := pioreactor.ParseMetadata(replace[pioreactor.MetadataFile])
			if err != nil || m.Name != tt.target {
				t.Errorf("rewritten metadata %+v (%v), want it to name %s", m, err, tt.target)
			}
		})
	}
}

// TestSourceReplace checks that a rewritten archive is deterministic, its
// predicted size exact, its entries STORED or DEFLATE as asked, and the
// metadata entry replaced.
func TestSourceReplace(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	replace, err := restore.CheckVersion(ctx, r.st.Repo, r.v, "worker2", true)
	if err != nil || len(replace) != 1 {
		t.Fatalf("CheckVersion onto worker2 = %v, %v; want one replacement", replace, err)
	}
	for _, c := range []struct {
		rep     map[string][]byte
		deflate bool
	}{{nil, false}, {replace, false}, {nil, true}, {replace, true}} {
		rep := c.rep
		src, err := restore.NewSource(ctx, r.st.Repo, r.v, rep, c.deflate)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if err := src.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
		size := src.Size()
		var out1, out2 bytes.Buffer
		for _, out := range []*bytes.Buffer{&out1, &out2} {
			body, wait := src.Stream(ctx)
			if _, err := out.ReadFrom(body); err != nil {
				t.Fatal(err)
			}
			if err := wait(); err != nil {
				t.Fatal(err)
			}
		}
		if int64(out1.Len()) != size || !bytes.Equal(out1.Bytes(), out2.Bytes()) {
			t.Errorf("replace %v: streamed %d and %d bytes (equal %v), size predicted %d", rep != nil, out1.Len(), out2.Len(), bytes.Equal(out1.Bytes(), out2.Bytes()), size)
		}
		zr, err := zip.NewReader(bytes.NewReader(out1.Bytes()), int64(out1.Len()))
		if err != nil {
			t.Fatal(err)
		}
		var meta []byte
		for _, f := range zr.File {
			if want := map[bool]uint16{false: zip.Store, true: zip.Deflate}[c.deflate && !f.FileInfo().IsDir()]; f.Method != want {
				t.Errorf("deflate %v: %s has method %d, want %d", c.deflate, f.Name, f.Method, want)
			}
			if f.Name == pioreactor.MetadataFile {
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				var b bytes.Buffer
				if _, err := b.ReadFrom(rc); err != nil {
					t.Fatal(err)
				}
				rc.Close()
				meta = b.Bytes()
			}
		}
		m, err := pioreactor.ParseMetadata(meta)
		if want := map[bool]string{false: "worker1", true: "worker2"}[rep != nil]; err != nil || m.Name != want {
			t.Errorf("replace %v, deflate %v: metadata names %q (%v), want %q", rep != nil, c.deflate, m.Name, err, want)
		}
	}
}

// TestSourceStreamCancelled checks that a stream whose context ends stops
// with the context's error instead of a whole archive.
func TestSourceStreamCancelled(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src, err := restore.NewSource(context.Background(), r.st.Repo, r.v, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body, wait := src.Stream(ctx)
	var out bytes.Buffer
	_, rerr := out.ReadFrom(body)
	body.Close()
	if werr := wait(); werr == nil || rerr == nil {
		t.Errorf("cancelled stream: read error %v, writer error %v, %d of %d bytes; want both errors", rerr, werr, out.Len(), src.Size())
	}
}

// readSignal is a backend that closes packRead when a pack is first read.
type readSignal struct {
	store.Backend
	once     sync.Once
	packRead chan struct{}
}

func (b *readSignal) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "packs/") {
		b.once.Do(func() { close(b.packRead) })
	}
	return b.Backend.GetRange(ctx, name, offset, length)
}

// TestSourcePrime checks that a primed archive reads packs before Stream
// is called, that the stream Stream then returns is the whole archive, and
// that Close ends a primed stream nothing took.
func TestSourcePrime(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	lb, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	be := &readSignal{Backend: lb, packRead: make(chan struct{})}
	repo, err := store.Init(ctx, be)
	if err != nil {
		t.Fatal(err)
	}
	own := &rig{cluster: r.cluster, cl: r.cl, st: snapshot.Store{Name: "signal", Repo: repo}}
	if rep, err := own.backup(ctx, "worker1", store.KindBackup, ""); err != nil || len(rep.Failed()) > 0 {
		t.Fatalf("backup: %+v, %v", rep, err)
	}
	vs, err := repo.Versions(ctx)
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions: %d, %v; want 1", len(vs), err)
	}
	stream := func(src *restore.Source) []byte {
		t.Helper()
		body, wait := src.Stream(ctx)
		var out bytes.Buffer
		_, rerr := out.ReadFrom(body)
		body.Close()
		if err := errors.Join(rerr, wait()); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	primedRead := func(src *restore.Source) {
		t.Helper()
		src.Prime(ctx)
		select {
		case <-be.packRead:
		case <-time.After(2 * time.Minute): // only bounds a hang
			t.Fatal("a primed archive read no pack before Stream was called")
		}
	}

	plain, err := restore.NewSource(ctx, repo, vs[0], nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	want := stream(plain)
	be.once, be.packRead = sync.Once{}, make(chan struct{})

	primed, err := restore.NewSource(ctx, repo, vs[0], nil, false)
	if err != nil {
		t.Fatal(err)
	}
	primedRead(primed)
	if got := stream(primed); !bytes.Equal(got, want) || int64(len(got)) != primed.Size() {
		t.Errorf("primed stream: %d bytes (equal %v), want the %d of an unprimed one", len(got), bytes.Equal(got, want), len(want))
	}
	if got := stream(primed); !bytes.Equal(got, want) {
		t.Errorf("second stream of a primed archive: %d bytes, want the %d of the first", len(got), len(want))
	}
	if err := primed.Close(); err != nil {
		t.Fatal(err)
	}
	be.once, be.packRead = sync.Once{}, make(chan struct{})

	unused, err := restore.NewSource(ctx, repo, vs[0], nil, false)
	if err != nil {
		t.Fatal(err)
	}
	primedRead(unused)
	closed := make(chan error)
	go func() { closed <- unused.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close of an untaken primed stream: %v", err)
		}
	case <-time.After(2 * time.Minute): // only bounds a hang
		t.Fatal("Close did not end a primed stream nothing took")
	}
}
