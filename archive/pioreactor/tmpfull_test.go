package pioreactor_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive/pioreactor"
	"github.com/piosnap/piosnap/archive/pioreactor/simulator"
)

// TestImportTmpFull checks the explanations of imports that do not fit in
// the unit's /tmp, which Pioreactor keeps in RAM.
func TestImportTmpFull(t *testing.T) {
	ctx := ctxT(t)
	probe := startCluster(t, nil)
	ex, err := simClient(t, probe, nil).ExportUnit(ctx, "worker1")
	if err != nil {
		t.Fatal(err)
	}
	archive, zr := download(t, ex)
	var extracted int64
	for _, f := range zr.File {
		extracted += int64(f.UncompressedSize64)
	}
	up := int64(len(archive))

	tests := []struct {
		name      string
		tmp       int64
		failNext  string
		uploadErr bool // the upload itself fails (else the import task does)
		want      []string
	}{
		{"upload", up / 2, "", true, []string{"leader1 could not save the uploaded archive in its /tmp", "No space left on device", "nothing was imported", "piosnap restore --compress", "the default for a large one"}},
		{"extraction", up + extracted/2, "", false, []string{"import into worker1 failed: [Errno 28] No space left on device", "too small to extract", "worker1 keeps its files", "--compress"}},
		{"copy of ~/.pioreactor", 0, "Failed to backup existing DOT_PIOREACTOR", false, []string{"could not move its ~/.pioreactor into /tmp", "/tmp/worker1_dot_pioreactor_backup_*", "before rebooting it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := startCluster(t, func(o *simulator.Options) { o.TmpSize = tt.tmp })
			if tt.failNext != "" {
				cl.Unit("worker1").FailNextImport(tt.failNext)
			}
			c := simClient(t, cl, nil)
			task, err := c.Import(ctx, "worker1", bytes.NewReader(archive), up, nil)
			if tt.uploadErr != (err != nil) {
				t.Fatalf("upload: %v", err)
			}
			if err == nil {
				_, err = c.WaitImport(ctx, "worker1", task, pioreactor.WaitOptions{PollInterval: 20 * time.Millisecond, ComeBackTimeout: time.Minute})
				if !errors.Is(err, pioreactor.ErrImportFailed) {
					t.Errorf("import: %v, want ErrImportFailed", err)
				}
			}
			if !errors.Is(err, pioreactor.ErrTmpFull) {
				t.Errorf("%v, want ErrTmpFull", err)
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%v\ndoes not say %q", err, w)
				}
			}
		})
	}
}
