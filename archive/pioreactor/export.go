package pioreactor

import (
	"context"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Layout tells how the entries of an exported ZIP are named.
type Layout int

const (
	// LayoutUnknown: the reply did not say; inspect the entries (a root
	// pioreactor_export_metadata.json means LayoutSingle).
	LayoutUnknown Layout = iota
	// LayoutSingle: one unit's archive, entries relative to ~/.pioreactor.
	LayoutSingle
	// LayoutAggregate: the leader's cluster archive, every entry under a
	// "<unit>/" prefix.
	LayoutAggregate
)

// String returns "unknown", "single" or "aggregate".
func (l Layout) String() string {
	switch l {
	case LayoutSingle:
		return "single"
	case LayoutAggregate:
		return "aggregate"
	}
	return "unknown"
}

// Export is a ZIP archive being downloaded. The caller must close Body.
type Export struct {
	Body   io.ReadCloser
	Layout Layout
	// Size is the Content-Length, or -1 when the server did not send one.
	Size int64
	// Filename is the Content-Disposition filename, if any.
	Filename string
}

// Reader returns the export's body; when progress is not nil, each read's
// size is passed to it as the archive arrives.
func (e *Export) Reader(progress func(n int64)) io.Reader {
	if progress == nil {
		return e.Body
	}
	return &progressReader{r: e.Body, progress: progress}
}

type progressReader struct {
	r        io.Reader
	progress func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress(int64(n))
	}
	return n, err
}

// ExportCluster downloads the leader's $broadcast archive. It usually has
// LayoutAggregate; on a cluster whose only unit is the leader it is that
// unit's archive unchanged (LayoutSingle). Units the leader cannot reach are
// silently missing from an aggregate: compare with Units. A leader timeout
// matches ErrLeaderTimeout; fall back to ExportUnit for each unit.
func (c *Client) ExportCluster(ctx context.Context) (*Export, error) {
	to := c.leaderTarget()
	resp, err := c.do(ctx, request{method: http.MethodGet, to: to,
		path: "/api/units/$broadcast/zipped_dot_pioreactor", wait: c.exportTimeout})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.explain(readAPIError(resp), "export", to, "cluster")
	}
	return newExport(resp), nil
}

// ExportUnit downloads one unit's archive straight from the unit
// (GET /unit_api/zipped_dot_pioreactor), bypassing the leader's 120 s limit
// and keeping the entries' modes and times.
func (c *Client) ExportUnit(ctx context.Context, unit string) (*Export, error) {
	to := c.unitTarget(unit)
	resp, err := c.do(ctx, request{method: http.MethodGet, to: to,
		path: "/unit_api/zipped_dot_pioreactor", wait: c.exportTimeout})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.explain(readAPIError(resp), "export", to, unit)
	}
	e := newExport(resp)
	e.Layout = LayoutSingle
	return e, nil
}

func newExport(resp *http.Response) *Export {
	e := &Export{Body: resp.Body, Size: resp.ContentLength}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		e.Filename = params["filename"]
	}
	switch {
	case e.Filename == "cluster_dot_pioreactor.zip":
		e.Layout = LayoutAggregate
	case strings.HasSuffix(e.Filename, "dot_pioreactor.zip"):
		e.Layout = LayoutSingle
	}
	return e
}
