package s3

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/piosnap/piosnap/store"
)

// Retry bounds how transient failures are retried: waits start at
// Initial and double up to Max, with jitter, until Attempts tries have
// been made or the next wait would pass Total since the first try.
type Retry struct {
	Attempts int
	Initial  time.Duration
	Max      time.Duration
	Total    time.Duration
}

// DefaultRetry returns the policy used for zero fields of Config.Retry:
// 8 attempts with waits from 500ms doubling up to 30s, jittered, which
// rides out an outage of 30 s to a minute; Total (5 minutes) bounds the
// whole call, slow attempts included.
func DefaultRetry() Retry {
	return Retry{Attempts: 8, Initial: 500 * time.Millisecond, Max: 30 * time.Second, Total: 5 * time.Minute}
}

func (r Retry) withDefaults() Retry {
	d := DefaultRetry()
	if r.Attempts <= 0 {
		r.Attempts = d.Attempts
	}
	if r.Initial <= 0 {
		r.Initial = d.Initial
	}
	if r.Max <= 0 {
		r.Max = d.Max
	}
	if r.Max < r.Initial {
		r.Max = r.Initial
	}
	if r.Total <= 0 {
		r.Total = d.Total
	}
	return r
}

// probeRetry is the policy of the reachability check that Open makes: a
// server that does not answer within a few seconds is reported at once,
// so that a command serves its other stores instead of waiting a minute.
func probeRetry(r Retry) Retry {
	return Retry{Attempts: min(r.Attempts, 3), Initial: r.Initial, Max: r.Max, Total: min(r.Total, 5*time.Second)}
}

// do runs fn under the backend's retry policy; see retry.
func (b *Backend) do(ctx context.Context, op, name string, fn func(context.Context) error) error {
	return b.retryUnder(ctx, b.retry, op, name, fn)
}

// retryUnder runs fn until it succeeds, fails permanently, or policy is
// used up, and turns the final error into one that names the operation,
// says what to fix and contains no credentials.
//
// It is also the backend's circuit breaker: once a request has used up its
// retries on a transient failure (the server is down or unreachable), later
// requests are tried once, without retries, until one succeeds. A run
// against a dead server thus waits for it once, not once per object.
func (b *Backend) retryUnder(ctx context.Context, policy Retry, op, name string, fn func(context.Context) error) error {
	start := time.Now()
	wait := policy.Initial
	down := b.downSince()
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if ctx.Err() != nil && err != nil {
			b.abandoned(ctx, start, attempt > 1)
			return b.wrap(op, name, "", ctx.Err())
		}
		var cb callbackError
		if answered := err == nil || errors.As(err, &cb) || !transient(err); answered && !down.IsZero() {
			b.setDown(time.Time{})
			down = time.Time{}
			b.log.Info("s3 server answers again", "op", op)
		}
		switch {
		case err == nil:
			return nil
		case errors.As(err, &cb):
			return err
		case !transient(err):
			return b.explain(op, name, err)
		}
		if !down.IsZero() {
			hint := fmt.Sprintf("not retried: the server has not answered since %s; %s",
				down.Format(time.TimeOnly), b.retryHint(err))
			return b.wrap(op, name, hint, err)
		}
		jittered := store.Jitter(wait)
		if attempt >= policy.Attempts || time.Since(start)+jittered > policy.Total {
			b.setDown(start)
			hint := fmt.Sprintf("gave up after %d attempts in %v; %s",
				attempt, time.Since(start).Round(time.Millisecond), b.retryHint(err))
			return b.wrap(op, name, hint, err)
		}
		b.log.Warn("retrying s3 request", "op", op, "name", name, "attempt", attempt,
			"wait", jittered, "err", b.redact(err.Error()))
		store.NotifyRetry(ctx, b.wrap(op, name, "", err))
		if err := store.Sleep(ctx, jittered); err != nil {
			b.abandoned(ctx, start, true)
			return b.wrap(op, name, "", err)
		}
		wait = min(2*wait, policy.Max)
	}
}

