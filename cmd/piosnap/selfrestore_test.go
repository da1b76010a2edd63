package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/config"
)

func TestRestoresItself(t *testing.T) {
	tests := []struct {
		name    string
		leader  string
		addrs   map[string]string
		machine machine
		unit    string
		want    bool
	}{
		{"simulator leader", "http://127.0.0.1:4000", map[string]string{"leader1": "127.0.0.1:4000", "worker1": "127.0.0.1:4001"}, machine{}, "leader1", true},
		{"simulator worker on loopback", "http://127.0.0.1:4000", map[string]string{"leader1": "127.0.0.1:4000", "worker1": "127.0.0.1:4001"}, machine{}, "worker1", false},
		{"leader by name on the leader", "localhost", nil, machine{hostname: "leader1"}, "leader1", true},
		{"worker by name from the leader", "localhost", nil, machine{hostname: "leader1"}, "worker1", false},
		{"leader by LAN address", "localhost", map[string]string{"leader1": "192.168.1.10"}, machine{hostname: "pi", addrs: []net.IP{net.ParseIP("192.168.1.10")}}, "leader1", true},
		{"piosnap on another machine", "pioreactor.local", nil, machine{hostname: "laptop"}, "pioreactor", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.Pioreactor.Leader = tt.leader
			cl, err := pioreactor.New(pioreactor.Config{Leader: tt.leader, Addresses: tt.addrs})
			if err != nil {
				t.Fatal(err)
			}
			a := &app{cfg: cfg, machine: tt.machine}
			if got := a.restoresItself(cl, tt.unit); got != tt.want {
				t.Errorf("restoresItself(%s) = %v, want %v", tt.unit, got, tt.want)
			}
		})
	}
}

// TestSelfRestoreFinishedByDaemon restores the leader with the simulator's
// leader playing the machine piosnap runs on. The command says that the
// reboot ends it, saves the pending verification in state_dir and stops
// once the upload is accepted, as the reboot would stop it; status shows the
// verification as pending; the daemon, started afterwards as after the
// reboot, verifies the leader and reports it in its log and in status.
func TestSelfRestoreFinishedByDaemon(t *testing.T) {
	bin := buildPiosnap(t)
	f := newDaemonFixture(t)
	f.writeConfig(t, f.config("", "keep_last = 5"))
	if code, _, errs := runMain(t, "-c", f.cfgPath, "backup"); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errs)
	}
	if err := f.cluster.Unit("leader1").WriteCalibration("od90", "changed", "x: 2\n"); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runMain(t, "-c", f.cfgPath, "restore", "--host", "leader1", "--yes", "--no-wait")
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
	}
	mustContain(t, "restore", out, "leader1 is the machine piosnap runs on", "restore.json", "daemon verifies it when it starts after the reboot")
	sr, err := readSelfRestore(f.stateDir)
	if err != nil || sr == nil || sr.Finished != nil || sr.Unit != "leader1" || sr.Undo == "" {
		t.Fatalf("pending restore %+v, %v; want leader1, unfinished, with an undo command", sr, err)
	}
	_, out, _ = runMain(t, "-c", f.cfgPath, "status")
	mustContain(t, "status", out, "restore of this machine (leader1) to version "+sr.ShortVersion(), "PENDING verification")

	cmd, logs := f.start(t, bin)
	waitFor(t, hangTimeout, "the daemon to verify the restore", func() bool {
		sr, _ := readSelfRestore(f.stateDir)
		return sr != nil && sr.Finished != nil
	})
	sr, _ = readSelfRestore(f.stateDir)
	if !sr.Verified || !strings.Contains(sr.Result, "restored and verified: leader1 matches version") {
		t.Errorf("recorded result %+v", sr)
	}
	waitFor(t, hangTimeout, "the log line", func() bool {
		return strings.Contains(logs.String(), "restore of this machine verified after its reboot")
	})
	_, out, _ = runMain(t, "-c", f.cfgPath, "status")
	mustContain(t, "status", out, "restore of this machine (leader1)", "restored and verified")
	_, out, _ = runMain(t, "-c", f.cfgPath, "status", "--json")
	mustContain(t, "status --json", out, `"self_restore": {`, `"unit": "leader1"`, `"verified": true`)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, hangTimeout)
}

