package main

import (
	"os"
	"strings"
	"sync"
	"testing"
)

// Issue 15: three backups and a forget started at one instant with
// lock_wait 1ms. Each must either run alone or give up with exit code 5;
// two writers at once let the forget delete chunks a backup had just
// referenced, and check then found the new versions damaged.
func TestConcurrentWritersNeverOverlap(t *testing.T) {
	_, cfg := cliCluster(t, []string{"worker1", "worker2"}, "")
	if code, _, errs := cliRun(t, cfg, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	fast := strings.Replace(cfg, ".toml", "-fast.toml", 1)
	writeFastConfig(t, cfg, fast)
	const rounds = 5
	ran := map[string]int{}
	for r := range rounds {
		cmds := [][]string{{"backup"}, {"backup"}, {"backup"}, {"forget", "--keep-last", "1", "--include-departed"}}
		codes := make([]int, len(cmds))
		errs := make([]string, len(cmds))
		var wg sync.WaitGroup
		for i, args := range cmds {
			wg.Go(func() { codes[i], _, errs[i] = cliRun(t, fast, args...) })
		}
		wg.Wait()
		for i, code := range codes {
			switch code {
			case exitOK:
				ran[cmds[i][0]]++
			case exitLocked:
				if !strings.Contains(errs[i], "locked") {
					t.Errorf("round %d, %s: exit 5 without saying the repository is locked: %s", r, cmds[i][0], errs[i])
				}
			default:
				t.Fatalf("round %d, %s: exit %d: %s", r, cmds[i][0], code, errs[i])
			}
		}
		if code, out, errs := cliRun(t, cfg, "check"); code != 0 {
			t.Fatalf("round %d: check: exit %d\n%s%s", r, code, out, errs)
		}
	}
	if ran["backup"] == 0 {
		t.Errorf("no backup ever got the lock in %d rounds: %v", rounds, ran)
	}
	t.Logf("in %d rounds: %v ran", rounds, ran)
}

// writeFastConfig copies the config at from to to with lock_wait = "1ms".
func writeFastConfig(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fast := strings.Replace(string(data), `lock_wait = "2s"`, `lock_wait = "1ms"`, 1)
	if fast == string(data) {
		t.Fatal("config has no lock_wait to replace")
	}
	if err := os.WriteFile(to, []byte(fast), 0o600); err != nil {
		t.Fatal(err)
	}
}
