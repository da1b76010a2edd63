package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelp checks that help never needs a configuration (there is none
// here), goes to standard output with exit 0 when asked for, and to standard
// error with exit 2 when the command line is wrong.
func TestHelp(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.toml")
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // "" means stdout must be empty
		stderr     string // "" means stderr must be empty
		notInFlags string
	}{
		{"no arguments", nil, exitUsage, "", "Usage: piosnap", ""},
		{"help", []string{"help"}, exitOK, "Usage: piosnap", "", ""},
		{"-h", []string{"-h"}, exitOK, "Usage: piosnap", "", ""},
		{"--help", []string{"--help"}, exitOK, "Usage: piosnap", "", ""},
		{"bad global flag", []string{"--nope"}, exitUsage, "", "Usage: piosnap", ""},
		{"--version", []string{"--version"}, exitOK, "piosnap ", "", ""},
		{"help restore", []string{"help", "restore"}, exitOK, "Usage: piosnap restore", "", ""},
		{"restore -h", []string{"restore", "-h"}, exitOK, "--version string", "", "-version piosnap"},
		{"export --help", []string{"export", "--help"}, exitOK, "Usage: piosnap export", "", "-version piosnap"},
		{"list -h after -c", []string{"list", "-c", missing, "-h"}, exitOK, "Usage: piosnap list", "", ""},
		{"config -h", []string{"config", "-h"}, exitOK, "Usage: piosnap config", "", ""},
		{"run -h", []string{"run", "-h"}, exitOK, "-c string", "", ""},
		{"status -h", []string{"status", "-h"}, exitOK, "--json", "", ""},
		{"bad flag", []string{"config", "check", "--nope"}, exitUsage, "", "Usage: piosnap config", ""},
		{"-c after the command", []string{"list", "-c", missing}, exitUsage, "", missing + " does not exist", ""},
		{"-c= after the command", []string{"config", "check", "-c=" + missing}, exitUsage, "", missing + " does not exist", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			getenv := func(k string) string {
				if k == "PIOSNAP_CONFIG" {
					return filepath.Join(t.TempDir(), "also-missing.toml")
				}
				return ""
			}
			code := Main(context.Background(), tt.args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv})
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errb.String())
			}
			check := func(stream, got, want string) {
				if want == "" && got != "" {
					t.Errorf("%s should be empty, got:\n%s", stream, got)
				}
				if !strings.Contains(got, want) {
					t.Errorf("%s lacks %q:\n%s", stream, want, got)
				}
			}
			check("stdout", out.String(), tt.stdout)
			check("stderr", errb.String(), tt.stderr)
			if tt.notInFlags != "" && strings.Contains(out.String(), tt.notInFlags) {
				t.Errorf("help shows %q (a backquoted phrase taken as the argument name):\n%s", tt.notInFlags, out.String())
			}
			if strings.Contains(out.String()+errb.String(), "Flags:\n\n") || strings.HasSuffix(out.String(), "Flags:\n") {
				t.Errorf("empty Flags: section:\n%s", out.String())
			}
		})
	}
}
