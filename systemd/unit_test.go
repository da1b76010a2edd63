package systemd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needAnalyze skips without systemd-analyze, except in CI, where the check
// must not vanish silently.
func needAnalyze(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing: install it with 'apt-get install -y systemd'")
		}
		t.Skip("systemd-analyze not installed (apt-get install -y systemd)")
	}
}

// runVerify runs verify.sh on unit, copied with the script into a
// temporary directory, and returns its output and whether it passed.
func runVerify(t *testing.T, unit string, env ...string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	script, err := os.ReadFile("verify.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "verify.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "piosnap.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "verify.sh"))
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run verify.sh: %v", err)
	}
	return string(out), err == nil
}

func TestUnitFile(t *testing.T) {
	needAnalyze(t)
	b, err := os.ReadFile("piosnap.service")
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=piosnap",
		"ExecStart=/usr/bin/piosnap -c /etc/piosnap/piosnap.toml run",
		"RestartPreventExitStatus=2",
		"LoadCredential=s3:/etc/piosnap/s3.credentials", "User=piosnap",
		"ProtectSystem=strict", "NoNewPrivileges=yes", "SystemCallFilter=@system-service",
	} {
		if !strings.Contains(good, "\n"+want) {
			t.Errorf("piosnap.service lacks %q", want)
		}
	}
	tests := []struct {
		name   string
		unit   string
		env    []string
		pass   bool
		output string
	}{
		{"shipped unit", good, nil, true, "OK"},
		{"unknown key", strings.Replace(good, "\n[Service]\n", "\n[Service]\nRestartAlways=yes\n", 1), nil, false, "Unknown key 'RestartAlways'"},
		{"bad value", strings.Replace(good, "WatchdogSec=2min", "WatchdogSec=two minutes", 1), nil, false, "Failed to parse sec value, ignoring: two minutes"},
		{"hardening removed", strings.Replace(good, "ProtectSystem=strict\n", "", 1) + "[Service]\nCapabilityBoundingSet=~\nSystemCallFilter=\nPrivateUsers=no\nProtectHome=no\nRestrictNamespaces=no\n", nil, false, "exposure above 2.0"},
		{"stricter limit", good, []string{"PIOSNAP_MAX_EXPOSURE=0.5"}, false, "exposure above 0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, pass := runVerify(t, tt.unit, tt.env...)
			if pass != tt.pass {
				t.Errorf("verify.sh passed = %v, want %v; output:\n%s", pass, tt.pass, out)
			}
			if !strings.Contains(out, tt.output) {
				t.Errorf("output does not contain %q:\n%s", tt.output, out)
			}
		})
	}
}
