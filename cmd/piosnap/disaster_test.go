package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDisasterRecoveryWalkthrough follows README.md's "The day the leader's
// SD card dies" on the simulated cluster, whose leader plays the machine
// piosnap runs on: back up to a local and an off-site store; lose the
// leader's SD card (its ~/.pioreactor and the local repository); on the
// "new leader", a configuration with only the off-site store lists the
// versions from the bucket alone, restores the leader (a restore of this
// machine) and then a worker, and both match what was backed up.
func TestDisasterRecoveryWalkthrough(t *testing.T) {
	h := newS3Harness(t, 1<<20, "worker1")
	leader, worker := h.cluster.Unit("leader1"), h.cluster.Unit("worker1")
	if err := leader.WriteCalibration("od90", "before-the-crash", "x: 1\n"); err != nil {
		t.Fatal(err)
	}
	old := h.config("old", h.localStore("local"), h.s3Store("offsite", "disaster", ""))
	h.mustMain(old, "init", "--create-bucket")
	h.mustMain(old, "backup")
	want := map[string]map[string]string{"leader1": treeOf(t, leader.Dir()), "worker1": treeOf(t, worker.Dir())}

	// The SD card dies: the leader's ~/.pioreactor and the local repository
	// are gone; a worker lost its state too.
	for _, dir := range []string{leader.Dir(), worker.Dir()} {
		if err := os.RemoveAll(filepath.Join(dir, "storage")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.ini"), []byte("[cluster.topology]\nleader_hostname = leader1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(h.localPath("local")); err != nil {
		t.Fatal(err)
	}

	// Step 3: only the off-site store, a fresh state directory (the
	// package creates it).
	fresh := h.config("new-leader", h.s3Store("offsite", "disaster", ""))
	if err := os.MkdirAll(filepath.Join(h.dir, "state-new-leader"), 0o700); err != nil {
		t.Fatal(err)
	}
	h.mustMain(fresh, "config", "check")
	// Step 4: list from the bucket alone.
	out := h.mustMain(fresh, "list")
	for _, host := range []string{"leader1", "worker1"} {
		if !strings.Contains(out, host) {
			t.Fatalf("list on the new leader lacks %s:\n%s", host, out)
		}
	}
	// Step 5: the leader, a restore of this machine.
	out = h.mustMain(fresh, "restore", "--host", "leader1", "--yes")
	mustContain(t, "restore leader1", out, "leader1 is the machine piosnap runs on", "restored and verified: leader1 matches version")
	// Step 6: the worker.
	out = h.mustMain(fresh, "restore", "--host", "worker1", "--yes")
	mustContain(t, "restore worker1", out, "restored and verified: worker1 matches version")
	if strings.Contains(out, "the machine piosnap runs on") {
		t.Errorf("restoring worker1 claims it is this machine:\n%s", out)
	}
	out = h.mustMain(fresh, "status")
	mustContain(t, "status", out, "restore of this machine (leader1)", "restored and verified")

	for unit, dir := range map[string]string{"leader1": leader.Dir(), "worker1": worker.Dir()} {
		got := treeOf(t, dir)
		// Pioreactor's import rewrites config.ini (verify compared its
		// settings) and leaves the archive's metadata file; every export
		// rewrites the database's .backup copy from the database.
		delete(got, "pioreactor_export_metadata.json")
		for name, content := range want[unit] {
			if name == "config.ini" || strings.HasSuffix(name, ".sqlite.backup") {
				continue
			}
			if got[name] != content {
				t.Errorf("%s: %s differs after the restore", unit, name)
			}
		}
		for name := range got {
			if _, ok := want[unit][name]; !ok {
				t.Errorf("%s: %s was not backed up but is there after the restore", unit, name)
			}
		}
	}
}

// treeOf reads every regular file under dir, by slash path.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
