// Package storetest is the conformance suite every store.Backend passes,
// and a helper that runs a real MinIO server for the S3 backend's tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/piosnap/piosnap/store"
)

// Run runs the conformance suite against backends made by open. Each
// subtest calls open once and expects an empty backend that no other
// subtest uses. Beyond the store.Backend contract, the suite requires
// that invalid names give errors wrapping fs.ErrInvalid.
func Run(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b store.Backend)
	}{
		{"Roundtrip", testRoundtrip},
		{"Overwrite", testOverwrite},
		{"WrongSize", testWrongSize},
		{"Missing", testMissing},
		{"GetRange", testGetRange},
		{"Delete", testDelete},
		{"List", testList},
		{"ListStops", testListStops},
		{"Concurrent", testConcurrent},
		{"PutThenList", testPutThenList},
		{"Cancelled", testCancelled},
		{"CancelDuringPut", testCancelDuringPut},
		{"InvalidNames", testInvalidNames},
		{"Location", testLocation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// data returns n deterministic pseudo-random bytes derived from seed.
func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// onlyReader hides every method but Read, so backends see a reader they
// cannot seek or re-read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, b store.Backend, name string, p []byte) {
	t.Helper()
	if err := b.Put(context.Background(), name, bytes.NewReader(p), int64(len(p))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(p), err)
	}
}

func get(t *testing.T, b store.Backend, name string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	p, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", name, err)
	}
	return p
}

func list(t *testing.T, b store.Backend, prefix string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	var mu sync.Mutex
	err := b.List(context.Background(), prefix, func(name string, size int64) error {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := got[name]; dup {
			return fmt.Errorf("name %q listed twice", name)
		}
		got[name] = size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func wantMissing(t *testing.T, b store.Backend, name string) {
	t.Helper()
	ctx := context.Background()
	if size, err := b.Stat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(%q) = %d, %v; want an error wrapping fs.ErrNotExist", name, size, err)
	}
	rc, err := b.Get(ctx, name)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(%q) error = %v; want an error wrapping fs.ErrNotExist", name, err)
	}
}

func testRoundtrip(t *testing.T, b store.Backend) {
	tests := []struct {
		name     string
		size     int
		seekable bool
	}{
		{"empty", 0, true},
		{"one-byte", 1, true},
		{"small", 4093, true},
		{"small-stream", 4093, false},
		{"20MiB", 20 << 20, true},
		{"20MiB-stream", 20 << 20, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "roundtrip/" + tt.name
			want := data(uint64(i), tt.size)
			var r io.Reader = bytes.NewReader(want)
			if !tt.seekable {
				r = onlyReader{r}
			}
			if err := b.Put(context.Background(), name, r, int64(tt.size)); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := get(t, b, name); !bytes.Equal(got, want) {
				t.Errorf("Get returned %d bytes, want the %d bytes put", len(got), len(want))
			}
			size, err := b.Stat(context.Background(), name)
			if err != nil || size != int64(tt.size) {
				t.Errorf("Stat = %d, %v; want %d, nil", size, err, tt.size)
			}
		})
	}
}

func testOverwrite(t *testing.T, b store.Backend) {
	first, second := data(1, 5000), data(2, 1234)
	put(t, b, "versions/v1.json", first)
	put(t, b, "versions/v1.json", second)
	if got := get(t, b, "versions/v1.json"); !bytes.Equal(got, second) {
		t.Errorf("after overwrite Get returned %d bytes, want the second object's %d", len(got), len(second))
	}
	if got, want := list(t, b, "versions/"), map[string]int64{"versions/v1.json": 1234}; !maps.Equal(got, want) {
		t.Errorf("List after overwrite = %v, want %v", got, want)
	}
}

