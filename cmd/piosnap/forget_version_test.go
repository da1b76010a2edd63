package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

// forget --version removes just the version it names and the data no other
// version uses; a dry run removes nothing.
func TestCLIForgetVersion(t *testing.T) {
	_, cfg := cliCluster(t, []string{"worker1"}, "")
	cliRun(t, cfg, "init")
	if code, _, errs := cliRun(t, cfg, "backup"); code != 0 {
		t.Fatal(errs)
	}
	vs := cliVersions(t, cfg)
	if len(vs) < 2 {
		t.Fatalf("%d versions after a backup, want one per unit", len(vs))
	}
	gone, kept := vs[0], vs[1]
	export := func() []byte {
		t.Helper()
		p := filepath.Join(t.TempDir(), "v.tar")
		if code, _, errs := cliRun(t, cfg, "export", "--host", kept.Host, "--version", kept.ID, "-o", p); code != 0 {
			t.Fatalf("export: %s", errs)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := export()
	repo := filepath.Join(filepath.Dir(cfg), "repo")

	before := objects(t, repo)
	code, out, errs := cliRun(t, cfg, "forget", "--version", gone.ID[:8], "--dry-run")
	if code != 0 || !strings.Contains(out, "remove "+gone.ID[:8]) || !strings.Contains(out, "dry run, 1 version would be removed") {
		t.Errorf("forget --version --dry-run: exit %d\n%s%s", code, out, errs)
	}
	if after := objects(t, repo); !maps.Equal(before, after) {
		t.Error("forget --version --dry-run changed the repository")
	}

	code, out, errs = cliRun(t, cfg, "forget", "--version", gone.ID[:8], "--json")
	var reps []forgetReport
	if err := json.Unmarshal([]byte(out), &reps); err != nil {
		t.Fatalf("forget --json: %v\n%s", err, out)
	}
	if code != 0 || len(reps) != 1 || reps[0].Result == nil || reps[0].Result.VersionsDeleted != 1 || reps[0].Result.ChunksDeleted == 0 ||
		len(reps[0].Hosts) != 1 || reps[0].Hosts[0].Versions[0].ID != gone.ID {
		t.Fatalf("forget --version: exit %d, want %s and its unused blobs removed\n%s%s", code, gone.ID[:8], out, errs)
	}
	for _, v := range cliVersions(t, cfg) {
		if v.ID == gone.ID {
			t.Errorf("version %s still listed", gone.ID[:8])
		}
	}
	if n := len(cliVersions(t, cfg)); n != len(vs)-1 {
		t.Errorf("%d versions left, want %d", n, len(vs)-1)
	}
	if code, out, errs := cliRun(t, cfg, "check", "--read-data"); code != 0 {
		t.Errorf("check after forget --version: exit %d\n%s%s", code, out, errs)
	}
	if got := export(); string(got) != string(want) {
		t.Error("the version kept does not export as before")
	}
}

func TestCLIForgetVersionRefuses(t *testing.T) {
	_, cfg := cliCluster(t, nil, "")
	cliRun(t, cfg, "init")
	if code, _, errs := cliRun(t, cfg, "backup"); code != 0 {
		t.Fatal(errs)
	}
	v := cliVersions(t, cfg)[0]
	repo := filepath.Join(filepath.Dir(cfg), "repo")
	before := objects(t, repo)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--version", v.ID[:8], "--keep-last", "1"}, exitUsage, "give one or the other"},
		{[]string{"--version", v.ID[:8], "--host", v.Host}, exitUsage, "--host"},
		{[]string{"--version", v.ID[:4]}, exitUsage, "at least 8 characters"},
		{[]string{"--version", "notanid-notanid"}, exitUsage, "piosnap list"},
		{[]string{"--version", v.ID[:8], "--store", "nosuch"}, exitUsage, "nosuch"},
	} {
		code, out, errs := cliRun(t, cfg, append([]string{"forget"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("forget %v: exit %d, want %d saying %q\n%s%s", tc.args, code, tc.code, tc.want, out, errs)
		}
	}

	// A version a restore holds is not removed.
	ctx := context.Background()
	b, err := local.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Hold(ctx, "restore", v.ID)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliRun(t, cfg, "forget", "--version", v.ID)
	if code == 0 || !strings.Contains(errs, "in use by a restore") {
		t.Errorf("forget of a held version: exit %d, want it refused\n%s%s", code, out, errs)
	}
	if err := h.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if after := objects(t, repo); !maps.Equal(before, after) {
		t.Error("a refused forget --version changed the repository")
	}
}
