package pioreactor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Task is a unit's 202 reply to an import: the huey task to poll on that
// unit. TaskID is empty when the unit accepted the upload without creating a
// task (a unit running with TESTING=1 does this).
type Task struct {
	Unit          string `json:"unit"`
	TaskID        string `json:"task_id"`
	ResultURLPath string `json:"result_url_path"`
	// Status is "accepted" from 26.5.3 on and empty before.
	Status string `json:"status"`
	// RetryAfter is set when the unit refused because an import is running.
	RetryAfter time.Duration `json:"-"`
}

// Import uploads an archive of size bytes, read from body, to unit through
// the leader (POST /api/units/<unit>/import_zipped_dot_pioreactor). The
// body is streamed with a known Content-Length in constant memory; progress,
// if not nil, is called from the sending goroutine with the number of archive
// bytes sent so far. On success the unit's task is returned; follow it with
// WaitImport. A running import matches ErrImportLocked (retry later, the
// returned Task carries RetryAfter); any error on the unit reaches the client
// as a leader 502 (ErrLeaderMasked), so ImportDirect gives better messages.
func (c *Client) Import(ctx context.Context, unit string, body io.Reader, size int64, progress func(sent int64)) (*Task, error) {
	return c.upload(ctx, c.leaderTarget(), "/api/units/"+url.PathEscape(unit)+"/import_zipped_dot_pioreactor", nil, unit, body, size, progress)
}

// ImportDirect is Import sent straight to the unit
// (POST /unit_api/import_zipped_dot_pioreactor), so that the unit's own
// error (sentinel, wrong archive, ...) reaches the caller.
func (c *Client) ImportDirect(ctx context.Context, unit string, body io.Reader, size int64, progress func(sent int64)) (*Task, error) {
	h := http.Header{"X-Pioreactor-Target": {unit}}
	return c.upload(ctx, c.unitTarget(unit), "/unit_api/import_zipped_dot_pioreactor", h, unit, body, size, progress)
}

func (c *Client) upload(ctx context.Context, to target, path string, h http.Header, unit string, body io.Reader, size int64, progress func(int64)) (*Task, error) {
	if size < 0 {
		return nil, fmt.Errorf("pioreactor: import into %s: archive size %d is negative: pass the archive's length in bytes", unit, size)
	}
	form, err := newSingleFileForm("archive", unit+"_dot_pioreactor.zip", "application/zip")
	if err != nil {
		return nil, fmt.Errorf("pioreactor: import into %s: %w", unit, err)
	}
	archive := &exactReader{r: body, size: size, progress: progress}
	resp, err := c.do(ctx, request{method: http.MethodPost, to: to, path: path, header: h,
		body:        io.MultiReader(bytes.NewReader(form.head), archive, bytes.NewReader(form.tail)),
		size:        int64(len(form.head)) + size + int64(len(form.tail)),
		contentType: form.contentType})
	if aerr := archive.failure(); aerr != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, fmt.Errorf("pioreactor: import into %s: %w", unit, aerr)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, c.explain(readAPIError(resp), "import", to, unit)
	}
	return readTask(resp, unit)
}

// singleFileForm is the framing of a multipart/form-data body holding one
// file part: head, then the file's bytes, then tail.
type singleFileForm struct {
	head, tail  []byte
	contentType string
}

func newSingleFileForm(field, filename, partType string) (singleFileForm, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	ph := make(textproto.MIMEHeader)
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	ph.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, q.Replace(field), q.Replace(filename)))
	ph.Set("Content-Type", partType)
	if _, err := mw.CreatePart(ph); err != nil {
		return singleFileForm{}, fmt.Errorf("build multipart head: %w", err)
	}
	f := singleFileForm{head: bytes.Clone(buf.Bytes()), contentType: mw.FormDataContentType()}
	buf.Reset()
	if err := mw.Close(); err != nil {
		return singleFileForm{}, fmt.Errorf("build multipart tail: %w", err)
	}
	f.tail = bytes.Clone(buf.Bytes())
	return f, nil
}

// exactReader yields exactly size bytes of r and records an error if r is
// shorter or longer, so that the declared Content-Length is never wrong.
type exactReader struct {
	r        io.Reader
	size     int64
	sent     int64
	progress func(int64)

	mu  sync.Mutex // guards err, which the transport sets from its goroutine
	err error
}

func (e *exactReader) failure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *exactReader) fail(err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.err = err
	return err
}

func (e *exactReader) Read(p []byte) (int, error) {
	if err := e.failure(); err != nil {
		return 0, err
	}
	if e.sent == e.size {
		var one [1]byte
		if n, _ := io.ReadFull(e.r, one[:]); n > 0 {
			return 0, e.fail(fmt.Errorf("archive is longer than the declared %d bytes: pass the exact size", e.size))
		}
		return 0, io.EOF
	}
	if rest := e.size - e.sent; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := e.r.Read(p)
	e.sent += int64(n)
	if n > 0 && e.progress != nil {
		e.progress(e.sent)
	}
	if errors.Is(err, io.EOF) && e.sent < e.size {
		return n, e.fail(fmt.Errorf("archive ended after %d of the declared %d bytes: %w", e.sent, e.size, io.ErrUnexpectedEOF))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return n, e.fail(fmt.Errorf("read archive: %w", err))
	}
	return n, nil
}

// taskReply is the union of a unit's 202 replies to an import.
type taskReply struct {
	Task
	Lock        string  `json:"lock"`
	RetryAfterS float64 `json:"retry_after_s"`
	Remediation string  `json:"remediation"`
}

// readTask decodes a 2xx reply to an import. A lock refusal becomes an
// ErrImportLocked error together with the Task holding RetryAfter.
func readTask(resp *http.Response, unit string) (*Task, error) {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody))
	if err != nil {
		return nil, fmt.Errorf("pioreactor: import into %s: read reply: %w", unit, err)
	}
	var r taskReply
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, &Error{Kind: ErrProtocol, Unit: unit, Err: err,
				Msg: fmt.Sprintf("%s answered the import with HTTP %d and a body that is not JSON (%v): check that it runs Pioreactor 25.11 or later",
					unit, resp.StatusCode, err)}
		}
	}
	t := r.Task
	if t.Unit == "" {
		t.Unit = unit
	}
	if t.Status == "running" || t.Status == "in_progress" {
		t.RetryAfter = time.Duration(r.RetryAfterS * float64(time.Second))
		if t.RetryAfter <= 0 {
			t.RetryAfter = time.Second
		}
		return &t, &Error{Kind: ErrImportLocked, Unit: unit,
			Msg: fmt.Sprintf("%s is already running an import: wait for it to finish, then retry", unit)}
	}
	return &t, nil
}