func testWrongSize(t *testing.T, b store.Backend) {
	ctx := context.Background()
	tests := []struct {
		name     string
		have     int
		claim    int64
		seekable bool
	}{
		{"short", 100, 200, true},
		{"short-stream", 100, 200, false},
		{"long", 300, 200, true},
		{"long-stream", 300, 200, false},
		{"empty-claims-one", 0, 1, true},
		{"one-claims-empty", 1, 0, false},
		{"negative", 10, -1, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(data(uint64(i), tt.have))
			if !tt.seekable {
				r = onlyReader{r}
			}
			fresh := "wrong/" + tt.name
			if err := b.Put(ctx, fresh, r, tt.claim); err == nil {
				t.Errorf("Put of %d bytes claiming %d succeeded; want an error", tt.have, tt.claim)
			}
			wantMissing(t, b, fresh)

			// A failed Put over an existing object keeps the old one.
			kept := "wrong/kept-" + tt.name
			old := data(99, 50)
			put(t, b, kept, old)
			r = bytes.NewReader(data(uint64(i), tt.have))
			if err := b.Put(ctx, kept, r, tt.claim); err == nil {
				t.Errorf("Put over existing object of %d bytes claiming %d succeeded; want an error", tt.have, tt.claim)
			}
			if got := get(t, b, kept); !bytes.Equal(got, old) {
				t.Errorf("after failed Put the object has %d bytes, want the previous %d", len(got), len(old))
			}
		})
	}
	want := map[string]int64{}
	for _, tt := range tests {
		want["wrong/kept-"+tt.name] = 50
	}
	if got := list(t, b, ""); !maps.Equal(got, want) {
		t.Errorf("List after failed Puts = %v, want only the kept objects %v", got, want)
	}
}

func testMissing(t *testing.T, b store.Backend) {
	wantMissing(t, b, "chunks/00/0000")
	wantMissing(t, b, "nothing")
	put(t, b, "dir/sub/obj", data(3, 10))
	wantMissing(t, b, "dir/sub/ob")
	wantMissing(t, b, "dir/sub/obj2")
}

func testGetRange(t *testing.T, b store.Backend) {
	ctx := context.Background()
	p := data(7, 1<<20+17)
	put(t, b, "packs/ab/range", p)
	for _, r := range [][2]int64{{0, 1}, {0, int64(len(p))}, {5, 4096}, {int64(len(p)) - 17, 17}, {1000, 0}} {
		rc, err := b.GetRange(ctx, "packs/ab/range", r[0], r[1])
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", r[0], r[1], err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("GetRange(%d, %d): read: %v", r[0], r[1], err)
		}
		if !bytes.Equal(got, p[r[0]:r[0]+r[1]]) {
			t.Errorf("GetRange(%d, %d) returned %d bytes that differ from the object's", r[0], r[1], len(got))
		}
	}
	if rc, err := b.GetRange(ctx, "packs/ab/missing", 0, 10); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("GetRange of a missing object = %v; want an error wrapping fs.ErrNotExist", err)
	}
	if rc, err := b.GetRange(ctx, "packs/ab/range", int64(len(p))-5, 10); err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Error("GetRange past the end succeeded; want an error")
		}
	}
}

func testDelete(t *testing.T, b store.Backend) {
	ctx := context.Background()
	if err := b.Delete(ctx, "never/existed"); err != nil {
		t.Errorf("Delete of missing object: %v; want nil", err)
	}
	put(t, b, "a/b", data(4, 10))
	put(t, b, "a/c", data(5, 10))
	for i := range 2 {
		if err := b.Delete(ctx, "a/b"); err != nil {
			t.Errorf("Delete #%d: %v; want nil", i+1, err)
		}
	}
	wantMissing(t, b, "a/b")
	if got, want := list(t, b, ""), map[string]int64{"a/c": 10}; !maps.Equal(got, want) {
		t.Errorf("List after Delete = %v, want %v", got, want)
	}
}

