package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheckSummary checks the line `config check` prints for a valid
// file: it counts stores in words that agree with the number and says
// whether a Pioreactor cluster is backed up at all.
func TestConfigCheckSummary(t *testing.T) {
	dir := t.TempDir()
	store := func(name string) string {
		return fmt.Sprintf("[[store]]\nname = %q\npath = %q\n", name, filepath.Join(dir, name))
	}
	source := fmt.Sprintf("[[source]]\nkind = \"dir\"\nname = \"cells\"\npaths = [%q]\n", dir)
	tests := []struct {
		name, text, want string
	}{
		{"cluster, one store", "zone = \"UTC\"\n[pioreactor]\nleader = \"leader1.local\"\n" + store("local"),
			`ok (1 store, schedule "@daily" in UTC, leader leader1.local)`},
		{"cluster by default, two stores", "zone = \"UTC\"\n" + store("a") + store("b"),
			`ok (2 stores, schedule "@daily" in UTC, leader pioreactor.local)`},
		{"sources only", "zone = \"UTC\"\nschedule = \"0 3 * * *\"\n" + store("local") + source,
			`ok (1 store, schedule "0 3 * * *" in UTC, no Pioreactor cluster, sources cells)`},
		{"cluster and a source", "zone = \"UTC\"\n[pioreactor]\nleader = \"localhost\"\n" + store("local") + source,
			`ok (1 store, schedule "@daily" in UTC, leader localhost, sources cells)`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(dir, fmt.Sprintf("c%d.toml", i))
			if err := os.WriteFile(cfg, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errs := cliRun(t, cfg, "config", "check")
			if code != exitOK || !strings.Contains(out, cfg+": "+tt.want+"\n") {
				t.Errorf("exit %d, want the line %q:\n%s%s", code, tt.want, out, errs)
			}
		})
	}
}
