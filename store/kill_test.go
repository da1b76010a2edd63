package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// killDB returns version n of a SQLite-looking database of 1024 pages of
// 4 KiB: each version rewrites about a tenth of the pages of the one
// before, so versions share most pages, and n's content is known to the
// test without storing it.
func killDB(n int) []byte {
	const pages, ps = 1024, 4096
	b := make([]byte, pages*ps)
	for k := 0; k < pages; k++ {
		gen := 0
		if n > 0 {
			gen = n - (n-k%10+10)%10 // the last version ≤ n with k%10 == version%10
		}
		rng := rand.New(rand.NewPCG(uint64(k), uint64(gen)))
		page := b[k*ps : (k+1)*ps]
		for i := 0; i+8 <= ps; i += 8 {
			binary.LittleEndian.PutUint64(page[i:], rng.Uint64()&0x0f0f0f0f0f0f0f0f)
		}
	}
	copy(b, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(b[16:], ps)
	return b
}

// init turns the test binary into the process TestKillNineNeverDamages
// kills, when that test starts it (before any test or TestMain runs).
func init() {
	if dir := os.Getenv("PIOSNAP_KILL_REPO"); dir != "" {
		first, _ := strconv.Atoi(os.Getenv("PIOSNAP_KILL_FIRST"))
		err := backupAndForget(dir, first)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// backupAndForget backs up version after version of killDB, from version
// first on, and forgets all but the newest two after each, until it fails
// or is killed.
func backupAndForget(dir string, first int) error {
	ctx := context.Background()
	b, err := local.Open(dir)
	if err != nil {
		return err
	}
	repo, err := store.Open(ctx, b)
	if err != nil {
		return err
	}
	l, err := repo.Lock(ctx, "backup", time.Minute)
	if err != nil {
		return err
	}
	defer l.Unlock(ctx)
	for n := first; ; n++ {
		w, err := store.NewWriter(ctx, repo)
		if err != nil {
			return err
		}
		p := w.Begin("leader1")
		if _, err := p.Add(ctx, "pioreactor.sqlite", 0o644, time.Unix(0, 0), bytes.NewReader(killDB(n))); err != nil {
			return err
		}
		if res := p.Commit(ctx, store.Version{Time: time.Unix(int64(n), 0), Note: strconv.Itoa(n)}); res[0].Err != nil {
			return res[0].Err
		}
		vs, err := repo.Versions(ctx)
		if err != nil {
			return err
		}
		var drop []string
		for _, v := range vs[min(2, len(vs)):] {
			drop = append(drop, v.ID)
		}
		if _, err := repo.Forget(ctx, drop); err != nil {
			return err
		}
	}
}

// countVersions counts the manifests in the local repository at dir.
func countVersions(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, "versions"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return len(es)
}

// TestKillNineNeverDamages kills a process that backs up and forgets with
// SIGKILL at random moments: every time, `check --read-data` finds no
// damage and every version left is rebuilt byte for byte.
func TestKillNineNeverDamages(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped with -short")
	}
	ctx := context.Background()
	_, dir := newRepo(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	next := 0
	for round := 0; round < 8; round++ {
		cmd := selfCommand()
		cmd.Env = append(os.Environ(), "PIOSNAP_KILL_REPO="+dir, "PIOSNAP_KILL_FIRST="+strconv.Itoa(next))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let the helper complete a version (so each round makes
		// progress whatever the machine's load), then kill it at a random
		// moment of the next backup-and-forget cycle.
		start := time.Now()
		before := countVersions(t, dir)
		for countVersions(t, dir) == before && cmd.ProcessState == nil {
			if time.Since(start) > 2*time.Minute {
				t.Fatalf("round %d: the helper completed no version in 2 minutes:\n%s", round, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cycle := time.Since(start)
		delay := time.Duration(rng.Int64N(int64(2 * cycle)))
		time.Sleep(delay)
		_ = cmd.Process.Kill()
		err := cmd.Wait()
		if cmd.ProcessState.Exited() {
			t.Fatalf("round %d: the helper ended by itself (%v) before the kill:\n%s", round, err, out.String())
		}
		b, err := local.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		repo, err := store.Open(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := repo.Check(ctx, true)
		if err != nil || !rep.OK() {
			t.Fatalf("round %d, killed after %v: check --read-data = %+v, %v", round, delay, rep, err)
		}
		vs, err := repo.Versions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			n, err := strconv.Atoi(v.Note)
			if err != nil {
				t.Fatalf("version %s: note %q", v.ShortID(), v.Note)
			}
			next = max(next, n+1)
			if got := exported(t, repo, v)["pioreactor.sqlite"]; !bytes.Equal(got, killDB(n)) {
				t.Fatalf("round %d, killed after %v: version %d rebuilt wrongly", round, delay, n)
			}
		}
		t.Logf("round %d: killed after %v; next version %d; %d versions, %d packs, %d unused blobs, %d unindexed packs", round, delay, next, len(vs), rep.Packs, rep.Unused, rep.UnindexedPacks)
	}
	if next < 8 {
		t.Errorf("only %d versions were completed in 8 rounds", next)
	}
}
