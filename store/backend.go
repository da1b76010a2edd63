package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// Backend is the flat namespace of named objects a Repository keeps its files in:
// a directory on local disk, or a bucket prefix on S3-compatible storage.
//
// Names are slash-separated relative paths such as "chunks/ab/ab12…" or
// "versions/<id>.json". A name never starts with a slash and never contains
// "." or ".." elements.
//
// A name that CheckName refuses gives an error wrapping fs.ErrInvalid from
// every method.
//
// Every method takes a context first; a cancelled context stops the call and
// returns the context's error. Implementations must be safe for concurrent use.
type Backend interface {
	// Put stores exactly size bytes read from r under name. The object becomes
	// visible only when it is complete: a failed or cancelled Put leaves either
	// the previous object of that name or nothing. Put replaces an existing
	// object. If r yields fewer or more than size bytes, Put fails and stores
	// nothing.
	Put(ctx context.Context, name string, r io.Reader, size int64) error

	// Get opens the object for reading. A missing object gives an error that
	// satisfies errors.Is(err, fs.ErrNotExist).
	Get(ctx context.Context, name string) (io.ReadCloser, error)

	// GetRange opens length bytes of the object starting at offset. A range
	// that runs past the end of the object is an error (the reader may fail
	// on its last read rather than at once). A missing object gives an error
	// that satisfies errors.Is(err, fs.ErrNotExist).
	GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)

	// Stat returns the size of the object. A missing object gives an error that
	// satisfies errors.Is(err, fs.ErrNotExist).
	Stat(ctx context.Context, name string) (int64, error)

	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error

	// List calls fn for every object whose name starts with prefix, in no
	// particular order, with the object's full name and size. An error from fn
	// stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(name string, size int64) error) error

	// Location describes the backend for messages, e.g. "/srv/piosnap" or
	// "s3://bucket/prefix at minio.lan:9000". It never contains credentials.
	Location() string
}

// TempRemover is implemented by a Backend whose Put goes through
// temporary objects that a killed process leaves behind (store/local).
type TempRemover interface {
	// RemoveStaleTemp removes the temporary objects among and below the
	// names starting with prefix (for a prefix ending in "/"; "" means
	// everywhere) that were last written more than olderThan ago, and
	// returns how many it removed.
	RemoveStaleTemp(ctx context.Context, prefix string, olderThan time.Duration) (int, error)
}

// CheckName reports whether name is a valid object name: relative,
// slash-separated, without empty, "." or ".." elements, backslashes or NUL.
// The error wraps fs.ErrInvalid. Backends call it before touching storage.
func CheckName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("object name %q %s; use a relative slash-separated name like \"chunks/ab/ab12\": %w", name, why, fs.ErrInvalid)
	}
	switch {
	case name == "":
		return bad("is empty")
	case strings.HasPrefix(name, "/"):
		return bad("is absolute")
	case strings.ContainsAny(name, "\\\x00"):
		return bad("contains a backslash or NUL")
	}
	for elem := range strings.SplitSeq(name, "/") {
		switch elem {
		case "":
			return bad("has an empty element")
		case ".", "..":
			return bad("has a . or .. element")
		}
	}
	return nil
}

// ContextReader returns a reader of r whose reads fail once ctx is done, so
// that a long copy into a backend stops promptly on cancellation.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// retryNotifyKey is the context key of WithRetryNotify.
type retryNotifyKey struct{}

// WithRetryNotify returns a context whose backend requests tell notify
// about every attempt that failed and is about to be retried. A writer of
// several stores uses it to see that one store stopped answering while its
// backend is still retrying, instead of waiting for the whole retry budget.
func WithRetryNotify(ctx context.Context, notify func(err error)) context.Context {
	return context.WithValue(ctx, retryNotifyKey{}, notify)
}

// ErrAbandoned is the cause with which a writer of several stores
// cancels the requests of a store that failed attempt after attempt while
// the others waited. A Backend with a circuit breaker treats the server as
// down then, as when a request has used up its retries.
var ErrAbandoned = errors.New("the store stopped answering while the others waited")

// NotifyRetry is what a Backend that retries calls after a failed attempt,
// before it waits for the next one; it does nothing unless ctx came from
// WithRetryNotify.
func NotifyRetry(ctx context.Context, err error) {
	if notify, ok := ctx.Value(retryNotifyKey{}).(func(error)); ok {
		notify(err)
	}
}
