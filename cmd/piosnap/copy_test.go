package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCopyUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	text := fmt.Sprintf("[[store]]\nname = \"a\"\npath = %q\n\n[[store]]\nname = \"b\"\npath = %q\n", filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"copy"}, exitUsage, "--from and --to are required"},
		{[]string{"copy", "--from", "a"}, exitUsage, "--from and --to are required"},
		{[]string{"copy", "--from", "a", "--to", "a"}, exitUsage, "name two different stores"},
		{[]string{"copy", "--from", "a", "--to", "nope"}, exitUsage, "nope"},
		{[]string{"copy", "--from", "a", "--to", "b"}, exitFailure, "piosnap init"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), append([]string{"-c", cfg}, tt.args...), Env{
				Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" },
			})
			if code != tt.code || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut.String(), tt.code, tt.want)
			}
		})
	}
}
