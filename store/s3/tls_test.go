package s3

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLS puts a real TLS proxy with a self-signed certificate in front
// of MinIO and checks ca_file handling.
func TestTLS(t *testing.T) {
	m, direct := newBucket(t)
	srv := httptest.NewUnstartedServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme, r.Out.URL.Host = "http", m.Endpoint
		r.Out.Host = r.In.Host
	}})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsEndpoint := strings.TrimPrefix(srv.URL, "https://")

	tests := []struct {
		name     string
		endpoint string
		tls      bool
		caFile   string
		wantErr  string
	}{
		{"trusted", tlsEndpoint, true, caFile, ""},
		{"untrusted", tlsEndpoint, true, "", "set ca_file"},
		{"plain server", m.Endpoint, true, caFile, "set tls = false"},
		{"junk ca file", tlsEndpoint, true, junk, "holds no PEM certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := direct
			cfg.Endpoint, cfg.TLS, cfg.CAFile = tt.endpoint, tt.tls, tt.caFile
			var logs bytes.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			b, err := Open(context.Background(), cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open = %v; want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(logs.String(), "retrying") {
					t.Errorf("a TLS misconfiguration was retried; it should fail at once:\n%s", logs.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			want := []byte("over tls")
			if err := b.Put(context.Background(), "tls/obj", bytes.NewReader(want), int64(len(want))); err != nil {
				t.Fatalf("Put: %v", err)
			}
			rc, err := b.Get(context.Background(), "tls/obj")
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if got, _ := io.ReadAll(rc); !bytes.Equal(got, want) {
				t.Errorf("Get = %q, want %q", got, want)
			}
		})
	}
}
