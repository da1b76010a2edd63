package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// lateTransport answers the first PUT itself with 503 SlowDown after
// reading the start of its body, and keeps that body, as net/http may go on
// reading a request's body after the round trip has returned (see
// http.RoundTripper). It reads the kept body again once the next PUT has
// begun to read its own, and when asked (late): a late read that still
// finds the data may race with the next attempt, or with a caller that
// reuses its buffer once Put has returned.
type lateTransport struct {
	next http.RoundTripper

	mu    sync.Mutex
	puts  int
	stale io.Reader // the first PUT's body
	// during is the stale read made while the second PUT was sent.
	during lateRead
}

// lateRead is the outcome of one read of a stale body.
type lateRead struct {
	n   int
	err error
}

func (lt *lateTransport) late() lateRead {
	buf := make([]byte, 4096)
	n, err := lt.stale.Read(buf)
	return lateRead{n, err}
}

func (lt *lateTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut {
		return lt.next.RoundTrip(req)
	}
	lt.mu.Lock()
	lt.puts++
	n := lt.puts
	lt.mu.Unlock()
	switch n {
	case 1:
		if _, err := io.ReadFull(req.Body, make([]byte, 4096)); err != nil {
			return nil, err
		}
		lt.stale = req.Body
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/xml"}},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: req}, nil
	case 2:
		r2 := req.Clone(req.Context())
		r2.Body = &firstRead{ReadCloser: req.Body, before: func() {
			during := lt.late()
			lt.mu.Lock()
			lt.during = during
			lt.mu.Unlock()
		}}
		return lt.next.RoundTrip(r2)
	}
	return lt.next.RoundTrip(req)
}

// firstRead calls before ahead of its first Read.
type firstRead struct {
	io.ReadCloser
	before func()
	once   sync.Once
}

func (f *firstRead) Read(p []byte) (int, error) {
	f.once.Do(f.before)
	return f.ReadCloser.Read(p)
}

// An attempt's body yields nothing once the attempt is over: a transport
// that goes on reading it after the round trip (net/http may) neither
// shifts the next attempt's bytes nor reads the caller's buffer after Put
// has returned, when the caller may be writing the next pack into it.
func TestPutEndsEachAttemptsBody(t *testing.T) {
	ctx := context.Background()
	_, cfg := newBucket(t)
	cfg.Prefix = "late-read"
	lt := &lateTransport{}
	cfg.wrapTransport = func(rt http.RoundTripper) http.RoundTripper { lt.next = rt; return lt }
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10)
	buf := bytes.Clone(payload)
	if err := b.Put(ctx, "obj", bytes.NewReader(buf), int64(len(buf))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	lt.mu.Lock()
	puts, during := lt.puts, lt.during
	lt.mu.Unlock()
	if puts != 2 {
		t.Errorf("%d PUTs, want 2 (one refused, one stored)", puts)
	}
	if during.n > 0 || !errors.Is(during.err, errAttemptOver) {
		t.Errorf("the refused attempt's body yielded %d bytes (%v) while the next attempt was sent", during.n, during.err)
	}
	// The caller reuses its buffer, as a store's goroutine does with the
	// pack it has just stored.
	copy(buf, bytes.Repeat([]byte{'x'}, len(buf)))
	if after := lt.late(); after.n > 0 || !errors.Is(after.err, errAttemptOver) {
		t.Errorf("the refused attempt's body yielded %d bytes (%v) after Put returned (%q...)", after.n, after.err, buf[:min(after.n, 8)])
	}
	rc, err := b.Get(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, payload) {
		t.Errorf("stored %d bytes differ from the %d put", len(got), len(payload))
	}
}
