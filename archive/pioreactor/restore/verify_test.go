package restore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piosnap/piosnap/archive/pioreactor/restore"
	"github.com/piosnap/piosnap/store"
)

func TestCompareConfig(t *testing.T) {
	const orig = `# a comment
[PWM]
# map the PWM channels
1=stirring
2=media

[leds]
A=IR
B = white light

[storage]
database=/home/pioreactor/.pioreactor/storage/pioreactor.sqlite
temporary_cache=/tmp/local_intermittent_pioreactor_metadata.sqlite

[dosing]
schedule=0, 1,
    2, 3
`
	rewritten := "[PWM]\n1=stirring\n2=media\n\n[leds]\na=IR\nb=white light\n\n[storage]\n" +
		"database=/home/pioreactor/.pioreactor/storage/pioreactor.sqlite\n" +
		"temporary_cache=/run/pioreactor/cache/local_intermittent_pioreactor_metadata.sqlite\n\n[dosing]\nschedule=0, 1,\n\t2, 3\n\n"
	tests := []struct {
		name, want, got string
		diffs           []string
	}{
		{"identical", orig, orig, nil},
		{"rewritten by the import", orig, rewritten, nil},
		{"changed value", orig, strings.Replace(rewritten, "2=media", "2=heating", 1), []string{`[PWM] 2 is "heating", want "media"`}},
		{"missing option", orig, strings.Replace(rewritten, "b=white light\n", "", 1), []string{"[leds] b missing"}},
		{"extra option", orig, strings.Replace(rewritten, "a=IR", "a=IR\nc=UV", 1), []string{"[leds] c extra"}},
		{"missing section", orig, strings.Replace(rewritten, "[dosing]\nschedule=0, 1,\n\t2, 3\n", "", 1), []string{"[dosing] missing"}},
		{"extra section", orig, rewritten + "[new]\nx=1\n", []string{"[new] extra"}},
		{"temporary_cache only in the unit's copy", "[storage]\ndatabase=d\n", "[storage]\ndatabase=d\ntemporary_cache=x\n", nil},
		{"storage section added for temporary_cache", "[a]\nb=c\n", "[a]\nb=c\n\n[storage]\ntemporary_cache=x\n", nil},
		{"continuation changed", orig, strings.Replace(rewritten, "\t2, 3", "\t2, 4", 1), []string{`[dosing] schedule is "0, 1,\n2, 4", want "0, 1,\n2, 3"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := restore.CompareConfig(tt.want, tt.got)
			if strings.Join(got, "|") != strings.Join(tt.diffs, "|") {
				t.Errorf("restore.CompareConfig = %q, want %q", got, tt.diffs)
			}
		})
	}
}

func TestDiffSummary(t *testing.T) {
	tests := []struct {
		name          string
		d             restore.Diff
		empty         bool
		summary, text string
	}{
		{"none", restore.Diff{}, true, "", ""},
		{"missing only", restore.Diff{Missing: []string{"a", "b"}}, false, "2 missing", "  missing on the unit: a, b\n"},
		{"every kind", restore.Diff{Missing: []string{"a"}, Extra: []string{"b"}, Changed: []string{"c", "d"}, Config: []string{"[x] y extra"}}, false,
			"1 missing, 1 extra, 2 changed, 1 config.ini settings differing",
			"  missing on the unit: a\n  extra on the unit: b\n  changed: c, d\n  config.ini: [x] y extra\n"},
		{"config only", restore.Diff{Config: []string{"[x] missing"}}, false, "1 config.ini settings differing", "  config.ini: [x] missing\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Empty(); got != tt.empty {
				t.Errorf("Empty = %v, want %v", got, tt.empty)
			}
			if got := tt.d.Summary(); got != tt.summary {
				t.Errorf("Summary = %q, want %q", got, tt.summary)
			}
			if got := tt.d.String(); got != tt.text {
				t.Errorf("String = %q, want %q", got, tt.text)
			}
		})
	}
}

// TestVerifyDiffers checks that verification names every missing, extra
// and changed entry and every differing config.ini setting.
func TestVerifyDiffers(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	var exported int64
	d, err := restore.Verify(ctx, r.cl, r.st.Repo, r.v, "worker1", func(n int64) { exported += n })
	if err != nil || !d.Empty() {
		t.Fatalf("unchanged unit: diff %v, err %v; want none", d, err)
	}
	if exported == 0 {
		t.Error("progress was never called with the export's bytes")
	}

	w1 := r.cluster.Unit("worker1")
	if err := w1.WriteCalibration("od90", "extra", "x: 1\n"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w1.Dir(), "unit_config.ini"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(w1.Dir(), ".image_metadata")); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(w1.Dir(), "config.ini")
	cfgText, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, append(cfgText, "\n[piosnap_test]\nk=v\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = restore.Verify(ctx, r.cl, r.st.Repo, r.v, "worker1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &restore.Diff{
		Missing: []string{".image_metadata"},
		Extra:   []string{"storage/calibrations/od90/extra.yaml"},
		Changed: []string{"unit_config.ini"},
		Config:  []string{"[piosnap_test] extra"},
	}
	if d.String() != want.String() {
		t.Errorf("diff:\n%s\nwant:\n%s", d, want)
	}
	if got, w := d.Summary(), "1 missing, 1 extra, 1 changed, 1 config.ini settings differing"; got != w {
		t.Errorf("summary %q, want %q", got, w)
	}

	if err := w1.SetOffline(true); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Verify(ctx, r.cl, r.st.Repo, r.v, "worker1", nil); err == nil {
		t.Error("verifying an unreachable unit succeeded")
	}
}

// TestVerifyKeptDirectories checks that ui/ and hardware/, which the import
// keeps when the archive has none, are extra on the unit only when the
// version has them.
func TestVerifyKeptDirectories(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	w1 := r.cluster.Unit("worker1")
	added := []string{"ui/contrib/x.yaml", "hardware/piosnap-test.yaml"}
	for _, name := range added {
		p := filepath.Join(w1.Dir(), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("z: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// without is the version as an archive without ui/ and hardware/ would
	// have it.
	without := *r.v
	without.Entries = nil
	for _, e := range r.v.Entries {
		if !strings.HasPrefix(e.Name, "ui/") && !strings.HasPrefix(e.Name, "hardware/") {
			without.Entries = append(without.Entries, e)
		}
	}
	if len(without.Entries) == len(r.v.Entries) {
		t.Fatal("the simulator's version has no hardware/ entries to leave out")
	}
	for _, tt := range []struct {
		name  string
		v     *store.Version
		extra []string
	}{
		{"version without them", &without, nil},
		{"version with them", r.v, []string{"hardware/piosnap-test.yaml", "ui/contrib/", "ui/contrib/x.yaml"}},
	} {
		d, err := restore.Verify(context.Background(), r.cl, r.st.Repo, tt.v, "worker1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(d.Extra, ",") != strings.Join(tt.extra, ",") || len(d.Missing)+len(d.Changed)+len(d.Config) > 0 {
			t.Errorf("%s: diff %+v; want extra %q and nothing else", tt.name, d, tt.extra)
		}
	}
}
