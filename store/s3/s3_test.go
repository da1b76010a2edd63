package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/storetest"
)

// fastRetry keeps failing tests quick.
var fastRetry = Retry{Attempts: 4, Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Total: 5 * time.Second}

// newBucket starts MinIO and creates a bucket on it.
func newBucket(t *testing.T) (*storetest.MinIO, Config) {
	t.Helper()
	m := storetest.StartMinIO(t)
	cfg := Config{
		Endpoint:  m.Endpoint,
		Bucket:    "piosnap-test",
		Region:    "us-east-1",
		PathStyle: true,
		AccessKey: m.AccessKey,
		SecretKey: m.SecretKey,
		Retry:     fastRetry,
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(context.Background()); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	return m, cfg
}

func TestConformance(t *testing.T) {
	_, cfg := newBucket(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Backend {
		c := cfg
		c.Prefix = fmt.Sprintf("repo-%d/", n.Add(1))
		c.MemoryLimit = 8 << 20 // the 20 MiB stream goes through a spool file
		c.SpoolDir = t.TempDir()
		b, err := Open(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestConformanceNoPrefix runs the suite on a whole bucket.
func TestConformanceNoPrefix(t *testing.T) {
	_, cfg := newBucket(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Backend {
		c := cfg
		c.Bucket = fmt.Sprintf("whole-%d", n.Add(1))
		b, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.CreateBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestLocation(t *testing.T) {
	tests := []struct {
		prefix, want string
	}{
		{"", "s3://bkt at minio.lan:9000"},
		{"a/b/", "s3://bkt/a/b at minio.lan:9000"},
		{"/a/", "s3://bkt/a at minio.lan:9000"},
	}
	for _, tt := range tests {
		b, err := New(Config{Endpoint: "minio.lan:9000", Bucket: "bkt", Prefix: tt.prefix, AccessKey: "AKIAEXAMPLE", SecretKey: "very-secret-key"})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Location(); got != tt.want {
			t.Errorf("Location() with prefix %q = %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

func TestNewInvalidConfig(t *testing.T) {
	ok := Config{Endpoint: "h:9000", Bucket: "b", AccessKey: "ak", SecretKey: "sk"}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "no endpoint"},
		{"scheme", func(c *Config) { c.Endpoint = "http://h:9000" }, "without a scheme"},
		{"no bucket", func(c *Config) { c.Bucket = "" }, "no bucket"},
		{"no access key", func(c *Config) { c.AccessKey = "" }, "AWS_ACCESS_KEY_ID"},
		{"no secret key", func(c *Config) { c.SecretKey = "" }, "AWS_SECRET_ACCESS_KEY"},
		{"ca without tls", func(c *Config) { c.CAFile = "/x.pem" }, "tls is off"},
		{"missing ca", func(c *Config) { c.TLS, c.CAFile = true, "/nonexistent/ca.pem" }, "/nonexistent/ca.pem"},
		{"bad host", func(c *Config) { c.Endpoint = "bad host:1" }, "bad host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v; want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestOpenMissingBucket(t *testing.T) {
	_, cfg := newBucket(t)
	cfg.Bucket = "does-not-exist"
	_, err := Open(context.Background(), cfg)
	if !errors.Is(err, ErrNoBucket) {
		t.Fatalf("Open(missing bucket) = %v; want ErrNoBucket", err)
	}
	for _, want := range []string{`"does-not-exist"`, "piosnap init --create-bucket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}

	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 { // creating twice is fine
		if err := b.CreateBucket(ctx); err != nil {
			t.Fatalf("CreateBucket: %v", err)
		}
	}
	if _, err := Open(ctx, cfg); err != nil {
		t.Fatalf("Open after CreateBucket: %v", err)
	}
}

func TestBadCredentials(t *testing.T) {
	m, cfg := newBucket(t)
	tests := []struct {
		name, access, secret, want string
	}{
		{"unknown access key", "NOSUCHKEY1234", "wrong-secret-9f8e7d6c", "check the access key"},
		{"wrong secret", m.AccessKey, "wrong-secret-9f8e7d6c", "check the secret key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			c := cfg
			c.AccessKey, c.SecretKey = tt.access, tt.secret
			c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			_, err := Open(context.Background(), c)
			if err == nil {
				t.Fatal("Open with bad credentials succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.secret) || strings.Contains(err.Error(), tt.access) ||
				strings.Contains(err.Error(), m.SecretKey) {
				t.Errorf("error %q contains a credential", err)
			}
			// Failing at once is checked by the log: every retry logs.
			if logs.Len() != 0 {
				t.Errorf("a permanent error was retried or logged: %s", logs.String())
			}
		})
	}
}

// TestServerDown stops MinIO: Put must give up after the configured
// attempts, name the server, and keep the secret out of errors and logs.
func TestServerDown(t *testing.T) {
	m, cfg := newBucket(t)
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()
	start := time.Now()
	err = b.Put(context.Background(), "x", strings.NewReader("hello"), 5)
	if err == nil {
		t.Fatal("Put to a stopped server succeeded")
	}
	// fastRetry gives up within 5 s; a wider bound only catches retries
	// that do not end, whatever the machine's load.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Put took %v; want it bounded by the retry policy", d)
	}
	for _, want := range []string{"gave up after 4 attempts", m.Endpoint} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got := strings.Count(logs.String(), "retrying s3 request"); got != 3 {
		t.Errorf("logged %d retries, want 3:\n%s", got, logs.String())
	}
	for _, s := range []string{err.Error(), logs.String()} {
		if strings.Contains(s, m.SecretKey) || strings.Contains(s, m.AccessKey) {
			t.Errorf("credentials leaked into %q", s)
		}
	}
}

// TestServerRestart restarts MinIO while a Put is retrying. The retries
// are bounded by time alone, and by more than the 30 s that Start allows
// MinIO to come up, so the test does not race its retry budget against
// how long a loaded machine takes to start MinIO.
func TestServerRestart(t *testing.T) {
	m, cfg := newBucket(t)
	cfg.Retry = Retry{Attempts: math.MaxInt, Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Total: time.Minute}
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()
	want := bytes.Repeat([]byte("restart"), 100000)
	done := make(chan error, 1)
	go func() {
		done <- b.Put(context.Background(), "after/restart", bytes.NewReader(want), int64(len(want)))
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Put returned while the server was down: %v", err)
	default:
	}
	m.Start()
	if err := <-done; err != nil {
		t.Fatalf("Put across a restart: %v", err)
	}
	rc, err := b.Get(context.Background(), "after/restart")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Get after restart = %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
}

// TestCancelWhileRetrying checks that cancelling stops the retry loop.
func TestCancelWhileRetrying(t *testing.T) {
	m, cfg := newBucket(t)
	cfg.Retry = Retry{Attempts: 100, Initial: time.Second, Max: time.Second, Total: time.Minute}
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.Stat(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat = %v; want context.DeadlineExceeded", err)
	}
	// Without the context, the retries would go on for a minute.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Stat took %v after its context ended", d)
	}
}

func TestNotFoundIsFSErrNotExist(t *testing.T) {
	_, cfg := newBucket(t)
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Stat(context.Background(), "chunks/none")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat = %v; want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "chunks/none") || !strings.Contains(err.Error(), b.Location()) {
		t.Errorf("error %q does not name the object and location", err)
	}
}