func testList(t *testing.T, b store.Backend) {
	objects := map[string]int64{
		"chunks/aa/aa01":        1,
		"chunks/aa/aa02":        22,
		"chunks/ab/ab01":        0,
		"chunks/ba/ba01":        333,
		"chunksx/aa01":          4,
		"versions/2026-01.json": 55,
		"versions/2026-02.json": 66,
		"lock":                  7,
		"deep/a/b/c/d/e/f":      8,
	}
	for name, size := range objects {
		put(t, b, name, data(uint64(size), int(size)))
	}
	filter := func(prefixes ...string) map[string]int64 {
		m := map[string]int64{}
		for _, p := range prefixes {
			m[p] = objects[p]
		}
		return m
	}
	tests := []struct {
		prefix string
		want   map[string]int64
	}{
		{"", objects},
		{"chunks/", filter("chunks/aa/aa01", "chunks/aa/aa02", "chunks/ab/ab01", "chunks/ba/ba01")},
		{"chunks/a", filter("chunks/aa/aa01", "chunks/aa/aa02", "chunks/ab/ab01")},
		{"chunks/aa/", filter("chunks/aa/aa01", "chunks/aa/aa02")},
		{"chunks", filter("chunks/aa/aa01", "chunks/aa/aa02", "chunks/ab/ab01", "chunks/ba/ba01", "chunksx/aa01")},
		{"versions/", filter("versions/2026-01.json", "versions/2026-02.json")},
		{"versions/2026-02", filter("versions/2026-02.json")},
		{"lock", filter("lock")},
		{"deep/a/b/c/", filter("deep/a/b/c/d/e/f")},
		{"none/", map[string]int64{}},
		{"chunks/zz/", map[string]int64{}},
	}
	for _, tt := range tests {
		if got := list(t, b, tt.prefix); !maps.Equal(got, tt.want) {
			t.Errorf("List(%q) = %v\nwant %v", tt.prefix, got, tt.want)
		}
	}
}

func testListStops(t *testing.T, b store.Backend) {
	for i := range 5 {
		put(t, b, fmt.Sprintf("stop/%d", i), data(uint64(i), 1))
	}
	stop := errors.New("stop here")
	calls := 0
	err := b.List(context.Background(), "stop/", func(string, int64) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List error = %v; want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("callback ran %d times after returning an error; want 1", calls)
	}
}

func testConcurrent(t *testing.T, b store.Backend) {
	const workers, each = 8, 6
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				p := data(uint64(w*100+i), 1000+w*10+i)
				if err := b.Put(ctx, fmt.Sprintf("conc/%d/%d", w, i), bytes.NewReader(p), int64(len(p))); err != nil {
					errs <- err
				}
				// Every worker also writes the same shared name.
				s := data(7, 2048)
				if err := b.Put(ctx, "conc/shared", bytes.NewReader(s), int64(len(s))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
	got := list(t, b, "conc/")
	if len(got) != workers*each+1 {
		t.Errorf("List found %d objects, want %d", len(got), workers*each+1)
	}
	for w := range workers {
		for i := range each {
			name := fmt.Sprintf("conc/%d/%d", w, i)
			if want := data(uint64(w*100+i), 1000+w*10+i); !bytes.Equal(get(t, b, name), want) {
				t.Errorf("%s has wrong content", name)
			}
		}
	}
	if !bytes.Equal(get(t, b, "conc/shared"), data(7, 2048)) {
		t.Errorf("conc/shared has wrong content")
	}
}

// testPutThenList checks the consistency the repository lock relies on:
// a List started after a Put returned shows the object. Two writers each
// Put an object and then List; whatever the timing, at least one of them
// must see the other's object.
func testPutThenList(t *testing.T, b store.Backend) {
	const rounds = 20
	ctx := context.Background()
	for r := range rounds {
		prefix := fmt.Sprintf("ptl/%d/", r)
		var saw [2]map[string]bool
		var errs [2]error
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				p := data(uint64(r*2+w), 16)
				if errs[w] = b.Put(ctx, fmt.Sprintf("%s%d", prefix, w), bytes.NewReader(p), int64(len(p))); errs[w] != nil {
					return
				}
				saw[w] = map[string]bool{}
				errs[w] = b.List(ctx, prefix, func(name string, _ int64) error {
					saw[w][name] = true
					return nil
				})
			})
		}
		wg.Wait()
		for w := range 2 {
			if errs[w] != nil {
				t.Fatalf("round %d, writer %d: %v", r, w, errs[w])
			}
			if own := fmt.Sprintf("%s%d", prefix, w); !saw[w][own] {
				t.Errorf("round %d: List after Put(%q) returned does not show it", r, own)
			}
		}
		if !saw[0][prefix+"1"] && !saw[1][prefix+"0"] {
			t.Errorf("round %d: each writer's List missed the other's object, so both would take the lock", r)
		}
	}
}

