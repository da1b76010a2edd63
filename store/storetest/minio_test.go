package storetest

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestFindMinIO(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "minio-custom")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	gopath := t.TempDir()
	if err := os.MkdirAll(filepath.Join(gopath, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, minioBin, path, gopath, want string
	}{
		{"MINIO_BIN", bin, "", gopath, bin},
		{"MINIO_BIN missing", filepath.Join(dir, "nope"), "", gopath, ""},
		{"nothing", "", t.TempDir(), gopath, ""},
		{"GOPATH bin", "", t.TempDir(), gopath, filepath.Join(gopath, "bin", "minio")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MINIO_BIN", tt.minioBin)
			t.Setenv("PATH", tt.path)
			t.Setenv("GOPATH", tt.gopath)
			if tt.want != "" && tt.minioBin == "" {
				if err := os.WriteFile(tt.want, []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(tt.want)
			}
			if got := findMinIO(); got != tt.want {
				t.Errorf("findMinIO() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMinIOStopStart(t *testing.T) {
	m := StartMinIO(t)
	live := "http://" + m.Endpoint + "/minio/health/live"
	check := func(wantUp bool) {
		t.Helper()
		resp, err := http.Get(live)
		if err == nil {
			resp.Body.Close()
		}
		if up := err == nil && resp.StatusCode == http.StatusOK; up != wantUp {
			t.Errorf("server up = %v (err %v), want %v", up, err, wantUp)
		}
	}
	check(true)
	m.Stop()
	check(false)
	m.Stop() // stopping twice is harmless
	m.Start()
	check(true)
	m.Start() // starting a running server is harmless
	check(true)
}
