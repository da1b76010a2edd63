package simulator

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

const broadcast = "$broadcast"

// fanoutConcurrency is the huey consumer's worker count (-w 10).
const fanoutConcurrency = 10

func (u *Unit) handleUnits(w http.ResponseWriter, _ *http.Request) {
	type unit struct {
		Name string `json:"pioreactor_unit"`
	}
	out := []unit{}
	for _, name := range u.c.order {
		out = append(out, unit{name})
	}
	writeJSON(w, http.StatusOK, out)
}

func (u *Unit) handleWorkers(w http.ResponseWriter, _ *http.Request) {
	type worker struct {
		Name         string `json:"pioreactor_unit"`
		AddedAt      string `json:"added_at"`
		IsActive     int    `json:"is_active"`
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		IPv4         string `json:"ipv4_address"`
	}
	out := []worker{}
	for _, name := range u.c.opts.Workers {
		out = append(out, worker{name, workerAddedAt, 1, "pioreactor_40ml", "1.5", "127.0.0.1"})
	}
	writeJSON(w, http.StatusOK, out)
}

// workerAddedAt is the registration time the seeded workers table records.
const workerAddedAt = "2026-01-05T09:30:00.000Z"

// fetchResult is one unit's envelope from the fan-out.
type fetchResult struct {
	unit string
	body []byte
	err  error
}

