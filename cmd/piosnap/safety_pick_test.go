package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/snapshot"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// TestAtSkipsSafetySnapshots checks that --at (and export without a
// selector, which means --at latest) never picks a safety snapshot, which
// holds the state a restore replaced, unless --include-safety asks for it,
// and that --version still names one.
func TestAtSkipsSafetySnapshots(t *testing.T) {
	ctx := context.Background()
	c, cfg := cliCluster(t, nil, "")
	if code, _, errs := cliRun(t, cfg, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	if code, _, errs := cliRun(t, cfg, "backup"); code != 0 {
		t.Fatalf("backup: %d %s", code, errs)
	}
	// A safety snapshot, newer than the backup, as restore takes one.
	b, err := local.Open(filepath.Join(filepath.Dir(cfg), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := pioreactor.New(pioreactor.Config{Leader: c.LeaderURL(), Addresses: c.Addresses()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Run(ctx, snapshot.Options{Client: cl, Pull: snapshot.PullPerUnit, Zone: "UTC", Kind: store.KindSafety},
		[]snapshot.Store{{Name: "local", Repo: repo}}, []string{"leader1"}); err != nil {
		t.Fatal(err)
	}
	var backup, safety string
	for _, v := range cliVersions(t, cfg) {
		switch v.Kind {
		case store.KindBackup:
			backup = v.ShortID
		case store.KindSafety:
			safety = v.ShortID
		}
	}
	if backup == "" || safety == "" {
		t.Fatalf("want one backup and one safety version: %+v", cliVersions(t, cfg))
	}
	zip := filepath.Join(t.TempDir(), "x.zip")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"export default", []string{"export", "--host", "leader1", "-o", zip}, backup},
		{"export --at latest", []string{"export", "--host", "leader1", "-o", zip, "--at", "latest"}, backup},
		{"export --at today", []string{"export", "--host", "leader1", "-o", zip, "--at", "today"}, backup},
		{"export --include-safety", []string{"export", "--host", "leader1", "-o", zip, "--at", "latest", "--include-safety"}, safety},
		{"export --version", []string{"export", "--host", "leader1", "-o", zip, "--version", safety}, safety},
		{"restore --dry-run --at today", []string{"restore", "--host", "leader1", "--at", "today", "--dry-run"}, "version " + backup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := cliRun(t, cfg, tt.args...)
			if code != exitOK || !strings.Contains(out+errs, tt.want) {
				t.Errorf("exit %d, output lacks %q:\n%s%s", code, tt.want, out, errs)
			}
		})
	}
}

func TestVersionAtOnlySafety(t *testing.T) {
	v := &store.Version{Host: "worker1", Kind: store.KindSafety}
	_, err := versionAt([]*store.Version{v}, "worker1", latest, false)
	if err == nil || !strings.Contains(err.Error(), "1 safety snapshot(s) of worker1 skipped: add --include-safety") {
		t.Errorf("err = %v, want one that names --include-safety", err)
	}
	if got, err := versionAt([]*store.Version{v}, "worker1", latest, true); err != nil || got != v {
		t.Errorf("with safety: %v, %v", got, err)
	}
}
