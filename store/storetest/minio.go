package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MinIOInstall is the command that installs the MinIO server the tests use.
const MinIOInstall = "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIO is a real MinIO server on a loopback port with a temporary data
// directory, for tests. Stop and Start restart it on the same port and
// data directory, so a client keeps working across a restart.
type MinIO struct {
	// Endpoint is host:port of the server, e.g. "127.0.0.1:41234".
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string

	t       testing.TB
	bin     string
	dataDir string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
	ran chan struct{} // closed when cmd has exited
}

// StartMinIO starts a MinIO server and stops it when the test ends. It
// finds the binary via $MINIO_BIN, PATH, or $(go env GOPATH)/bin/minio.
// Without a binary it fails the test when $CI is set and skips it
// otherwise, naming the install command either way.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := findMinIO()
	if bin == "" {
		msg := fmt.Sprintf("minio server binary not found via $MINIO_BIN (%q), PATH or $(go env GOPATH)/bin; install with: %s",
			os.Getenv("MINIO_BIN"), MinIOInstall)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	endpoint, err := freeLoopbackAddr()
	if err != nil {
		t.Fatalf("find a free loopback port for minio: %v", err)
	}
	m := &MinIO{
		Endpoint:  endpoint,
		AccessKey: "root-" + fmt.Sprintf("%08x", rand.Uint32()),
		SecretKey: "secret-" + fmt.Sprintf("%016x", rand.Uint64()),
		t:         t,
		bin:       bin,
		dataDir:   t.TempDir(),
	}
	t.Cleanup(m.Stop)
	m.Start()
	return m
}

// freeLoopbackAddr returns a free loopback address for MinIO, whose port is
// below the kernel's range for outgoing connections where it can. A port
// from that range may be taken as the source port of any connection the
// tests make, between this check and MinIO's bind or while a test has
// MinIO stopped; a port below it is taken only by a listener.
func freeLoopbackAddr() (string, error) {
	low := 32768 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			fmt.Sscan(f[0], &low)
		}
	}
	const first = 10000
	for range 50 {
		if low <= first+1000 {
			break
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first+rand.IntN(low-first)))
		if err != nil {
			continue // taken
		}
		addr := l.Addr().String()
		l.Close()
		return addr, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func findMinIO() string {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err != nil {
			return ""
		}
		gopath = string(bytes.TrimSpace(out))
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Start starts the server if it is not running and waits until it
// answers its liveness check. It fails the test if the server does not
// come up within 30 seconds.
func (m *MinIO) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	m.out = new(bytes.Buffer)
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.Endpoint,
		"--certs-dir", filepath.Join(m.dataDir, ".certs"), filepath.Join(m.dataDir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout = m.out
	cmd.Stderr = m.out
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start minio (%s): %v", m.bin, err)
	}
	ran := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(ran)
	}()
	m.cmd, m.ran = cmd, ran
	if err := waitReady(ran, m.Endpoint, 30*time.Second); err != nil {
		m.stopLocked()
		m.t.Fatalf("minio at %s: %v\noutput:\n%s", m.Endpoint, err, m.out)
	}
}

// waitReady waits until the server at endpoint serves requests: its object
// layer and its IAM sub-system are up.
func waitReady(ran <-chan struct{}, endpoint string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+"/minio/health/live", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			// MinIO answers 200 before its object layer is up, and says
			// so only in this header; requests made then fail with
			// XMinioServerNotInitialized (seen on a loaded machine).
			if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") != "offline" && iamReady(ctx, client, endpoint) {
				return nil
			}
		}
		select {
		case <-ran:
			return fmt.Errorf("server exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not live after %v (last error: %v)", timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// iamReady reports whether MinIO's IAM sub-system is up: until it is, a
// request with an unknown access key is answered 503 (IAM not initialized,
// retry) instead of 403, and a test of bad credentials sees a retryable
// error (1 run in 6 of TestBadCredentials on a loaded machine).
func iamReady(ctx context.Context, client *http.Client, endpoint string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+"/", nil)
	if err != nil {
		return false
	}
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=PIOSNAPREADYPROBE/"+now.Format("20060102")+
		"/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="+strings.Repeat("0", 64))
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusForbidden
}

// Stop stops the server and waits for it to exit; stopping a stopped
// server does nothing.
func (m *MinIO) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopLocked()
}

func (m *MinIO) stopLocked() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.ran:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.ran
	}
	m.cmd = nil
}
