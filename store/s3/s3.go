// Package s3 implements store.Backend on a bucket of an S3-compatible
// object store such as MinIO, using minio-go.
//
// Every upload is a single PUT of known size carrying a Content-MD5 the
// server verifies, so no multipart buffers are ever allocated. The body
// must be re-readable for retries: a reader that is both io.ReaderAt and
// io.Seeker (bytes.Reader, os.File) is uploaded in place; any other reader
// is first copied into memory (objects up to Config.MemoryLimit) or into a
// temporary file. Transient failures (network errors, 5xx, SlowDown,
// timeouts) are retried with capped exponential backoff; permanent ones
// (bad credentials, access denied, missing bucket) fail at once with a
// message that says what to fix. No error or log line carries the
// credentials.
package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/piosnap/piosnap/store"
)

// ErrNoBucket is wrapped by errors about a bucket that does not exist.
var ErrNoBucket = errors.New("bucket does not exist")

// Config says where the bucket is and how to reach it.
type Config struct {
	// Endpoint is the server's host:port, e.g. "minio.lan:9000".
	Endpoint string
	// Bucket holds the repository; Prefix, if set, is a folder inside it.
	Bucket, Prefix string
	// Region is the bucket's region; empty lets the client ask the server.
	Region string
	// PathStyle forces path-style requests (host/bucket/key), which MinIO
	// behind a plain host name usually needs.
	PathStyle bool
	// TLS selects https. CAFile, if set, is a PEM file of CAs to trust
	// instead of the system roots.
	TLS    bool
	CAFile string
	// AccessKey and SecretKey authenticate requests (see LoadCredentials).
	AccessKey, SecretKey string

	// Retry bounds the retries of transient failures; zero fields take
	// the defaults of DefaultRetry.
	Retry Retry
	// MemoryLimit is the largest non-seekable upload buffered in memory;
	// larger ones are copied to a temporary file in SpoolDir (default
	// os.TempDir()). Zero means 16 MiB.
	MemoryLimit int64
	SpoolDir    string
	// Logger receives a warning for every retried failure; nil discards.
	Logger *slog.Logger

	// wrapTransport, for tests, wraps the HTTP transport.
	wrapTransport func(http.RoundTripper) http.RoundTripper
}

// partSize is passed to minio-go for every upload. Uploads are single
// PUTs, so it only guards against minio-go sizing a multipart buffer.
const partSize = 16 << 20

// defaultMemoryLimit is the default Config.MemoryLimit.
const defaultMemoryLimit = 16 << 20

// Backend stores objects in a bucket. It is safe for concurrent use.
type Backend struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	region   string
	prefix   string // "" or ends in "/"
	location string
	retry    Retry
	memLimit int64
	spoolDir string
	log      *slog.Logger
	secrets  []string // redacted from every error message
	listPage int      // keys per List request; 0 is the server's default

	mu   sync.Mutex
	down time.Time // when a request that gave up on the server started; zero while it answers
}

var _ store.Backend = (*Backend)(nil)

// New checks cfg and returns a Backend without contacting the server.
// Most callers want Open; New suits CreateBucket on a bucket that does
// not exist yet.
func New(cfg Config) (*Backend, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("s3: no endpoint; set the server's host:port, e.g. minio.lan:9000")
	}
	if strings.Contains(cfg.Endpoint, "://") {
		return nil, fmt.Errorf("s3: endpoint %q must be host:port without a scheme; use tls = true for https", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket; set the bucket name")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("s3: missing access key or secret key; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a credentials file")
	}
	transport, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	var rt http.RoundTripper = transport
	if cfg.wrapTransport != nil {
		rt = cfg.wrapTransport(rt)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.TLS,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    rt,
		MaxRetries:   1, // Backend.do retries, with its own policy
	})
	if err != nil {
		return nil, fmt.Errorf("s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	location := "s3://" + cfg.Bucket
	if prefix != "" {
		location += "/" + prefix
		prefix += "/"
	}
	location += " at " + cfg.Endpoint
	b := &Backend{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   cfg.Bucket,
		region:   cfg.Region,
		prefix:   prefix,
		location: location,
		retry:    cfg.Retry.withDefaults(),
		memLimit: cfg.MemoryLimit,
		spoolDir: cfg.SpoolDir,
		log:      cfg.Logger,
		secrets:  []string{cfg.SecretKey, cfg.AccessKey},
	}
	if b.memLimit <= 0 {
		b.memLimit = defaultMemoryLimit
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("backend", "s3", "location", location)
	return b, nil
}

func newTransport(cfg Config) (*http.Transport, error) {
	t, err := minio.DefaultTransport(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("s3: http transport: %w", err)
	}
	t.ResponseHeaderTimeout = 2 * time.Minute
	if cfg.CAFile == "" {
		return t, nil
	}
	if !cfg.TLS {
		return nil, fmt.Errorf("s3: ca_file %s is set but tls is off; enable tls or drop ca_file", cfg.CAFile)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("s3: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3: CA file %s holds no PEM certificates; point ca_file at the server's CA certificate", cfg.CAFile)
	}
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.TLSClientConfig.RootCAs = pool
	return t, nil
}

// Open returns a Backend after checking that the credentials work and the
// bucket exists. A missing bucket gives an error wrapping ErrNoBucket.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := b.Check(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// Check lists at most one object to prove that the server answers, the
// credentials are accepted and the bucket exists. A server that does not
// answer is retried for a few seconds only (at most 3 attempts in 5 s), so
// that a command reports an unreachable store at once.
func (b *Backend) Check(ctx context.Context) error {
	return b.retryUnder(ctx, probeRetry(b.retry), "open", "", func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // stops minio-go's listing goroutine
		for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, MaxKeys: 1}) {
			return obj.Err
		}
		return nil
	})
}