// TestSelfRestoreVerifiedInProcess: when the command outlives the reboot
// (the simulator's leader restarts only its web server), it verifies the
// restore itself and records the result for status.
func TestSelfRestoreVerifiedInProcess(t *testing.T) {
	f := newDaemonFixture(t)
	f.writeConfig(t, f.config("", "keep_last = 5"))
	if code, _, errs := runMain(t, "-c", f.cfgPath, "backup"); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errs)
	}
	code, out, errs := runMain(t, "-c", f.cfgPath, "restore", "--host", "leader1", "--yes")
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
	}
	mustContain(t, "restore", out, "leader1 is the machine piosnap runs on", "restored and verified")
	sr, err := readSelfRestore(f.stateDir)
	if err != nil || sr == nil || sr.Finished == nil || !sr.Verified {
		t.Fatalf("recorded restore %+v, %v; want finished and verified", sr, err)
	}
	// A worker is not this machine: nothing is saved for it.
	if err := os.Remove(filepath.Join(f.stateDir, restore.RecordFileName)); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runMain(t, "-c", f.cfgPath, "restore", "--host", "worker1", "--yes", "--no-wait")
	if code != 0 || strings.Contains(out, "the machine piosnap runs on") {
		t.Fatalf("restore worker1: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(f.stateDir, restore.RecordFileName)); !os.IsNotExist(err) {
		t.Errorf("restoring a worker saved %s: %v", restore.RecordFileName, err)
	}
}

// TestSelfRestoreImportFails: when the leader's import fails, the leader
// kept its files, and nothing is left for the daemon to verify.
func TestSelfRestoreImportFails(t *testing.T) {
	f := newDaemonFixture(t)
	f.writeConfig(t, f.config("", "keep_last = 5"))
	if code, _, errs := runMain(t, "-c", f.cfgPath, "backup"); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errs)
	}
	f.cluster.Unit("leader1").FailNextImport("disk full")
	code, out, errs := runMain(t, "-c", f.cfgPath, "restore", "--host", "leader1", "--yes")
	if code == 0 {
		t.Fatalf("restore with a failing import: exit 0\n%s\n%s", out, errs)
	}
	if sr, err := readSelfRestore(f.stateDir); err != nil || sr != nil {
		t.Errorf("after a failed import, %s holds %+v (%v); want none", restore.RecordFileName, sr, err)
	}
}

// TestSelfRestoreDiffersAtStart: when the leader does not match the version
// at the daemon's start, the record and the log say so, with the undo
// command, at priority error.
func TestSelfRestoreDiffersAtStart(t *testing.T) {
	f := newDaemonFixture(t)
	f.writeConfig(t, f.config("", "keep_last = 5"))
	if code, _, errs := runMain(t, "-c", f.cfgPath, "backup"); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errs)
	}
	v := f.versions(t)
	var id string
	for _, x := range v {
		if x.Host == "leader1" {
			id = x.ID
		}
	}
	// The restore "happened", but the leader is not as the version.
	if err := f.cluster.Unit("leader1").WriteCalibration("od90", "not-in-the-version", "x: 3\n"); err != nil {
		t.Fatal(err)
	}
	if err := restore.WriteRecord(f.stateDir, &restore.Record{Unit: "leader1", Host: "leader1", Version: id, Store: "local", Started: time.Now().UTC(), Undo: "piosnap restore --host leader1 --version abcd1234"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(f.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	a := &app{cfg: cfg, env: Env{Getenv: func(string) string { return "" }}, log: newLogger(&logs, nil, "text", "info")}
	a.finishSelfRestore(context.Background(), a.log)
	sr, err := readSelfRestore(f.stateDir)
	if err != nil || sr.Finished == nil || sr.Verified || !strings.Contains(sr.Result, "leader1 differs from version "+id[:8]) {
		t.Fatalf("record %+v (%v); want finished, not verified, the difference named", sr, err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "abcd1234") {
		t.Errorf("log lacks an error with the undo command:\n%s", logs.String())
	}
	// A finished record is not verified again.
	logs.Reset()
	a.finishSelfRestore(context.Background(), a.log)
	if logs.Len() != 0 {
		t.Errorf("a finished restore was verified again:\n%s", logs.String())
	}
}