func (u *Unit) handleLeaderExport(w http.ResponseWriter, r *http.Request) {
	target := r.PathValue("unit")
	var units []string
	switch {
	case target == broadcast:
		units = u.c.order
	case u.c.registered(target):
		units = []string{target}
	default:
		writeError(w, http.StatusBadRequest, "Unknown Pioreactor unit: "+target, "", "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), u.c.opts.ExportTimeout)
	defer cancel()
	results, ok := u.fanOut(ctx, units)
	if !ok {
		if r.Context().Err() != nil {
			return // client gone or simulator closing
		}
		writeError(w, http.StatusInternalServerError, "Timed out fetching .pioreactor archive", "", "")
		return
	}
	if len(results) == 1 {
		res := results[0]
		if res.err != nil {
			writeError(w, http.StatusBadGateway, "No data received from worker",
				"Worker returned an empty response body.", "Check worker connectivity and retry.")
			return
		}
		writeZip(w, "dot_pioreactor.zip", res.body)
		return
	}
	agg, err := aggregate(results, time.Now())
	if err != nil {
		// An unhandled exception in Flask: a bare 500 page.
		u.c.opts.Logger.Error("aggregate export failed", "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	writeZip(w, "cluster_dot_pioreactor.zip", agg)
}

func writeZip(w http.ResponseWriter, filename string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", "attachment; filename="+filename)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// fanOut fetches every unit's archive over HTTP, at most ten at a time. It
// reports false when ctx ended before every unit had an outcome (the
// chord's result did not arrive in time).
func (u *Unit) fanOut(ctx context.Context, units []string) ([]fetchResult, bool) {
	results := make([]fetchResult, len(units))
	sem := make(chan struct{}, fanoutConcurrency)
	var wg sync.WaitGroup
	for i, name := range units {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				results[i] = fetchResult{unit: name, err: ctx.Err()}
				return
			}
			body, err := u.fetchArchive(ctx, name)
			results[i] = fetchResult{unit: name, body: body, err: err}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, false
	}
	slices.SortFunc(results, func(a, b fetchResult) int {
		if a.unit < b.unit {
			return -1
		}
		if a.unit > b.unit {
			return 1
		}
		return 0
	})
	return results, true
}

func (u *Unit) fetchArchive(ctx context.Context, unit string) ([]byte, error) {
	url := "http://" + u.c.units[unit].addr + "/unit_api/zipped_dot_pioreactor"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	u.c.decorate(req)
	resp, err := u.c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("connection_error: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("connection_error: read body from %s: %w", unit, err)
	}
	if resp.StatusCode >= 400 {
		return nil, fmt.Errorf("http_error: %s answered %s", unit, resp.Status)
	}
	return body, nil
}

// decorate adds the headers the real leader sends on its calls to units.
func (c *Cluster) decorate(req *http.Request) {
	req.Header.Set("User-Agent", "Python/Pioreactor")
	if c.opts.BasicAuth != nil {
		req.Header.Set("Authorization", basicAuthValue(c.opts.BasicAuth))
	}
}

// aggregate rebuilds the units' archives into one flat ZIP under "<unit>/",
// every member re-created with writestr: DEFLATE (directories included),
// mode 0600 or 040775, mtime now. Failed units are left out silently.
func aggregate(results []fetchResult, now time.Time) ([]byte, error) {
	var mf memFile
	z := newPyZip(&mf)
	for _, res := range results {
		if res.err != nil {
			continue
		}
		zr, err := zip.NewReader(bytes.NewReader(res.body), int64(len(res.body)))
		if err != nil {
			return nil, fmt.Errorf("read archive of %s: %w", res.unit, err)
		}
		for _, f := range zr.File {
			if err := copyMember(z, res.unit, f, now); err != nil {
				return nil, err
			}
		}
	}
	if err := z.close(); err != nil {
		return nil, err
	}
	return mf.buf, nil
}

func copyMember(z *pyZip, unit string, f *zip.File, now time.Time) error {
	e := pyEntry{name: unit + "/" + f.Name, method: methodDeflated, extAttr: 0o600 << 16, mtime: now, size: int64(f.UncompressedSize64)}
	if f.FileInfo().IsDir() || (len(f.Name) > 0 && f.Name[len(f.Name)-1] == '/') {
		e.extAttr = 0o40775<<16 | dosDirFlag
		return z.add(e, nil)
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("open %s of %s: %w", f.Name, unit, err)
	}
	defer rc.Close()
	if err := z.add(e, rc); err != nil {
		return fmt.Errorf("copy %s of %s: %w", f.Name, unit, err)
	}
	return nil
}

func (u *Unit) handleLeaderImport(w http.ResponseWriter, r *http.Request) {
	target := r.PathValue("unit")
	if target == broadcast {
		writeError(w, http.StatusBadRequest, "Cannot import to $broadcast; choose a specific Pioreactor.", "", "")
		return
	}
	name, data, err := readArchivePart(r)
	if errors.Is(err, errNoArchive) {
		writeError(w, http.StatusBadRequest, "No archive uploaded", "Missing 'archive' file in multipart form-data.", "")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Failed to save uploaded archive", err.Error(), "")
		return
	}
	safe := secureFilename(name)
	if safe == "" {
		writeError(w, http.StatusBadRequest, "Invalid archive filename", "", "")
		return
	}
	if err := u.spool(safe, data); err != nil {
		writeError(w, http.StatusInternalServerError, "Failed to save uploaded archive", err.Error(), "")
		return
	}
	if !u.c.registered(target) {
		writeError(w, http.StatusBadRequest, "Unknown Pioreactor unit: "+target, "", "")
		return
	}
	resp, body, err := u.forwardImport(r.Context(), target, safe, data)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		writeError(w, http.StatusBadGateway, "Importing system files failed on "+target+". See system logs.",
			"Worker returned an error during import.", "Check worker logs and retry the import.")
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

func readArchivePart(r *http.Request) (string, []byte, error) {
	mr, err := multipartReader(r)
	if err != nil {
		return "", nil, errNoArchive
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return "", nil, errNoArchive
		}
		if err != nil {
			return "", nil, fmt.Errorf("read multipart body: %w", err)
		}
		if part.FormName() != "archive" || part.FileName() == "" {
			continue
		}
		// The archive is at most the body's length: read it into one
		// allocation of that size rather than a doubling series of them.
		var b bytes.Buffer
		if n := r.ContentLength; n > 0 && n < 1<<40 {
			b.Grow(int(n) + bytes.MinRead) // ReadFrom wants MinRead spare bytes before EOF
		}
		if _, err := b.ReadFrom(part); err != nil {
			return "", nil, fmt.Errorf("read archive part: %w", err)
		}
		return part.FileName(), b.Bytes(), nil
	}
}

// spool saves an uploaded archive in the leader's /tmp and deletes it
// again, as the real proxy does before it reads the file back into memory:
// a /tmp too full for it fails the upload.
func (u *Unit) spool(name string, data []byte) error {
	p := filepath.Join(u.tmp, "import_dot_pioreactor_"+newTaskID()+"_"+name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = (&tmpWriter{w: f, path: p, left: u.tmpFree()}).Write(data)
	return errors.Join(err, f.Close(), os.Remove(p))
}

func (u *Unit) forwardImport(ctx context.Context, unit, filename string, data []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, u.c.opts.ImportTimeout)
	defer cancel()
	body, size, ct := importBody(filename, data)
	url := "http://" + u.c.units[unit].addr + "/unit_api/import_zipped_dot_pioreactor"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return nil, nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", ct)
	u.c.decorate(req)
	resp, err := u.c.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp, out, err
}
