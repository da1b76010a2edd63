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
)

// maxJSONBody caps the JSON replies decoded by the client.
const maxJSONBody = 1 << 20

// Units lists the units the leader knows (GET /api/units): the leader and
// every registered worker, inactive ones included. This is the set a
// cluster export fans out to.
func (c *Client) Units(ctx context.Context) ([]string, error) {
	to := c.leaderTarget()
	var rows []struct {
		Unit string `json:"pioreactor_unit"`
	}
	if err := c.getJSON(ctx, to, "/api/units", "list units", to.name, &rows); err != nil {
		return nil, err
	}
	units := make([]string, 0, len(rows))
	for _, r := range rows {
		units = append(units, r.Unit)
	}
	return units, nil
}

// Health is a unit's reply to GET /unit_api/health.
type Health struct {
	Status  string `json:"status"`
	Unit    string `json:"pioreactor_unit"` // the name the unit gives itself
	UTCTime string `json:"utc_time"`
}

// Health asks unit directly whether its web server is up.
func (c *Client) Health(ctx context.Context, unit string) (Health, error) {
	var h Health
	err := c.getJSON(ctx, c.unitTarget(unit), "/unit_api/health", "check health of", unit, &h)
	return h, err
}

// getJSON GETs path on to and decodes a 200 reply into v.
func (c *Client) getJSON(ctx context.Context, to target, path, op, unit string, v any) error {
	resp, err := c.do(ctx, request{method: http.MethodGet, to: to, path: path})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return c.explain(readAPIError(resp), op, to, unit)
	}
	defer resp.Body.Close()
	return decodeJSON(resp, v, op, unit)
}

func decodeJSON(resp *http.Response, v any, op, unit string) error {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody))
	if err != nil {
		return fmt.Errorf("pioreactor: %s %s: read reply of %s: %w", op, unit, resp.Request.URL, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &Error{Kind: ErrProtocol, Unit: unit, Err: err,
			Msg: fmt.Sprintf("%s %s: %s answered HTTP %d with a body that is not the expected JSON (%v): is this a Pioreactor web server?",
				op, unit, resp.Request.URL, resp.StatusCode, err)}
	}
	return nil
}

// Probe asks unit directly whether anything would block an export or an
// import, without transferring an archive. It returns nil when nothing
// blocks, else the problems joined; each matches one of ErrUnreachable,
// ErrWrongUnit (the host answering gives another name), ErrSentinel,
// ErrImportLocked or ErrUnauthorized.
//
// The sentinel and the import lock are detected by posting a form with no
// archive to the unit's import endpoint: the unit checks the sentinel and the
// lock before it looks for the archive, and rejects the form (HTTP 400)
// without side effects when neither is present. A unit older than 25.11
// has no import endpoint; its sentinel is then not detected.
func (c *Client) Probe(ctx context.Context, unit string) error {
	h, err := c.Health(ctx, unit)
	if err != nil {
		return err
	}
	var problems []error
	if h.Unit != "" && h.Unit != unit {
		problems = append(problems, &Error{Kind: ErrWrongUnit, Unit: unit,
			Msg: fmt.Sprintf("the host at %s answers as %s, not %s: the address of %s is probably wrong: fix it under [pioreactor.addresses] in piosnap's configuration",
				c.UnitAddress(unit), h.Unit, unit, unit)})
	}
	if err := c.probeImport(ctx, unit); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

func (c *Client) probeImport(ctx context.Context, unit string) error {
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	if err := mw.Close(); err != nil {
		return fmt.Errorf("pioreactor: probe %s: %w", unit, err)
	}
	to := c.unitTarget(unit)
	resp, err := c.do(ctx, request{method: http.MethodPost, to: to, path: "/unit_api/import_zipped_dot_pioreactor",
		body: &form, size: int64(form.Len()), contentType: mw.FormDataContentType(),
		header: http.Header{"X-Pioreactor-Target": {unit}}})
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
		resp.Body.Close()
		return nil
	case http.StatusAccepted:
		defer resp.Body.Close()
		_, err := readTask(resp, unit)
		return err
	}
	err = c.explain(readAPIError(resp), "export and import", to, unit)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return err
}