// CreateBucket creates the bucket in the configured region. A bucket that
// already exists and belongs to these credentials is not an error.
func (b *Backend) CreateBucket(ctx context.Context) error {
	return b.do(ctx, "create bucket", "", func(ctx context.Context) error {
		err := b.client.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{Region: b.region})
		if code(err) == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return err
	})
}

// Location returns e.g. "s3://bucket/prefix at host:port".
func (b *Backend) Location() string { return b.location }

// key checks name and maps it to the object key.
func (b *Backend) key(op, name string) (string, error) {
	if err := store.CheckName(name); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return b.prefix + name, nil
}

// Put uploads exactly size bytes from r in one PUT with a Content-MD5.
func (b *Backend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	key, err := b.key("put", name)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d; pass the object's exact size: %w", name, size, fs.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	body, err := b.prepare(ctx, r, size)
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	defer body.close()
	opts := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		PartSize:         partSize,
		DisableMultipart: true,
		// Content-MD5 is the checksum the server verifies. Without this,
		// plain-http uploads would use a streaming signature whose
		// per-chunk failures are indistinguishable from a bad secret key.
		DisableContentSha256: true,
	}
	return b.do(ctx, "put", name, func(ctx context.Context) error {
		r := body.attempt()
		defer r.end()
		_, err := b.core.PutObject(ctx, b.bucket, key, r, size, body.md5, "", opts)
		return err
	})
}

// Get opens the object. The request is retried until the response starts;
// a failure while reading the body is returned by Read, not retried.
func (b *Backend) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	key, err := b.key("get", name)
	if err != nil {
		return nil, err
	}
	var rc io.ReadCloser
	err = b.do(ctx, "get", name, func(ctx context.Context) error {
		var err error
		rc, _, _, err = b.core.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return rc, nil
}

// GetRange opens length bytes of the object from offset with a ranged GET.
// The request is retried until the response starts.
func (b *Backend) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	key, err := b.key("get", name)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: bad range %d+%d: %w", name, offset, length, fs.ErrInvalid)
	}
	if length == 0 {
		if _, err := b.Stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	var rc io.ReadCloser
	err = b.do(ctx, "get", name, func(ctx context.Context) error {
		var opts minio.GetObjectOptions
		if err := opts.SetRange(offset, offset+length-1); err != nil {
			return err
		}
		var info minio.ObjectInfo
		var err error
		rc, info, _, err = b.core.GetObject(ctx, b.bucket, key, opts)
		if err == nil && info.Size != length {
			rc.Close()
			return fmt.Errorf("range %d+%d: server sent %d bytes", offset, length, info.Size)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return rc, nil
}

// Stat returns the object's size.
func (b *Backend) Stat(ctx context.Context, name string) (int64, error) {
	key, err := b.key("stat", name)
	if err != nil {
		return 0, err
	}
	var size int64
	err = b.do(ctx, "stat", name, func(ctx context.Context) error {
		info, err := b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
		size = info.Size
		return err
	})
	return size, err
}

// Delete removes the object; a missing object is not an error.
func (b *Backend) Delete(ctx context.Context, name string) error {
	key, err := b.key("delete", name)
	if err != nil {
		return err
	}
	err = b.do(ctx, "delete", name, func(ctx context.Context) error {
		return b.client.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{})
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// callbackError marks an error returned by List's callback, which is
// passed through unchanged and never retried.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }
func (e callbackError) Unwrap() error { return e.err }

// List lists the objects under prefix. A transient failure resumes the
// listing after the last name already reported, so fn never sees a name
// twice.
func (b *Backend) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	if strings.ContainsAny(prefix, "\\\x00") || strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("list: prefix %q must be a relative slash-separated name prefix like \"chunks/\": %w", prefix, fs.ErrInvalid)
	}
	last := ""
	err := b.do(ctx, "list", prefix, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // stops minio-go's listing goroutine on early return
		opts := minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true, StartAfter: last, MaxKeys: b.listPage}
		for obj := range b.client.ListObjects(ctx, b.bucket, opts) {
			if obj.Err != nil {
				return obj.Err
			}
			if err := fn(strings.TrimPrefix(obj.Key, b.prefix), obj.Size); err != nil {
				return callbackError{err}
			}
			last = obj.Key
		}
		return nil
	})
	var cb callbackError
	if errors.As(err, &cb) {
		return fmt.Errorf("list %q: %w", prefix, cb.err)
	}
	return err
}
