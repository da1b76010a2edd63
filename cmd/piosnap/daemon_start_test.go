package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/piosnap/piosnap/scheduler/daemon"
)

// TestRunStartUnderJournal starts the daemon as systemd would under
// journald ($JOURNAL_STREAM names its stderr) and checks the start-up log:
// every line carries its syslog priority, the version and the configuration
// file are logged, and a metrics endpoint the user opened to the network is
// warned about.
func TestRunStartUnderJournal(t *testing.T) {
	bin := buildPiosnap(t)
	f := newDaemonFixture(t)
	f.writeConfig(t, f.config("", "keep_last = 5")+"\n[metrics]\nlisten = \"0.0.0.0:0\"\nallow_remote = true\n")
	journal, stream := journalFile(t)
	cmd := binCommand(bin, "-c", f.cfgPath, "run")
	cmd.Stdout, cmd.Stderr = journal, journal
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "JOURNAL_STREAM="+stream)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(journal.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", read())
		}
	})
	waitFor(t, hangTimeout, "the first run to finish", func() bool {
		sf := f.status(t)
		return sf != nil && sf.LastRun != nil && !sf.Running
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, hangTimeout); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	logs := read()
	for _, want := range []string{
		`<6>time=`,
		`msg="piosnap starting" version=`,
		"config=" + f.cfgPath,
		`<4>time=`,
		`metrics endpoint is reachable from other machines`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// The simulator's leader is on loopback, so it plays this machine.
	d, _ := deviceOf(f.repo)
	root, _ := deviceOf("/")
	if strings.Contains(logs, "every store is on this leader's own disk") != (d == root) {
		t.Errorf("leader disk warning shown %v, want %v", d != root, d == root)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if len(line) < 3 || line[0] != '<' || line[2] != '>' || !strings.Contains("3467", line[1:2]) {
			t.Errorf("line without a syslog priority prefix: %q", line)
		}
		if strings.Contains(line, "metrics endpoint is reachable") && !strings.HasPrefix(line, "<4>") {
			t.Errorf("the remote metrics warning is not at priority warning: %q", line)
		}
	}
	if _, err := os.Stat(filepath.Join(f.stateDir, daemon.StatusFileName)); err != nil {
		t.Error(err)
	}
}
