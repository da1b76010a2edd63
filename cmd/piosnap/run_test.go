package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
	"github.com/piosnap/piosnap/scheduler"
	"github.com/piosnap/piosnap/scheduler/daemon"
	"github.com/piosnap/piosnap/scheduler/notify"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// built is the piosnap binary that buildPiosnap builds once per test run
// (each build links the whole program: seconds, and more under qemu).
var built struct {
	once     sync.Once
	dir, bin string
	out      []byte
	err      error
}

// buildPiosnap builds the piosnap binary into a temporary directory, so
// tests can send it real signals. TestMain removes it.
func buildPiosnap(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "piosnap-test-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "piosnap")
		built.out, built.err = exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// binCommand runs a binary built by the test. When $PIOSNAP_TEST_EXEC is
// set (`make arm64` sets it to qemu-aarch64-static), the binary is run
// through it, as `go test -exec` runs the test binary itself.
func binCommand(bin string, args ...string) *exec.Cmd {
	if wrap := os.Getenv("PIOSNAP_TEST_EXEC"); wrap != "" {
		return exec.Command(wrap, append([]string{bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

// syncBuffer collects a process's stderr while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recorder is a real HTTP server that records the requests it gets.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct{ method, path, body string }

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, string(b)})
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// daemonFixture is a simulated cluster, an initialised local repository
// and a configuration file for them.
type daemonFixture struct {
	cluster  *simulator.Cluster
	dir      string
	repo     string
	stateDir string
	cfgPath  string
}

func newDaemonFixture(t *testing.T) *daemonFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cl, err := simulator.Start(ctx, simulator.Options{Dir: filepath.Join(dir, "cluster"), Workers: []string{"worker1"}, DBSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	f := &daemonFixture{cluster: cl, dir: dir, repo: filepath.Join(dir, "repo"), stateDir: filepath.Join(dir, "state"), cfgPath: filepath.Join(dir, "piosnap.toml")}
	b, err := local.Create(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Init(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

// The schedule is yearly: the empty repository makes the daemon catch up at
// once, and no second slot comes while a test runs.
const testSchedule = "@yearly"

// config returns a configuration with extra appended at the top level
// and retention rules for the store.
func (f *daemonFixture) config(top, retention string) string {
	var addr strings.Builder
	for unit, a := range f.cluster.Addresses() {
		fmt.Fprintf(&addr, "%s = %q\n", unit, a)
	}
	return fmt.Sprintf(`zone = "UTC"
schedule = "@yearly"
state_dir = %q
lock_wait = "3s"
%s

[log]
format = "text"

[pioreactor]
leader = %q
pull = "broadcast"
timeout = "10s"

[pioreactor.addresses]
%s
[[store]]
name = "local"
path = %q

[store.retention]
%s
`, f.stateDir, top, f.cluster.LeaderURL(), addr.String(), f.repo, retention)
}

func (f *daemonFixture) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(f.cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs `piosnap run` as a child process.
func (f *daemonFixture) start(t *testing.T, bin string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := binCommand(bin, "-c", f.cfgPath, "run")
	logs := &syncBuffer{}
	cmd.Stderr, cmd.Stdout = logs, logs
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() || os.Getenv("PIOSNAP_TEST_LOGS") != "" {
			t.Logf("daemon output:\n%s", logs.String())
		}
	})
	return cmd, logs
}

// hangTimeout bounds the tests' waits for the daemon and the simulator: it
// only catches a hang, since under qemu on a loaded machine a step that
// takes a second natively can take a minute.
const hangTimeout = 5 * time.Minute

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitExit waits for the process and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("daemon did not exit within %v", timeout)
		return -1
	}
}

// runMain runs piosnap in-process and returns its exit code and output.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
	return code, stdout.String(), stderr.String()
}

// repository opens the fixture's repository as another process would.
func (f *daemonFixture) repository(t *testing.T) *store.Repository {
	t.Helper()
	b, err := local.Open(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *daemonFixture) versions(t *testing.T) []*store.Version {
	t.Helper()
	vs, err := f.repository(t).Versions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func (f *daemonFixture) locks(t *testing.T) []store.LockInfo {
	t.Helper()
	ls, err := f.repository(t).Locks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func (f *daemonFixture) status(t *testing.T) *daemon.StatusFile {
	sf, err := daemon.ReadStatusFile(filepath.Join(f.stateDir, daemon.StatusFileName))
	if err != nil {
		return nil
	}
	return sf
}

// parseExposition parses Prometheus text into "name{labels}" → value,
// checking that every sample follows a TYPE line of its family.
func parseExposition(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	typed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if typ != "gauge" {
				t.Errorf("metric %s has type %q, want gauge", name, typ)
			}
			typed[name] = true
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		key := line[:i]
		name, _, _ := strings.Cut(key, "{")
		if !typed[name] {
			t.Errorf("sample %q comes before its # TYPE line", line)
		}
		out[key] = v
	}
	return out
}

func TestRunDaemon(t *testing.T) {
	bin := buildPiosnap(t)
	f := newDaemonFixture(t)
	hc, hook := newRecorder(t), newRecorder(t)
	top := fmt.Sprintf(`[metrics]
listen = "127.0.0.1:0"

[notify]
healthchecks_url = %q
webhook_url = %q
`, hc.srv.URL+"/ping/abc", hook.srv.URL+"/hook")
	// [metrics] and [notify] are tables: they must come after the top-level
	// keys, so they go at the end.
	base := f.config("", "keep_last = 5") + top
	f.writeConfig(t, base)
	cmd, logs := f.start(t, bin)

	// The repository is empty, so a catch-up run starts at once.
	waitFor(t, hangTimeout, "the first run to be recorded in the status file", func() bool {
		sf := f.status(t)
		return sf != nil && sf.LastRun != nil && !sf.Running
	})
	sf := f.status(t)
	if sf.PID != cmd.Process.Pid || sf.LastRun.Result != "success" {
		t.Fatalf("status file: pid %d (want %d), last run %+v", sf.PID, cmd.Process.Pid, sf.LastRun)
	}
	if vs := f.versions(t); len(vs) != 2 {
		t.Fatalf("%d versions after the first run, want 2 (leader1, worker1)", len(vs))
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "msg=stored") && (!strings.Contains(line, "run="+sf.LastRun.RunID) || !strings.Contains(line, "host=")) {
			t.Errorf("log line without run id or host: %s", line)
		}
	}

	t.Run("pings", func(t *testing.T) {
		reqs := hc.all()
		var paths []string
		for _, r := range reqs {
			paths = append(paths, r.path)
		}
		if strings.Join(paths, " ") != "/ping/abc/start /ping/abc" {
			t.Errorf("healthchecks pings %v, want start then success", paths)
		}
		hooks := hook.all()
		if len(hooks) != 1 {
			t.Fatalf("%d webhook calls, want 1", len(hooks))
		}
		var ev notify.Event
		if err := json.Unmarshal([]byte(hooks[0].body), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.RunID != sf.LastRun.RunID || ev.Result != "success" || len(ev.Hosts) != 2 || !ev.Hosts[0].OK {
			t.Errorf("webhook event %+v", ev)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + sf.MetricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := parseExposition(t, string(body))
		sched, err := scheduler.ParseSchedule(testSchedule, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		yearly := sched.Next(now).Sub(scheduler.Prev(sched, now))
		for _, host := range []string{"leader1", "worker1"} {
			l := fmt.Sprintf(`{host=%q,store="local"}`, host)
			if ts := m["piosnap_last_success_timestamp_seconds"+l]; time.Since(time.Unix(int64(ts), 0)) > time.Minute {
				t.Errorf("%s last success %v, want within the last minute", host, ts)
			}
			for name, want := range map[string]float64{"piosnap_versions": 1, "piosnap_last_run_success": 1, "piosnap_expected_interval_seconds": yearly.Seconds()} {
				if got, ok := m[name+l]; !ok || got != want {
					t.Errorf("%s%s = %v (present %v), want %v", name, l, got, ok, want)
				}
			}
			if m[fmt.Sprintf("piosnap_host_size_bytes{host=%q}", host)] <= 0 {
				t.Errorf("no host size for %s", host)
			}
		}
		if m["piosnap_last_run_ok"] != 1 || m[`piosnap_retention_last_success_timestamp_seconds{store="local"}`] == 0 {
			t.Errorf("run/retention gauges: %v", m)
		}
		// verify_days is unset: a thirtieth of the packs is read after the day's first run.
		if v, ok := m[`piosnap_verify_problems{store="local"}`]; !ok || v != 0 || m[`piosnap_verify_last_success_timestamp_seconds{store="local"}`] == 0 {
			t.Errorf("verify gauges: %v", m)
		}
		if len(sf.Verified) != 1 || sf.Verified[0].Store != "local" || !strings.HasSuffix(sf.Verified[0].Part, "/30") || sf.Verified[0].Error != "" || len(sf.Verified[0].Problems) != 0 {
			t.Errorf("status file's verification: %+v; want today's thirtieth of store local, sound", sf.Verified)
		}
	})

	t.Run("status", func(t *testing.T) {
		code, out, errOut := runMain(t, "-c", f.cfgPath, "status", "--json")
		if code != 0 {
			t.Fatalf("status exit %d: %s", code, errOut)
		}
		var rep statusReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if !rep.Daemon.Running || rep.Daemon.PID != cmd.Process.Pid || rep.Daemon.NextRun == nil || len(rep.Hosts) != 2 || rep.Hosts[0].Stale || rep.Hosts[0].Departed || rep.LeaderError != "" {
			t.Errorf("status %+v", rep)
		}
		_, text, _ := runMain(t, "-c", f.cfgPath, "status")
		if !strings.Contains(text, fmt.Sprintf("running (PID %d)", cmd.Process.Pid)) || !strings.Contains(text, "worker1") {
			t.Errorf("status text:\n%s", text)
		}
	})

	t.Run("backup between runs", func(t *testing.T) {
		// The daemon holds the repository lock only during a run.
		if code, _, errOut := runMain(t, "-c", f.cfgPath, "backup"); code != 0 {
			t.Fatalf("backup while the daemon is idle: exit %d: %s", code, errOut)
		}
	})

	t.Run("reload", func(t *testing.T) {
		f.writeConfig(t, strings.Replace(base, `schedule = "@yearly"`, `schedule = "61 * * * *"`, 1))
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, hangTimeout, "the invalid configuration to be refused", func() bool {
			return strings.Contains(logs.String(), "configuration reload refused")
		})
		if !strings.Contains(logs.String(), `61 * * * *`) {
			t.Error("the refusal does not name the wrong schedule")
		}
		f.writeConfig(t, strings.Replace(base, "keep_last = 5", "keep_last = 1", 1))
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, hangTimeout, "the configuration to be reloaded", func() bool {
			return strings.Contains(logs.String(), "configuration reloaded")
		})
		if cmd.ProcessState != nil {
			t.Fatal("daemon exited on reload")
		}
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, hangTimeout); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if sf := f.status(t); sf.Stopped == nil {
		t.Error("status file does not record the stop")
	}
	_, out, _ := runMain(t, "-c", f.cfgPath, "status")
	if !strings.Contains(out, "not running") {
		t.Errorf("status after stop:\n%s", out)
	}
	if code, out, errOut := runMain(t, "-c", f.cfgPath, "check", "--read-data"); code != 0 {
		t.Fatalf("check --read-data: exit %d\n%s%s", code, out, errOut)
	}
}

func TestRunStopDuringRun(t *testing.T) {
	bin := buildPiosnap(t)
	for _, tc := range []struct {
		name         string
		signals      int
		wantVersions int
	}{
		{"one signal lets the run finish", 1, 2},
		{"a second signal cancels it", 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDaemonFixture(t)
			// The units hold their exports until the signals are sent,
			// so that they reach the run in its export whatever the load.
			setDelay := func(d time.Duration) {
				for _, u := range f.cluster.Units() {
					f.cluster.Unit(u).SetExportDelay(d)
				}
			}
			setDelay(time.Hour)
			f.writeConfig(t, f.config("", "keep_last = 3"))
			cmd, _ := f.start(t, bin)
			waitFor(t, hangTimeout, "the run's export", func() bool {
				return f.cluster.Unit("worker1").Exports() > 0
			})
			start := time.Now()
			for range tc.signals {
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if tc.signals == 1 {
				setDelay(0)
			}
			if code := waitExit(t, cmd, hangTimeout); code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			// The exports would have taken an hour.
			if took := time.Since(start); took > 5*time.Minute {
				t.Errorf("stopping took %v", took)
			}
			if vs := f.versions(t); len(vs) != tc.wantVersions {
				t.Errorf("%d versions, want %d", len(vs), tc.wantVersions)
			}
			if code, out, errOut := runMain(t, "-c", f.cfgPath, "check", "--read-data"); code != 0 {
				t.Fatalf("check --read-data: exit %d\n%s%s", code, out, errOut)
			}
			if locks := f.locks(t); len(locks) != 0 {
				t.Errorf("locks left after the stop: %+v", locks)
			}
		})
	}
}

// The daemon reads stored data after the day's first run (verify_days = 1:
// all of it) and finds a pack damaged after it was stored: it logs the
// damage with the versions it affects, sends a failure ping naming it,
// records it in the status file, and `piosnap status` exits 4.
func TestDaemonFindsDamagedData(t *testing.T) {
	bin := buildPiosnap(t)
	f := newDaemonFixture(t)
	hc := newRecorder(t)
	cfg := strings.Replace(f.config("", "keep_last = 5"), "[store.retention]", "verify_days = 1\n\n[store.retention]", 1) +
		fmt.Sprintf("\n[notify]\nhealthchecks_url = %q\n", hc.srv.URL+"/ping/abc")
	// A run every minute: the repository is not empty, so the daemon does
	// not catch up at once.
	cfg = strings.Replace(cfg, `schedule = "@yearly"`, `schedule = "* * * * *"`, 1)
	f.writeConfig(t, cfg)
	// worker1 is backed up by hand, then its pack damaged on disk.
	if code, _, errOut := runMain(t, "-c", f.cfgPath, "backup", "--host", "worker1"); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut)
	}
	var packs []string
	_ = filepath.WalkDir(filepath.Join(f.repo, "packs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			packs = append(packs, p)
		}
		return err
	})
	if len(packs) != 1 {
		t.Fatalf("%d packs after one backup of worker1, want 1", len(packs))
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0xff
	if err := os.WriteFile(packs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd, logs := f.start(t, bin)
	waitFor(t, hangTimeout, "the first run to be recorded in the status file", func() bool {
		sf := f.status(t)
		return sf != nil && sf.LastRun != nil && !sf.Running
	})
	sf := f.status(t)
	if len(sf.Verified) != 1 || sf.Verified[0].Part != "1/1" || len(sf.Verified[0].Problems) == 0 {
		t.Fatalf("status file's verification: %+v; want damage found in part 1/1", sf.Verified)
	}
	if p := sf.Verified[0].Problems[0]; !strings.Contains(p.Object, "packs/") || !strings.Contains(strings.Join(p.Versions, " "), "worker1") {
		t.Errorf("problem %+v; want the pack and worker1's version", p)
	}
	if !strings.Contains(logs.String(), "stored data is damaged") {
		t.Error("the daemon did not log the damage")
	}
	reqs := hc.all()
	if len(reqs) < 2 || reqs[1].path != "/ping/abc/fail" || !strings.Contains(reqs[1].body, "store local is damaged") {
		t.Errorf("healthchecks pings %+v; want start, then a failure naming the damage", reqs)
	}
	code, out, errOut := runMain(t, "-c", f.cfgPath, "status")
	if code != exitDamaged || !strings.Contains(out, "DAMAGED") || !strings.Contains(errOut, "piosnap repair --store local") {
		t.Errorf("status: exit %d, want %d\n%s\n%s", code, exitDamaged, out, errOut)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, hangTimeout)

	// Once a repair has removed the pack, status no longer reports it,
	// though the daemon's record still names it until its next run.
	pack := sf.Verified[0].Problems[0].Object
	if code, out, errOut := runMain(t, "-c", f.cfgPath, "repair"); code != exitOK && code != exitDamaged {
		t.Fatalf("repair: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runMain(t, "-c", f.cfgPath, "status")
	if code == exitDamaged || strings.Contains(out, "DAMAGED") || strings.Contains(out, pack) {
		t.Errorf("status after repair: exit %d, still reporting %s\n%s\n%s", code, pack, out, errOut)
	}
}