// abandoned opens the circuit breaker as if the request had used up its
// retries when its caller cancelled it for failing (store.ErrAbandoned):
// a writer of several stores stops waiting for a store after a few failed
// attempts, and the run's later requests to the server (releasing its
// lock) must not wait for it a whole retry budget either.
func (b *Backend) abandoned(ctx context.Context, start time.Time, failed bool) {
	if failed && errors.Is(context.Cause(ctx), store.ErrAbandoned) {
		b.setDown(start)
	}
}

// downSince returns when the request that gave up on the server started,
// or the zero time while the server is thought to be up.
func (b *Backend) downSince() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down
}

func (b *Backend) setDown(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.IsZero() || b.down.IsZero() {
		b.down = t
	}
}

// transient reports whether err may go away if the request is repeated.
func transient(err error) bool {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code != "" || resp.StatusCode != 0) {
		switch resp.Code {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "NoSuchBucket",
			"NoSuchKey", "InvalidBucketName", "AuthorizationHeaderMalformed", "EntityTooLarge":
			return false
		case "SlowDown", "SlowDownWrite", "SlowDownRead", "RequestTimeout", "InternalError",
			"ServiceUnavailable", "Throttling", "RequestLimitExceeded", "BadDigest",
			"XAmzContentSHA256Mismatch", "IncompleteBody", "XMinioServerNotInitialized":
			return true
		}
		return resp.StatusCode >= 500 || resp.StatusCode == 408 || resp.StatusCode == 429
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// retryHint says what to check after a transient error kept recurring.
func (b *Backend) retryHint(err error) string {
	host := b.client.EndpointURL().Host
	switch c := code(err); c {
	case "":
		return fmt.Sprintf("check that the server at %s is up and reachable", host)
	case "BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody":
		return fmt.Sprintf("the server at %s kept receiving different bytes than were sent (%s); check the network and any proxy in between", host, c)
	default:
		return fmt.Sprintf("the server at %s kept answering %s; check its health and load", host, c)
	}
}

// code returns the S3 error code of err, or "".
func code(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

// explain turns a permanent failure into an error that says what to fix.
func (b *Backend) explain(op, name string, err error) error {
	host := b.client.EndpointURL().Host
	switch code(err) {
	case "NoSuchKey":
		return b.wrap(op, name, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist})
	case "NoSuchBucket":
		return b.wrap(op, name, fmt.Sprintf("bucket %q does not exist at %s; create it with `piosnap init --create-bucket`", b.bucket, host),
			errors.Join(ErrNoBucket, err))
	case "InvalidAccessKeyId":
		return b.wrap(op, name, fmt.Sprintf("the server at %s does not know the access key; check the access key (AWS_ACCESS_KEY_ID, PIOSNAP_S3_ACCESS_KEY or the credentials file)", host), err)
	case "SignatureDoesNotMatch":
		return b.wrap(op, name, fmt.Sprintf("the server at %s rejected the request signature; check the secret key (AWS_SECRET_ACCESS_KEY, PIOSNAP_S3_SECRET_KEY or the credentials file) and the clock", host), err)
	case "AccessDenied":
		return b.wrap(op, name, fmt.Sprintf("access denied; give these credentials list, get, put and delete rights on bucket %q", b.bucket), err)
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknownAuthority) || errors.As(err, &invalid):
		return b.wrap(op, name, fmt.Sprintf("the TLS certificate of %s is not trusted; set ca_file to the CA that signed it", host), err)
	case errors.As(err, &hostname):
		return b.wrap(op, name, fmt.Sprintf("the TLS certificate of %s is for another host name; use the name the certificate carries as endpoint", host), err)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return b.wrap(op, name, fmt.Sprintf("the server at %s speaks plain http; set tls = false", host), err)
	}
	return b.wrap(op, name, "", err)
}

// opError is a failed operation whose message has the credentials
// removed. It unwraps to the underlying errors for errors.Is and As.
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// wrap builds the error for a failed operation: "op name in location:
// hint: cause", redacted.
func (b *Backend) wrap(op, name, hint string, err error) error {
	msg := op
	if name != "" {
		msg += " " + name
	}
	msg += " in " + b.location
	if hint != "" {
		msg += ": " + hint
	}
	msg += ": " + err.Error()
	return &opError{msg: b.redact(msg), err: err}
}

// redact removes the credentials from s.
func (b *Backend) redact(s string) string {
	for _, secret := range b.secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[REDACTED]")
		}
	}
	return s
}
