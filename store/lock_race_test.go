package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
	"github.com/piosnap/piosnap/store/s3"
	"github.com/piosnap/piosnap/store/storetest"
)

// The race test re-executes the test binary as several lockers. These
// environment variables tell a child what to do; TestMain runs it.
const (
	raceEnvBackend = "PIOSNAP_LOCKRACE_BACKEND" // "local" or "s3"
	raceEnvDir     = "PIOSNAP_LOCKRACE_DIR"     // local repository directory
	raceEnvS3      = "PIOSNAP_LOCKRACE_S3"      // endpoint,bucket,prefix,access,secret
	raceEnvLog     = "PIOSNAP_LOCKRACE_LOG"     // the shared enter/exit log
	raceEnvStart   = "PIOSNAP_LOCKRACE_START"   // Unix nanoseconds to start at
	raceEnvRounds  = "PIOSNAP_LOCKRACE_ROUNDS"
	raceEnvID      = "PIOSNAP_LOCKRACE_ID"
	raceEnvPeriod  = "PIOSNAP_LOCKRACE_PERIOD" // time between rounds
)

func TestMain(m *testing.M) {
	if os.Getenv(raceEnvBackend) != "" {
		if err := raceChild(); err != nil {
			fmt.Fprintln(os.Stderr, "lock race child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// raceChild takes the exclusive lock again and again with a tiny wait,
// and while holding it appends "enter ID" and "exit ID" to the shared log.
func raceChild() error {
	ctx := context.Background()
	var b store.Backend
	switch os.Getenv(raceEnvBackend) {
	case "local":
		lb, err := local.Open(os.Getenv(raceEnvDir))
		if err != nil {
			return err
		}
		b = lb
	case "s3":
		f := strings.Split(os.Getenv(raceEnvS3), ",")
		sb, err := s3.Open(ctx, s3.Config{Endpoint: f[0], Bucket: f[1], Prefix: f[2], AccessKey: f[3], SecretKey: f[4], Region: "us-east-1", PathStyle: true})
		if err != nil {
			return err
		}
		b = sb
	}
	repo, err := store.Open(ctx, b)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(os.Getenv(raceEnvLog), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer logf.Close()
	id := os.Getenv(raceEnvID)
	rounds, _ := strconv.Atoi(os.Getenv(raceEnvRounds))
	start, _ := strconv.ParseInt(os.Getenv(raceEnvStart), 10, 64)
	period, _ := time.ParseDuration(os.Getenv(raceEnvPeriod))
	for r := range rounds {
		// Every round starts at one instant in all children.
		time.Sleep(time.Until(time.Unix(0, start).Add(time.Duration(r) * period)))
		l, err := repo.Lock(ctx, "backup", time.Millisecond)
		if errors.Is(err, store.ErrLocked) {
			continue
		}
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(logf, "enter %s\n", id); err != nil {
			return err
		}
		time.Sleep(2 * time.Millisecond)
		if _, err := fmt.Fprintf(logf, "exit %s\n", id); err != nil {
			return err
		}
		if err := l.Unlock(ctx); err != nil {
			return err
		}
	}
	return nil
}

// runLockRace starts procs children of this test binary at one instant,
// each trying rounds times to take the lock with lock_wait 1ms, and checks
// from their shared log that no two ever held it at once.
func runLockRace(t *testing.T, env []string, procs, rounds int, period time.Duration) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "holders.log")
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(500 * time.Millisecond).UnixNano()
	var wg sync.WaitGroup
	errs := make([]error, procs)
	out := make([][]byte, procs)
	for i := range procs {
		cmd := selfCommand("-test.run=^$")
		cmd.Env = append(os.Environ(), env...)
		cmd.Env = append(cmd.Env,
			raceEnvLog+"="+logPath,
			raceEnvStart+"="+strconv.FormatInt(start, 10),
			raceEnvRounds+"="+strconv.Itoa(rounds),
			raceEnvPeriod+"="+period.String(),
			raceEnvID+"="+strconv.Itoa(i))
		wg.Go(func() { out[i], errs[i] = cmd.CombinedOutput() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("locker %d: %v\n%s", i, err, out[i])
		}
	}
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	holder, enters, overlaps := "", 0, 0
	for line := 1; sc.Scan(); line++ {
		what, id, _ := strings.Cut(sc.Text(), " ")
		switch {
		case what == "enter" && holder == "":
			holder = id
			enters++
		case what == "enter":
			overlaps++
			t.Errorf("line %d: locker %s took the lock while %s held it", line, id, holder)
		case what == "exit" && holder == id:
			holder = ""
		case what == "exit":
			// The second of two overlapping holders leaving.
		}
	}
	if enters == 0 {
		t.Fatal("no locker ever took the lock")
	}
	t.Logf("%d lockers x %d attempts: lock taken %d times, %d overlaps", procs, rounds, enters, overlaps)
}

func TestLockRaceLocal(t *testing.T) {
	dir := t.TempDir()
	lb, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Init(context.Background(), lb); err != nil {
		t.Fatal(err)
	}
	runLockRace(t, []string{raceEnvBackend + "=local", raceEnvDir + "=" + dir}, 4, 40, 25*time.Millisecond)
}

func TestLockRaceS3(t *testing.T) {
	m := storetest.StartMinIO(t)
	cfg := s3.Config{Endpoint: m.Endpoint, Bucket: "race", Prefix: "repo", AccessKey: m.AccessKey, SecretKey: m.SecretKey, Region: "us-east-1", PathStyle: true}
	b, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Init(ctx, b); err != nil {
		t.Fatal(err)
	}
	spec := strings.Join([]string{cfg.Endpoint, cfg.Bucket, cfg.Prefix, cfg.AccessKey, cfg.SecretKey}, ",")
	runLockRace(t, []string{raceEnvBackend + "=s3", raceEnvS3 + "=" + spec}, 4, 25, 60*time.Millisecond)
}
