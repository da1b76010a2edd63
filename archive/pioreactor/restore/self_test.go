package restore_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/store"
)

func TestRecordFile(t *testing.T) {
	dir := t.TempDir()
	if rec, err := restore.ReadRecord(dir); rec != nil || err != nil {
		t.Fatalf("no record: ReadRecord = %+v, %v; want nil, nil", rec, err)
	}
	done := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	want := &restore.Record{Unit: "leader1", Host: "leader1", Version: "0123456789abcdef", Store: "local",
		Started: done.Add(-time.Minute), Undo: "piosnap restore --host leader1 --version abcd1234", Finished: &done, Verified: true, Result: "ok"}
	if err := restore.WriteRecord(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := restore.ReadRecord(dir)
	if err != nil || got.Unit != want.Unit || got.Version != want.Version || !got.Finished.Equal(done) || !got.Verified || got.Undo != want.Undo {
		t.Errorf("ReadRecord = %+v, %v; want %+v", got, err, want)
	}
	if got.ShortVersion() != "01234567" {
		t.Errorf("ShortVersion = %q", got.ShortVersion())
	}
	if fi, err := os.Stat(restore.RecordPath(dir)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("record file: %v, %v; want mode 0644", fi, err)
	}
	if err := os.WriteFile(restore.RecordPath(dir), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.ReadRecord(dir); err == nil || !strings.Contains(err.Error(), restore.RecordPath(dir)) {
		t.Errorf("damaged record: error %v, want one naming the file", err)
	}
	if err := restore.WriteRecord(filepath.Join(dir, "missing"), want); err == nil {
		t.Error("writing into a missing state directory succeeded")
	}
}

// TestFinishSelf verifies pending records as the daemon does at start.
func TestFinishSelf(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	// worker2 plays this machine: its files differ from worker1's version.
	tests := []struct {
		name     string
		rec      restore.Record
		open     error // the error opening the store
		verified bool
		result   string // a part of the recorded result; "" leaves the record alone
		log      string
	}{
		{"matches", restore.Record{Unit: "worker1", Host: "worker1", Version: r.v.ID, Store: "local"}, nil, true,
			"restored and verified: worker1 matches version " + r.v.ShortID() + " of worker1", "level=INFO"},
		{"differs", restore.Record{Unit: "worker2", Host: "worker1", Version: r.v.ID, Store: "local", Undo: "piosnap restore --host worker2 --version abcd1234"}, nil, false,
			"worker2 differs from version " + r.v.ShortID(), "abcd1234"},
		{"store down", restore.Record{Unit: "worker1", Host: "worker1", Version: r.v.ID, Store: "local"}, errors.New("disk gone"), false,
			"could not verify worker1: disk gone", "level=ERROR"},
		{"unknown version", restore.Record{Unit: "worker1", Host: "worker1", Version: "ffffffffffff", Store: "local"}, nil, false,
			"could not verify worker1", "level=ERROR"},
		{"already finished", restore.Record{Unit: "worker2", Host: "worker1", Version: r.v.ID, Store: "local", Finished: new(time.Time), Result: "kept"}, nil, false,
			"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := restore.WriteRecord(dir, &tt.rec); err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			restore.FinishSelf(context.Background(), restore.SelfOptions{
				StateDir: dir, RebootTimeout: time.Minute,
				Open: func(context.Context, string) (*store.Repository, error) {
					if tt.open != nil {
						return nil, tt.open
					}
					return r.st.Repo, nil
				},
				Client: func() (*pioreactor.Client, error) { return r.cl, nil },
				Log:    slog.New(slog.NewTextHandler(&logs, nil)),
			})
			got, err := restore.ReadRecord(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tt.result == "" {
				if got.Result != tt.rec.Result || logs.Len() != 0 {
					t.Errorf("finished record changed to %+v, log:\n%s", got, logs.String())
				}
				return
			}
			if got.Finished == nil || got.Verified != tt.verified || !strings.Contains(got.Result, tt.result) {
				t.Errorf("record %+v; want finished, verified %v, result naming %q", got, tt.verified, tt.result)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs.String())
			}
		})
	}
}

// TestFinishSelfStopped: a daemon stopped while it verifies leaves the
// record pending for its next start.
func TestFinishSelfStopped(t *testing.T) {
	dir := t.TempDir()
	rec := &restore.Record{Unit: "leader1", Host: "leader1", Version: "0123456789abcdef", Store: "local", Started: time.Now().UTC()}
	if err := restore.WriteRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs strings.Builder
	restore.FinishSelf(ctx, restore.SelfOptions{
		StateDir: dir, RebootTimeout: time.Hour,
		Open: func(ctx context.Context, _ string) (*store.Repository, error) {
			cancel() // the daemon stops while the store opens
			return nil, ctx.Err()
		},
		Client: func() (*pioreactor.Client, error) { return nil, errors.New("not reached") },
		Log:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	got, err := restore.ReadRecord(dir)
	if err != nil || got == nil || got.Finished != nil || got.Result != "" {
		t.Errorf("record %+v (%v); want it still pending", got, err)
	}
}