func testCancelled(t *testing.T, b store.Backend) {
	put(t, b, "c/exists", data(8, 10))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := data(9, 100)
	if err := b.Put(ctx, "c/new", bytes.NewReader(p), int64(len(p))); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with cancelled context = %v; want context.Canceled", err)
	}
	wantMissing(t, b, "c/new")
	if _, err := b.Stat(ctx, "c/exists"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with cancelled context = %v; want context.Canceled", err)
	}
	if rc, err := b.Get(ctx, "c/exists"); !errors.Is(err, context.Canceled) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get with cancelled context = %v; want context.Canceled", err)
	}
	if err := b.Delete(ctx, "c/exists"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with cancelled context = %v; want context.Canceled", err)
	}
	err := b.List(ctx, "c/", func(string, int64) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List with cancelled context = %v; want context.Canceled", err)
	}
	if got := get(t, b, "c/exists"); !bytes.Equal(got, data(8, 10)) {
		t.Errorf("object changed by calls with a cancelled context")
	}
}

// cancelReader cancels its context once after yielding the first after
// bytes, then keeps serving data.
type cancelReader struct {
	r      io.Reader
	after  int
	read   int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.read >= c.after {
		c.cancel()
	}
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}

func testCancelDuringPut(t *testing.T, b store.Backend) {
	old := data(10, 100)
	put(t, b, "mid/obj", old)
	for _, name := range []string{"mid/obj", "mid/new"} {
		ctx, cancel := context.WithCancel(context.Background())
		p := data(11, 4<<20)
		r := &cancelReader{r: bytes.NewReader(p), after: 1 << 20, cancel: cancel}
		err := b.Put(ctx, name, onlyReader{r}, int64(len(p)))
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put(%q) cancelled midway = %v; want context.Canceled", name, err)
		}
	}
	if got := get(t, b, "mid/obj"); !bytes.Equal(got, old) {
		t.Errorf("cancelled Put replaced the object (%d bytes, want the old %d)", len(got), len(old))
	}
	wantMissing(t, b, "mid/new")
}

func testInvalidNames(t *testing.T, b store.Backend) {
	ctx := context.Background()
	names := []string{"", "/abs", "/", "a//b", "a/", "./a", "a/./b", "..", "../x", "a/../b", "a/..", `a\b`, `..\x`, "nul\x00"}
	for _, name := range names {
		p := []byte("x")
		if err := b.Put(ctx, name, bytes.NewReader(p), 1); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Put(%q) = %v; want an error wrapping fs.ErrInvalid", name, err)
		}
		if rc, err := b.Get(ctx, name); !errors.Is(err, fs.ErrInvalid) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q) = %v; want an error wrapping fs.ErrInvalid", name, err)
		}
		if _, err := b.Stat(ctx, name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Stat(%q) = %v; want an error wrapping fs.ErrInvalid", name, err)
		}
		if err := b.Delete(ctx, name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Delete(%q) = %v; want an error wrapping fs.ErrInvalid", name, err)
		}
	}
	if got := list(t, b, ""); len(got) != 0 {
		t.Errorf("invalid names stored objects: %v", got)
	}
}

func testLocation(t *testing.T, b store.Backend) {
	if b.Location() == "" {
		t.Errorf("Location() is empty; want a description of the backend")
	}
}
