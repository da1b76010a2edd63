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

// With the off-site MinIO stopped, a copy between two healthy stores works
// and never touches the stopped server; a copy from or to it fails at once,
// naming it, and changes nothing.
func TestCopyWithS3Down(t *testing.T) {
	h := newS3Harness(t, 1<<20, "worker1")
	stores := []string{h.localStore("local"), h.localStore("usb"), h.s3Store("offsite", "copydown", "")}
	cfg := h.config("copydown", stores...)
	h.mustMain(cfg, "init", "--create-bucket")
	// The backup skips usb, so that the copy has something to send.
	h.mustMain(h.config("copydown-backup", stores[0], stores[2]), "backup")
	h.minio.Stop()
	t.Cleanup(h.minio.Start) // the harness stops it again

	code, out, errOut := h.main(context.Background(), cfg, "copy", "--from", "local", "--to", "usb")
	if code != exitOK || !strings.Contains(out, "copy local -> usb: 2 versions copied") {
		t.Fatalf("copy local -> usb with MinIO down: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(errOut, "offsite") {
		t.Errorf("a copy between two local stores reached for the stopped S3 store:\n%s", errOut)
	}
	if rows := h.list(cfg, "--store", "usb"); len(rows) != 2 {
		t.Errorf("usb holds %d versions after the copy; want 2", len(rows))
	}
	for _, args := range [][]string{
		{"copy", "--from", "offsite", "--to", "usb"},
		{"copy", "--from", "usb", "--to", "offsite"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := h.main(context.Background(), cfg, args...)
			if code != exitFailure || !strings.Contains(errOut, `store "offsite"`) || !strings.Contains(errOut, "up and reachable") {
				t.Errorf("exit %d, want %d and an error naming the store and what to check\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errOut)
			}
			if n := strings.Count(errOut, "retrying s3 request"); n > 2 {
				t.Errorf("%d retries against the stopped server; the probe allows 2:\n%s", n, errOut)
			}
		})
	}
	if rows := h.list(cfg, "--store", "usb"); len(rows) != 2 {
		t.Errorf("usb holds %d versions after the failed copies; want 2", len(rows))
	}
}
